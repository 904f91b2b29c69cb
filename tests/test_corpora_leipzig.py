"""Leipzig Wortschatz corpora: the real archives in ../shared, extracted folders, hostile archives.

    .venv/bin/python -m pytest tests/test_corpora_leipzig.py -q
"""

import io
import tarfile

import pytest

from corpora import CorpusError, extract_archive, read_leipzig
from corpora.leipzig import LEIPZIG_URL, resolve_leipzig_source

NAME = "tat_books_2024_10K"


@pytest.fixture(scope="module")
def archive(corpora_dir):
    return corpora_dir / "tatar" / "leipzig" / f"{NAME}.tar.gz"


def _sentence_lines(archive_path):
    with tarfile.open(archive_path) as tar:
        return tar.extractfile(f"{NAME}/{NAME}-sentences.txt").read().decode("utf-8").splitlines()


def test_archive_gives_one_sentence_per_line(archive):
    sentences, malformed = read_leipzig(archive)
    lines = _sentence_lines(archive)
    assert len(sentences) == len(lines) == 10000 and malformed == 0
    assert sentences[0] == lines[0].split("\t", 1)[1]
    assert sentences[0].startswith("Бу вакыт залда Үзәк Комитет доклады")


def test_extracted_folder_reads_the_same(archive, tmp_path):
    target = extract_archive(archive, tmp_path / "extracted")
    assert (target / NAME / f"{NAME}-sentences.txt").is_file()
    assert read_leipzig(target) == read_leipzig(target / NAME) == read_leipzig(archive)


def test_bare_name_means_the_leipzig_download_url():
    assert resolve_leipzig_source("tat_wikipedia_2021_100K") == LEIPZIG_URL.format(name="tat_wikipedia_2021_100K")
    assert LEIPZIG_URL == "https://downloads.wortschatz-leipzig.de/corpora/{name}.tar.gz"
    with pytest.raises(CorpusError, match="does not exist"):
        resolve_leipzig_source("no/such/archive.tar.gz")


def _tar(path, members):
    """Write a .tar.gz with members given as (TarInfo-kwargs, bytes or None)."""
    with tarfile.open(path, "w:gz") as tar:
        for info_kwargs, data in members:
            info_kwargs = dict(info_kwargs)
            info = tarfile.TarInfo(info_kwargs.pop("name"))
            for key, value in info_kwargs.items():
                setattr(info, key, value)
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


GOOD = ({"name": "x/x-sentences.txt"}, "1\tЯхшы җөмлә монда.\n".encode())


@pytest.mark.parametrize("hostile", [
    ({"name": "../evil.txt"}, b"pwned"),
    ({"name": "x/../../evil.txt"}, b"pwned"),
    ({"name": "/tmp/abs-evil.txt"}, b"pwned"),
    ({"name": "x/link", "type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}, None),
    ({"name": "x/hard", "type": tarfile.LNKTYPE, "linkname": "../evil.txt"}, None),
], ids=["dotdot", "nested-dotdot", "absolute", "symlink", "hardlink"])
def test_member_escaping_the_folder_is_refused(tmp_path, hostile):
    work = tmp_path / "work"
    work.mkdir()
    bad = _tar(tmp_path / "hostile.tar.gz", [GOOD, ({**hostile[0]}, hostile[1])])
    name = hostile[0]["name"]
    for attempt in (lambda: read_leipzig(bad), lambda: extract_archive(bad, work / "target")):
        with pytest.raises(CorpusError) as info:
            attempt()
        message = str(info.value)
        assert "hostile.tar.gz" in message and repr(name) in message and "\n" not in message
    assert not (work / "target").exists()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["hostile.tar.gz", "work"]
    assert not any(p.name.startswith("abs-evil") for p in (tmp_path.parent.iterdir()))


def test_archive_without_sentences_is_an_error(archive, tmp_path):
    with tarfile.open(archive) as tar:
        words = tar.extractfile(f"{NAME}/{NAME}-words.txt").read()
    bad = _tar(tmp_path / "words_only.tar.gz", [({"name": f"{NAME}/{NAME}-words.txt"}, words)])
    with pytest.raises(CorpusError, match=r"words_only\.tar\.gz has no \*-sentences\.txt member"):
        read_leipzig(bad)
    (tmp_path / "folder").mkdir()
    with pytest.raises(CorpusError, match="no \\*-sentences.txt file under"):
        read_leipzig(tmp_path / "folder")


def test_not_an_archive_is_an_error(tmp_path):
    (tmp_path / "fake.tar.gz").write_bytes(b"this is not gzip")
    with pytest.raises(CorpusError, match=r"cannot read archive .*fake\.tar\.gz"):
        read_leipzig(tmp_path / "fake.tar.gz")


def test_malformed_lines_are_skipped_and_counted(tmp_path, caplog):
    body = "\n".join([
        "1\tПервая җөмлә.",
        "no tab here",
        "x2\tнечисловой номер",
        "3\t   ",
        "",  # a blank line is not malformed, just nothing
        "4\tЧетвертая өйдә.",
    ]).encode() + b"\n5\t\xff\xfe broken utf-8\n" + "6\tАхыргы.\r\n".encode()
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "c-sentences.txt").write_bytes(body)
    with caplog.at_level("WARNING"):
        sentences, malformed = read_leipzig(folder)
    assert sentences == ["Первая җөмлә.", "Четвертая өйдә.", "Ахыргы."]
    assert malformed == 4
    assert "skipped 4 malformed lines" in caplog.text


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_a_link_inside_an_extracted_folder_is_refused(tmp_path, kind):
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "x-sentences.txt").write_text("1\tсекрет с машины\n", encoding="utf-8")
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "c-sentences.txt").write_text("1\tЧын җөмлә.\n", encoding="utf-8")
    if kind == "file":
        (folder / "x-sentences.txt").symlink_to(secret / "x-sentences.txt")
    else:
        (folder / "sub").symlink_to(secret, target_is_directory=True)
    with pytest.raises(CorpusError, match=r"refusing folder .* is a link"):
        read_leipzig(folder)


def test_a_huge_single_line_is_skipped_and_counted_without_holding_it(tmp_path, caplog):
    from corpora.leipzig import MAX_LINE_BYTES, bounded_lines

    folder = tmp_path / "c"
    folder.mkdir()
    with (folder / "c-sentences.txt").open("wb") as f:
        f.write("1\tБеренче җөмлә.\n".encode())
        f.write(b"2\t" + "а".encode() * (3 * MAX_LINE_BYTES) + b"\n")  # a file glued into one line
        f.write("3\tАхыргы җөмлә.\n".encode())
    with caplog.at_level("WARNING"):
        sentences, malformed = read_leipzig(folder)
    assert sentences == ["Беренче җөмлә.", "Ахыргы җөмлә."] and malformed == 1
    assert "skipped 1 lines longer than" in caplog.text
    with (folder / "c-sentences.txt").open("rb") as f:
        lines = list(bounded_lines(f))
    assert lines[1] is None and all(len(l) <= MAX_LINE_BYTES for l in lines if l is not None)
