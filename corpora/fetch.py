"""A polite, cached HTTP(S) downloader for az.lib.ru pages and Leipzig archives.

    python -c "from corpora import fetch; print(fetch('http://az.lib.ru/t/tolstoj_lew_nikolaewich/text_0040.shtml'))"

`fetch(url)` returns a `FetchResult`: the body lives in a file of the on-disk cache (`result.path`,
`result.content` reads it), with the response's Content-Type kept beside it, so a second run makes no
request at all. Requests to the same host are spaced by `delay` seconds, read errors and 429/5xx answers
are retried with exponential backoff, every request has a timeout and names the project in its
User-Agent. Failures raise `FetchError` (a `CorpusError`) with one line naming the URL.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from tqdm.auto import tqdm
from urllib3.util.retry import Retry

from .errors import CorpusError

logger = logging.getLogger(__name__)

USER_AGENT = "RoPE-GPT-corpora/0.1 (open-source corpus builder for small causal LMs; polite, cached)"
DEFAULT_CACHE_DIR = Path(os.environ.get("ROPEGPT_CACHE", Path.home() / ".cache" / "ropegpt")) / "corpora"

# Host -> monotonic time of its last request; shared by all fetches of the process.
_last_request: dict[str, float] = {}
_last_request_lock = threading.Lock()


class FetchError(CorpusError):
    """A download that failed; `status` is the HTTP status when the server answered, else None."""

    def __init__(self, message: str, url: str, status: int | None = None):
        super().__init__(message)
        self.url = url
        self.status = status


@dataclass(frozen=True)
class FetchResult:
    """One downloaded resource: the cached body file, its Content-Type and whether the cache served it."""

    url: str
    path: Path
    content_type: str | None
    from_cache: bool

    @property
    def content(self) -> bytes:
        """The raw body bytes, read from the cache file."""
        return self.path.read_bytes()


def cache_paths(url: str, cache_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """The (body, metadata) files that cache `url` under `cache_dir` (default ~/.cache/ropegpt/corpora)."""
    root = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    key = hashlib.sha256(url.encode("utf-8")).hexdigest()
    suffix = Path(urlsplit(url).path).name[-60:] or "index"
    return root / f"{key[:16]}-{suffix}.body", root / f"{key[:16]}-{suffix}.json"


def _wait_for_host(host: str, delay: float) -> None:
    """Sleep until `delay` seconds have passed since the last request to `host`, then claim the slot."""
    with _last_request_lock:
        now = time.monotonic()
        wait = _last_request.get(host, -float("inf")) + delay - now
        _last_request[host] = max(now, now + wait)
    if wait > 0:
        time.sleep(wait)


def _session(retries: int) -> requests.Session:
    """A session that retries read errors and 429/5xx answers with backoff, but not refused connections."""
    retry = Retry(
        total=retries,
        # A refused connection or an unknown host does not heal in seconds: fail at once with a clear line.
        connect=0,
        read=retries,
        status=retries,
        backoff_factor=0.5,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET"}),
        respect_retry_after_header=True,
        raise_on_status=True,
    )
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    session.headers["User-Agent"] = USER_AGENT
    return session


def _unreachable(url: str, reason: str) -> FetchError:
    return FetchError(
        f"cannot download {url}: {reason}; check the address and the network, or fetch the file yourself "
        "and use local files instead (--source text PATH, or --source leipzig ARCHIVE.tar.gz)",
        url,
    )


def fetch(
    url: str,
    cache_dir: str | os.PathLike | None = None,
    *,
    delay: float = 1.0,
    timeout: float = 30,
    retries: int = 3,
) -> FetchResult:
    """Download `url` once into the on-disk cache and return a `FetchResult` for it.

    A cached URL is served from disk without any request. Otherwise the request waits until `delay`
    seconds have passed since the previous request to the same host, gives up a connection or a read
    after `timeout` seconds, and retries read errors and 429/5xx answers `retries` times with
    exponential backoff (0.5 s, 1 s, 2 s, honouring Retry-After). Any failure, including an HTTP error
    status such as 404, raises `FetchError` naming the URL; nothing is cached for a failed request.
    """
    body_path, meta_path = cache_paths(url, cache_dir)
    if body_path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        logger.info("cache hit for %s (%s)", url, body_path)
        return FetchResult(url=url, path=body_path, content_type=meta.get("content_type"), from_cache=True)

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise FetchError(f"not an http(s) URL: {url!r}; give a full http:// or https:// address, or a local path", url)
    _wait_for_host(parts.netloc, delay)
    logger.info("downloading %s", url)
    body_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _session(retries) as session, session.get(url, timeout=timeout, stream=True) as response:
            if response.status_code >= 400:
                raise FetchError(
                    f"HTTP {response.status_code} {response.reason} for {url}; check the address "
                    "(or point --base_url at a mirror), or use local files instead (--source text PATH)",
                    url,
                    response.status_code,
                )
            total = int(response.headers.get("Content-Length") or 0) or None
            # Write beside the cache file and rename: an interrupted download never looks cached.
            fd, tmp = tempfile.mkstemp(dir=body_path.parent, prefix=".part-")
            try:
                with os.fdopen(fd, "wb") as out, tqdm(
                    total=total, unit="B", unit_scale=True, desc=parts.path.rsplit("/", 1)[-1] or url,
                    disable=total is None or total < 4_000_000, leave=False,
                ) as bar:
                    for chunk in response.iter_content(chunk_size=1 << 16):
                        out.write(chunk)
                        bar.update(len(chunk))
                os.replace(tmp, body_path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            content_type = response.headers.get("Content-Type")
    except requests.exceptions.RetryError as error:
        raise FetchError(f"giving up on {url} after {retries} retries ({error.__class__.__name__}); "
                         "try again later, or use local files instead (--source text PATH)", url) from error
    except requests.exceptions.Timeout as error:
        raise _unreachable(url, f"no answer within {timeout} s") from error
    except requests.exceptions.ConnectionError as error:
        raise _unreachable(url, _root_reason(error)) from error
    except requests.exceptions.RequestException as error:
        raise _unreachable(url, _root_reason(error)) from error
    meta = {"url": url, "content_type": content_type, "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    tmp_meta = meta_path.with_name(meta_path.name + ".tmp")
    tmp_meta.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp_meta, meta_path)
    return FetchResult(url=url, path=body_path, content_type=content_type, from_cache=False)


def _root_reason(error: BaseException) -> str:
    """The innermost cause of a requests/urllib3 error, shortened to one line (e.g. 'Connection refused')."""
    while error.__context__ is not None or error.__cause__ is not None:
        error = error.__cause__ or error.__context__
    text = str(error) or error.__class__.__name__
    if "] " in text:  # "[Errno 111] Connection refused" -> keep the words a person understands
        text = text.split("] ", 1)[1]
    return text.strip().splitlines()[0][:200] if text.strip() else error.__class__.__name__
