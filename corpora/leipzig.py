"""Leipzig Wortschatz corpora: `<name>/<name>-sentences.txt` (`id<TAB>sentence`) from an archive,
an extracted folder or a download.

    python -m corpora --source leipzig ../shared/corpora/tatar/leipzig/tat_books_2024_10K.tar.gz --output_dir data/tat10k
    python -m corpora --source leipzig tat_wikipedia_2021_100K --output_dir data/tatwiki

A bare corpus name means `https://downloads.wortschatz-leipzig.de/corpora/<name>.tar.gz`, downloaded
through the cached downloader. The sentences are read straight out of the archive without extracting
anything; every member is still checked first, and an archive with a member that would land outside
its folder (absolute path, `..`, links, devices) is refused, as is a link inside an extracted folder. A line
longer than 64 KiB is not a sentence: it is skipped and counted with the malformed lines.
"""

from __future__ import annotations

import logging
import os
import re
import tarfile
from pathlib import Path, PurePosixPath

from .errors import CorpusError
from .fetch import fetch

logger = logging.getLogger(__name__)

LEIPZIG_URL = "https://downloads.wortschatz-leipzig.de/corpora/{name}.tar.gz"
_BARE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SENTENCES_SUFFIX = "-sentences.txt"


def resolve_leipzig_source(source: str | os.PathLike) -> str:
    """A local path as given, a URL as given, or the download URL for a bare corpus name."""
    text = os.fspath(source)
    if text.startswith(("http://", "https://")) or Path(text).exists():
        return text
    if _BARE_NAME.match(text) and not text.endswith((".tar.gz", ".tgz", ".tar")):
        return LEIPZIG_URL.format(name=text)
    raise CorpusError(f"{text} does not exist; give a Leipzig .tar.gz, its extracted folder, a URL or a corpus name "
                      "such as tat_wikipedia_2021_100K")


def check_tar_members(tar: tarfile.TarFile, archive: str) -> list[tarfile.TarInfo]:
    """All members of `tar`, after refusing any that could be written outside the extraction folder."""
    members = tar.getmembers()
    for member in members:
        name = member.name
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
            why = "an absolute path"
        elif ".." in parts:
            why = "a '..' path that escapes the folder"
        elif member.issym() or member.islnk():
            why = f"a link (to {member.linkname!r})"
        elif not (member.isfile() or member.isdir()):
            why = "a device or other special file"
        else:
            continue
        raise CorpusError(f"refusing archive {archive}: member {name!r} is {why}; "
                          "download the corpus again from wortschatz-leipzig.de or check where it came from")
    return members


def extract_archive(archive: str | os.PathLike, target_dir: str | os.PathLike) -> Path:
    """Extract a Leipzig archive into `target_dir` after `check_tar_members`; returns `target_dir`."""
    archive, target_dir = Path(archive), Path(target_dir)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = check_tar_members(tar, str(archive))
            target_dir.mkdir(parents=True, exist_ok=True)
            # The "data" filter repeats our checks inside tarfile and also drops unsafe modes.
            tar.extractall(target_dir, members=members, filter="data")
    except tarfile.FilterError as error:
        raise CorpusError(f"refusing archive {archive}: member {error.tarinfo.name!r} is unsafe ({error}); "
                          "check where the archive came from") from error
    except (tarfile.TarError, EOFError, OSError) as error:
        raise CorpusError(f"cannot read archive {archive} ({error}); download it again") from error
    return target_dir


# A Leipzig line is one sentence (a few hundred bytes); a line longer than this is not one (a file glued
# into a single line): it is skipped and counted without ever being held in memory whole.
MAX_LINE_BYTES = 64 * 1024


def bounded_lines(handle, limit: int = MAX_LINE_BYTES):
    """The lines of a binary file, each at most `limit` bytes; a longer line is read through and given as None."""
    while True:
        chunk = handle.readline(limit + 1)
        if not chunk:
            return
        if len(chunk) <= limit or chunk.endswith(b"\n"):
            yield chunk
            continue
        while chunk and not chunk.endswith(b"\n"):
            chunk = handle.readline(limit + 1)
        yield None


def parse_sentence_lines(lines, source: str) -> tuple[list[str], int]:
    """Sentences from `id<TAB>sentence` byte lines, and how many non-blank lines were malformed.

    A line is malformed when it is not UTF-8, has no tab, has a non-numeric id or an empty sentence, or is
    None (too long to be a sentence: see `bounded_lines`).
    """
    sentences: list[str] = []
    malformed = overlong = 0
    for raw in lines:
        if raw is None:
            overlong += 1
            continue
        raw = raw.rstrip(b"\r\n")
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            malformed += 1
            continue
        number, tab, sentence = line.partition("\t")
        sentence = sentence.strip().replace("\ufeff", "")
        if not tab or not number.strip().lstrip("\ufeff").isdigit() or not sentence:
            malformed += 1
            continue
        sentences.append(sentence)
    if malformed:
        logger.warning("%s: skipped %d malformed lines (expected 'id<TAB>sentence')", source, malformed)
    if overlong:
        logger.warning("%s: skipped %d lines longer than %d bytes (not sentences)", source, overlong, MAX_LINE_BYTES)
    return sentences, malformed + overlong


def _read_from_archive(archive: Path) -> tuple[list[str], int]:
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = check_tar_members(tar, str(archive))
            wanted = [m for m in members if m.isfile() and m.name.endswith(_SENTENCES_SUFFIX)]
            if not wanted:
                raise CorpusError(f"archive {archive} has no *{_SENTENCES_SUFFIX} member; "
                                  "give a Leipzig Wortschatz corpus archive (<name>/<name>-sentences.txt inside)")
            if len(wanted) > 1:
                logger.warning("%s: several sentence files, reading %s", archive, ", ".join(m.name for m in wanted))
            sentences, malformed = [], 0
            for member in wanted:
                with tar.extractfile(member) as handle:
                    part, bad = parse_sentence_lines(bounded_lines(handle), f"{archive}:{member.name}")
                sentences += part
                malformed += bad
            return sentences, malformed
    except (tarfile.TarError, EOFError, OSError) as error:
        raise CorpusError(f"cannot read archive {archive} ({error}); download it again or give the extracted folder") from error


def _read_from_folder(folder: Path) -> tuple[list[str], int]:
    files = sorted(folder.rglob(f"*{_SENTENCES_SUFFIX}"))
    if not files:
        raise CorpusError(f"no *{_SENTENCES_SUFFIX} file under {folder}; give the extracted Leipzig corpus folder")
    # As with archive members: a link could bring in any file of the machine (or a device).
    for path in folder.rglob("*"):
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise CorpusError(f"refusing folder {folder}: {path} is a link or not a regular file; "
                              "copy the real corpus files into the folder")
    sentences, malformed = [], 0
    for path in files:
        with path.open("rb") as handle:
            part, bad = parse_sentence_lines(bounded_lines(handle), str(path))
        sentences += part
        malformed += bad
    return sentences, malformed


def leipzig_local_path(source: str | os.PathLike, cache_dir=None, **fetch_kwargs) -> Path:
    """The local archive or folder for `source`, downloading (cached) a URL or bare corpus name first."""
    resolved = resolve_leipzig_source(source)
    if resolved.startswith(("http://", "https://")):
        return fetch(resolved, cache_dir, **fetch_kwargs).path
    return Path(resolved)


def read_leipzig(archive_or_dir_or_url: str | os.PathLike, cache_dir=None, **fetch_kwargs) -> tuple[list[str], int]:
    """(sentences, number of malformed lines skipped) of a Leipzig corpus.

    `archive_or_dir_or_url` is a local .tar.gz/.tgz/.tar, an extracted folder, a download URL or a bare
    corpus name (see `resolve_leipzig_source`); downloads go through `fetch` with `cache_dir` and
    `fetch_kwargs` (delay, timeout, retries).
    """
    path = leipzig_local_path(archive_or_dir_or_url, cache_dir, **fetch_kwargs)
    sentences, malformed = _read_from_folder(path) if path.is_dir() else _read_from_archive(path)
    if not sentences:
        raise CorpusError(f"{archive_or_dir_or_url} holds no sentences; give a non-empty Leipzig corpus")
    return sentences, malformed
