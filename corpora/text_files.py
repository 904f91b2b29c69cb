"""Local plain-text files: encoding, BOM and layout detection.

    python -m corpora --source text ../shared/corpora/tolstoy/txt --output_dir data/tolstoy_txt

`read_text_file(path)` decodes UTF-8 (with or without a BOM) or windows-1251, recognises lib.ru's
hard-wrapped layout (3-space indents, lines near 78 columns) and rejoins its paragraphs, and returns
one paragraph per line. Folders are searched recursively for *.txt.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import charset_normalizer

from .errors import CorpusError
from .libru import split_libru_txt

logger = logging.getLogger(__name__)


def decode_text_bytes(raw: bytes, name: str = "<bytes>") -> str:
    """Text from the raw bytes of a file: UTF-8 (a BOM is dropped) or windows-1251, else `CorpusError`.

    UTF-8 is tried strictly first; windows-1251 decodes almost any byte string, so it is only accepted
    when charset-normalizer finds the result coherent, which rejects binary data and other encodings.
    """
    if not raw.strip():
        raise CorpusError(f"{name} is empty; remove it or give a file with text in it")
    if b"\x00" in raw[:65536]:
        raise CorpusError(f"{name} looks binary (it contains NUL bytes); give UTF-8 or windows-1251 text files")
    try:
        return raw.decode("utf-8-sig").replace("\ufeff", "")
    except UnicodeDecodeError:
        pass
    best = charset_normalizer.from_bytes(raw, cp_isolation=["cp1251"]).best()
    if best is None:
        raise CorpusError(f"cannot decode {name} as UTF-8 or windows-1251; convert it to UTF-8 "
                          "(e.g. iconv -f ENCODING -t UTF-8) and try again")
    logger.info("%s: decoded as %s", name, best.encoding)
    return str(best).replace("\ufeff", "")


def detect_layout(text: str) -> str:
    """'libru' for lib.ru's hard-wrapped layout, 'lines' for one paragraph per line.

    lib.ru's layout is recognised by two things together: nine lines in ten are at most 80 characters
    long, and at least a tenth of the non-blank lines start with an indent (verse and one-paragraph-per-
    line files have short lines or long lines, but no indents).
    """
    lines = [line for line in text.split("\n") if line.strip()]
    if len(lines) < 5:
        return "lines"
    lengths = sorted(len(line.rstrip()) for line in lines)
    short = lengths[int(0.9 * (len(lengths) - 1))] <= 80
    indented = sum(1 for line in lines if line[:1] == " " and line[:3].isspace() and not line[:8].isspace())
    return "libru" if short and indented >= 0.1 * len(lines) else "lines"


def text_to_paragraphs(text: str) -> list[str]:
    """Paragraphs of a decoded text in either layout (see `detect_layout`), whitespace collapsed."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if detect_layout(text) == "libru":
        return split_libru_txt(text)
    return [" ".join(line.split()) for line in text.split("\n") if line.strip()]


def read_text_file(path: str | os.PathLike) -> str:
    """The text of a local file, paragraphs joined by "\\n": encoding, BOM and layout handled."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path} is not a file; give an existing .txt file or a folder of them")
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise CorpusError(f"cannot read {path} ({error.strerror}); check its permissions") from error
    text = decode_text_bytes(raw, str(path))
    paragraphs = text_to_paragraphs(text)
    if not paragraphs:
        raise CorpusError(f"{path} has no text; remove it or give a file with text in it")
    return "\n".join(paragraphs)


def find_text_files(inputs: list[str | os.PathLike]) -> list[Path]:
    """The files named, and every *.txt under the folders named (recursively, sorted)."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.txt") if p.is_file())
            if not found:
                raise CorpusError(f"no *.txt files under {path}; give a folder that holds .txt files, or the files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise CorpusError(f"{path} does not exist; give an existing .txt file or folder")
    return files


