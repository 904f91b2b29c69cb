"""Network paths of `corpora` against a real http.server on 127.0.0.1 serving the real az.lib.ru fragments.

    .venv/bin/python -m pytest tests/test_corpora_http.py -q
"""

import json
import re
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import ROOT

from corpora import (
    CorpusArguments,
    CorpusError,
    FetchError,
    TOLSTOY_CATALOGUE,
    build_corpus,
    decode_html,
    extract_libru_html,
    fetch,
    read_leipzig,
)
from corpora.builder import load_source_rows, main
from corpora.fetch import USER_AGENT
from corpora.snapshot import SNAPSHOT_PATH, SNAPSHOT_WORKS, build_snapshot, read_snapshot

FRAGMENTS = ["head_fragment", "tail_fragment"]


class _Server:
    """Routes path -> (status, body, content_type or None); counts requests and remembers their headers."""

    def __init__(self):
        self.routes: dict[str, tuple[int, bytes, str | None]] = {}
        self.hits: dict[str, int] = {}
        self.user_agents: list[str] = []
        self.times: list[float] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                server.user_agents.append(self.headers.get("User-Agent", ""))
                server.times.append(time.monotonic())
                route = server.routes.get(self.path)
                if callable(route):
                    route = route(server.hits[self.path])
                status, body, content_type = route or (404, b"not found", "text/plain")
                self.send_response(status)
                if content_type:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def requests(self) -> int:
        return sum(self.hits.values())

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = _Server()
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def fragments(corpora_dir):
    """(fragment, encoding) -> raw bytes of the real az.lib.ru page fragments."""
    folder = corpora_dir / "tolstoy" / "libru_html"
    return {(f, enc): (folder / f"text_0040.{f}.{enc}.shtml").read_bytes() for f in FRAGMENTS for enc in ("utf8", "cp1251")}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the with-block ends: connections are refused


@pytest.mark.parametrize("fragment", FRAGMENTS)
def test_pages_over_http_extract_identically_in_both_encodings_with_and_without_charset(server, fragments, fragment, tmp_path):
    charsets = {"utf8": "utf-8", "cp1251": "windows-1251"}
    for enc, charset in charsets.items():
        server.routes[f"/{enc}/declared.shtml"] = (200, fragments[fragment, enc], f"text/html; charset={charset}")
        server.routes[f"/{enc}/bare.shtml"] = (200, fragments[fragment, enc], "text/html")
    texts = {}
    for enc in charsets:
        for kind in ("declared", "bare"):
            result = fetch(f"{server.url}/{enc}/{kind}.shtml", tmp_path / "cache", delay=0)
            texts[enc, kind] = extract_libru_html(decode_html(result.content, result.content_type))
    first = next(iter(texts.values()))
    assert all(paragraphs == first for paragraphs in texts.values()), "encoding or header changed the text"
    text = "\n".join(first)
    assert not re.search(r"</?[A-Za-z][^>]*>", text), "markup left"
    assert not re.search(r"&#?\w+;?", text.replace("& ", "")), "entity left"
    assert "<u>" not in text and not re.search(r"[^\W\d]\d", text), "footnote mark left (digit glued to a word)"
    assert not re.search(r"[,.!?;:]\d", text), "footnote mark left (digit glued to punctuation)"
    assert "\xa0" not in text and "  " not in text
    for chrome in ("Оценка", "шедевр", "Комментарии", "Регистрация", "LiveInternet", "acint", "gabrielmv"):
        assert chrome not in text, f"site chrome {chrome!r} left"
    if fragment == "head_fragment":
        assert "-- Eh bien, mon prince. Gênes et Lucques ne sont plus que des apanages" in text
        assert "vous n'êtes plus мой верный раб, comme vous dites. Ну, здравствуйте, здравствуйте." in text
        assert "Je vois que je vous fais peur, садитесь и рассказывайте." in text
        assert "Москва, 1937--1940" in text  # &nbsp; became a space
        # one paragraph per <dd>: the first dialogue paragraph and the narration after it are separate lines
        eh = next(i for i, p in enumerate(first) if p.startswith("-- Eh bien"))
        assert first[eh + 1].startswith("Так говорила в июле 1805 года")
        assert len(first) > 40
    else:
        # the footnote numbers at the start of the notes are gone, the notes stay
        assert first[0].startswith("Так как неприятель опирается левым крылом")
        assert "Урок из географии," in first and "[Ей Богу,]" in first
        assert first[-1] == "Это субъект нервный и желчный, -- он не выздоровеет."
    assert server.requests() == 4


def test_cache_makes_the_second_run_request_nothing(server, fragments, tmp_path):
    server.routes["/t/text_0040.shtml"] = (200, fragments["head_fragment", "cp1251"], "text/html; charset=windows-1251")
    url = f"{server.url}/t/text_0040.shtml"
    first = fetch(url, tmp_path, delay=0)
    second = fetch(url, tmp_path, delay=0)
    assert server.requests() == 1
    assert (first.from_cache, second.from_cache) == (False, True)
    assert second.content == fragments["head_fragment", "cp1251"]
    assert second.content_type == "text/html; charset=windows-1251"
    assert server.user_agents == [USER_AGENT] and "RoPE-GPT" in USER_AGENT
    # the whole --source libru path again from another "run": no request either
    args = CorpusArguments(source="libru", inputs=[url], output_dir=str(tmp_path / "out"), cache_dir=str(tmp_path), delay=0)
    rows, info = load_source_rows(args)
    assert server.requests() == 1
    assert "Eh bien, mon prince" in rows[0]["text"] and len(info["sources"][0]["sha256"]) == 64


def test_polite_delay_between_requests_to_one_host(server, tmp_path):
    for i in range(3):
        server.routes[f"/p{i}"] = (200, b"<p>x</p>", "text/html")
    for i in range(3):
        fetch(f"{server.url}/p{i}", tmp_path, delay=0.3)
    gaps = [b - a for a, b in zip(server.times, server.times[1:])]
    assert min(gaps) >= 0.25, gaps


def test_server_errors_are_retried_with_backoff(server, tmp_path):
    server.routes["/flaky"] = lambda hit: (503, b"busy", "text/plain") if hit < 3 else (200, b"<p>ok</p>", "text/html")
    result = fetch(f"{server.url}/flaky", tmp_path, delay=0, retries=3)
    assert result.content == b"<p>ok</p>" and server.hits["/flaky"] == 3
    server.routes["/down"] = (503, b"busy", "text/plain")
    with pytest.raises(FetchError, match=r"giving up on http://127\.0\.0\.1:\d+/down"):
        fetch(f"{server.url}/down", tmp_path, delay=0, retries=1)
    assert not list(tmp_path.glob("*down*")), "a failed download must not be cached"


def test_unreachable_url_fails_fast_with_one_line(tmp_path, capsys):
    url = f"http://127.0.0.1:{_closed_port()}/t/text_0040.shtml"
    start = time.monotonic()
    with pytest.raises(CorpusError) as info:
        fetch(url, tmp_path, delay=0, retries=3)
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert url in message and "--source text PATH" in message and "\n" not in message
    assert main(["--source", "libru", url, "--output_dir", str(tmp_path / "out"), "--cache_dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"error: {message}" and "Traceback" not in "\n".join(err)
    assert not (tmp_path / "out").exists()


def test_tolstoy_catalogue_against_a_local_mirror_skips_missing_works(server, fragments, tmp_path):
    assert {"text_0040", "text_0050", "text_0060", "text_0070", "text_0080", "text_0090",
            "text_1860_dekabristy"} == set(TOLSTOY_CATALOGUE)
    assert TOLSTOY_CATALOGUE["text_0080"] == "Анна Каренина" and TOLSTOY_CATALOGUE["text_0090"] == "Воскресение"
    assert TOLSTOY_CATALOGUE["text_0040"] == "Война и мир. Том 1"
    server.routes["/t/tolstoj_lew_nikolaewich/text_0040.shtml"] = (200, fragments["head_fragment", "cp1251"],
                                                                   "text/html; charset=windows-1251")
    args = CorpusArguments(source="tolstoy", output_dir=str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"),
                           base_url=f"{server.url}/t/tolstoj_lew_nikolaewich", delay=0, validation_split=0.0)
    rows, info = load_source_rows(args)
    assert [r["source"] for r in rows] == ["text_0040.shtml"]
    assert info["sources"][0]["title"] == "Война и мир. Том 1"
    assert sorted(s["source"] for s in info["skipped_sources"]) == sorted(set(TOLSTOY_CATALOGUE) - {"text_0040"})
    assert all("404" in s["reason"] for s in info["skipped_sources"])
    corpus = build_corpus(args)
    assert "Eh bien, mon prince" in corpus["train"][0]["text"]
    # all works missing: an error naming what to do
    server.routes.clear()
    args.cache_dir = str(tmp_path / "cache2")
    args.snapshot_fallback = False
    with pytest.raises(CorpusError, match="--base_url"):
        load_source_rows(args)
    # a page the user named that answers 404 is an error, not a skip
    with pytest.raises(FetchError, match="HTTP 404"):
        load_source_rows(CorpusArguments(source="libru", inputs=[f"{server.url}/nope.shtml"], output_dir="x",
                                         cache_dir=str(tmp_path / "cache3"), delay=0))


def test_tolstoy_cli_end_to_end(server, fragments, tmp_path):
    server.routes["/t/tolstoj_lew_nikolaewich/text_0040.shtml"] = (200, fragments["head_fragment", "utf8"], None)
    out = tmp_path / "tolstoy"
    argv = ["--source", "tolstoy", "--base_url", f"{server.url}/t/tolstoj_lew_nikolaewich/", "--output_dir", str(out),
            "--cache_dir", str(tmp_path / "cache"), "--delay", "0", "--max_doc_chars", "2000"]
    assert main(argv) == 0
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["splits"]["validation"]["documents"] >= 1
    assert len(manifest["skipped_sources"]) == len(TOLSTOY_CATALOGUE) - 1


def test_html_page_without_text_is_an_error(server, tmp_path):
    server.routes["/empty.shtml"] = (200, "<html><body><center><form><input></form></center><script>x()</script>"
                                          "</body></html>".encode(), "text/html")
    with pytest.raises(CorpusError, match=r"no text found on the page http://127\.0\.0\.1:\d+/empty\.shtml"):
        load_source_rows(CorpusArguments(source="libru", inputs=[f"{server.url}/empty.shtml"], output_dir="x",
                                         cache_dir=str(tmp_path), delay=0))


def test_leipzig_by_url_is_downloaded_once_and_cached(server, corpora_dir, tmp_path):
    archive = corpora_dir / "tatar" / "leipzig" / "tat_books_2024_10K.tar.gz"
    server.routes["/corpora/tat_books_2024_10K.tar.gz"] = (200, archive.read_bytes(), "application/x-gzip")
    url = f"{server.url}/corpora/tat_books_2024_10K.tar.gz"
    sentences, malformed = read_leipzig(url, tmp_path, delay=0)
    again, _ = read_leipzig(url, tmp_path, delay=0)
    assert len(sentences) == 10000 and malformed == 0 and again == sentences
    assert server.requests() == 1


@pytest.fixture
def silent_server():
    """A TCP server that accepts connections and never answers (a black-holed proxy or site)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def _assert_snapshot_corpus(out, caplog_text: str):
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["snapshot_fallback"]["snapshot"] == "corpora/snapshot/tolstoy.jsonl.xz"
    assert [s["source"] for s in manifest["sources"]] == list(SNAPSHOT_WORKS)
    assert manifest["splits"]["train"]["characters"] > 3_000_000 and manifest["splits"]["validation"]["documents"] > 5
    lines = [line for line in caplog_text.splitlines() if "offline Tolstoy snapshot" in line]
    assert len(lines) == 1, caplog_text[-2000:]


def test_tolstoy_falls_back_to_the_snapshot_when_the_site_never_answers(silent_server, tmp_path, capsys):
    out = tmp_path / "tolstoy"
    argv = ["--source", "tolstoy", "--base_url", f"{silent_server}/t/", "--output_dir", str(out),
            "--cache_dir", str(tmp_path / "cache"), "--delay", "0", "--timeout", "1", "--retries", "0"]  # fmt: skip
    start = time.monotonic()
    assert main(argv) == 0
    assert time.monotonic() - start < 60  # one timed-out request, not one per catalogue page
    _assert_snapshot_corpus(out, capsys.readouterr().err)
    # turned off, the same silence is a one-line error naming the page
    assert main([*argv, "--output_dir", str(tmp_path / "o2"), "--snapshot_fallback", "false"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: cannot download {silent_server}/t/text_0040.shtml") and not (tmp_path / "o2").exists()


def test_tolstoy_falls_back_to_the_snapshot_with_no_network_at_all(tmp_path):
    """The default catalogue address (az.lib.ru) in a network namespace with no interface up."""
    if subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare -rn (a user namespace without network) is not permitted here")
    out = tmp_path / "tolstoy"
    done = subprocess.run(["unshare", "-rn", sys.executable, "-m", "corpora", "--source", "tolstoy", "--output_dir",
                           str(out), "--cache_dir", str(tmp_path / "cache")], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    _assert_snapshot_corpus(out, done.stderr)
    assert "az.lib.ru" in json.loads((out / "manifest.json").read_text())["snapshot_fallback"]["reason"]


def test_snapshot_is_rebuilt_byte_for_byte_by_its_script(corpora_dir, tmp_path):
    path = build_snapshot(corpora_dir / "tolstoy" / "txt", tmp_path / "snapshot.jsonl.xz")
    assert path.read_bytes() == SNAPSHOT_PATH.read_bytes()
    assert SNAPSHOT_PATH.stat().st_size < 4_000_000
    rows, records = read_snapshot()
    text = rows[0]["text"]
    assert "вс„" not in text and "всё" in text and "Gênes" in text  # cleaned the way --source text cleans
    assert all(len(r["built_from_sha256"]) == 64 for r in records)
