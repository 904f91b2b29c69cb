"""Local text files: encodings, BOMs, layouts, the Tatar books, and bad inputs.

    .venv/bin/python -m pytest tests/test_corpora_text.py -q
"""

import unicodedata

import pytest

from corpora import CorpusArguments, CorpusError, clean_text, detect_layout, find_text_files, read_text_file
from corpora.builder import load_source_rows

TATAR_LETTERS = "әөүҗңһ"


def test_every_tolstoy_txt_gets_the_right_layout(corpora_dir):
    folder = corpora_dir / "tolstoy" / "txt"
    files = find_text_files([folder])
    assert len(files) == 7
    for path in files:
        text = read_text_file(path)
        lines = text.split("\n")
        assert "\ufeff" not in text and "\r" not in text and all(line == line.strip() and line for line in lines)
        if "libru_txt" in path.name:
            assert detect_layout(path.read_bytes().decode("cp1251")) == "libru"
            assert 11000 < len(lines) < 12500
        else:
            assert detect_layout(path.read_bytes().decode("utf-8-sig")) == "lines"
            # one paragraph per line already: the count of non-blank lines is kept
            raw_lines = [l for l in path.read_bytes().decode("utf-8-sig").split("\n") if l.strip()]
            assert len(lines) == len(raw_lines)


def test_utf8_bom_files_have_no_bom_anywhere(corpora_dir):
    for path in sorted((corpora_dir / "tolstoy" / "txt").glob("*.utf8bom.txt")):
        assert path.read_bytes().startswith(b"\xef\xbb\xbf")
        text = read_text_file(path)
        assert "\ufeff" not in text and "\ufeff" not in clean_text(text)
        assert text[0].isalpha(), path.name


def test_tatar_books_keep_their_letters_through_nfc(corpora_dir):
    rows, info = load_source_rows(CorpusArguments(source="text", inputs=[str(corpora_dir / "tatar" / "books")],
                                                  output_dir="unused"))
    assert len(rows) == 5 and len(info["sources"]) == 5
    for row in rows:
        cleaned = clean_text(row["text"])
        assert unicodedata.is_normalized("NFC", cleaned)
        assert sum(cleaned.count(ch) for ch in TATAR_LETTERS) > 100, row["source"]
    everything = "".join(clean_text(r["text"]) for r in rows)
    assert set(TATAR_LETTERS) <= set(everything) and set(TATAR_LETTERS.upper()) & set(everything)


def test_clean_text_normalises_and_keeps_paragraphs():
    decomposed = "е\u0308ж а\u0306\u00a0\u00a0b\tc\x00\x07 d\u200b\u00ad\ufeff\r\nвторой  \n\n третий"
    assert clean_text(decomposed) == "ёж ӑ b c d\nвторой\nтретий"


def test_cp1251_and_utf8_read_the_same(tmp_path):
    text = "   Первый абзац.\n   Второй абзац, где ә и ё.\n"
    (tmp_path / "a.txt").write_bytes(text.replace("ә", "е").encode("cp1251"))
    (tmp_path / "b.txt").write_bytes(text.replace("ә", "е").encode("utf-8"))
    (tmp_path / "c.txt").write_bytes(b"\xef\xbb\xbf" + text.replace("ә", "е").encode("utf-8"))
    assert read_text_file(tmp_path / "a.txt") == read_text_file(tmp_path / "b.txt") == read_text_file(tmp_path / "c.txt")
    assert read_text_file(tmp_path / "a.txt") == "Первый абзац.\nВторой абзац, где е и ё."


def test_empty_file_is_an_error(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blank.txt").write_bytes(b" \n\n \r\n")
    for name in ("empty.txt", "blank.txt"):
        with pytest.raises(CorpusError, match=rf"{name} is empty") as info:
            read_text_file(tmp_path / name)
        assert "\n" not in str(info.value)


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "notes.md").write_text("not a txt")
    with pytest.raises(CorpusError, match=rf"no \*\.txt files under {tmp_path}"):
        find_text_files([tmp_path])


def test_missing_path_is_an_error(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        find_text_files([tmp_path / "nope"])


def test_binary_file_is_an_error(tmp_path, checkpoints_dir):
    weights = next(checkpoints_dir.rglob("*.safetensors"))
    (tmp_path / "model.txt").write_bytes(weights.read_bytes()[:4096])
    with pytest.raises(CorpusError, match=r"model\.txt looks binary"):
        read_text_file(tmp_path / "model.txt")


def test_undecodable_bytes_are_an_error(tmp_path):
    (tmp_path / "bad.txt").write_bytes("Война и мир ".encode("cp1251") + b"\x98\x98\xff\x81\x98" * 20)
    with pytest.raises(CorpusError, match=r"cannot decode .*bad\.txt as UTF-8 or windows-1251") as info:
        read_text_file(tmp_path / "bad.txt")
    assert "iconv" in str(info.value)
