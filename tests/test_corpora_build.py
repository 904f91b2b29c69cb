"""The corpus builder end to end: CLI, manifest, determinism, atomic output; cleaning and splitting.

    .venv/bin/python -m pytest tests/test_corpora_build.py -q
"""

import hashlib
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import datasets
import pytest

from corpora import (
    CorpusArguments,
    CorpusError,
    build_corpus,
    chunk_paragraphs,
    clean_documents,
    clean_text,
    load_corpus,
    overlapping_documents,
    prepare_corpus,
    read_text_file,
    repair_libru_quirks,
    split_documents,
)
from corpora.builder import build_corpus_with_manifest, main

ROOT = Path(__file__).resolve().parents[1]


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))


def _check_manifest_matches(folder: Path) -> tuple[datasets.DatasetDict, dict]:
    corpus = datasets.load_from_disk(str(folder))
    manifest = _manifest(folder)
    assert set(corpus) == {"train", "validation"}
    for split in ("train", "validation"):
        texts = list(corpus[split]["text"])
        assert corpus[split].column_names == ["text", "source"]
        assert manifest["splits"][split] == {"documents": len(texts), "characters": sum(map(len, texts)),
                                             "utf8_bytes": sum(len(t.encode("utf-8")) for t in texts)}
    assert manifest["documents"] == len(corpus["train"]) + len(corpus["validation"])
    assert manifest["rows_read"] >= 1
    return corpus, manifest


def _all_texts(corpus) -> list[str]:
    return sorted(list(corpus["train"]["text"]) + list(corpus["validation"]["text"]))


def _leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if ".building-" in p.name or ".replaced-" in p.name]


@pytest.fixture(scope="module")
def tolstoy_txt(corpora_dir):
    return corpora_dir / "tolstoy" / "txt"


@pytest.fixture(scope="module")
def leipzig_10k(corpora_dir):
    return corpora_dir / "tatar" / "leipzig" / "tat_books_2024_10K.tar.gz"


def test_cli_text_end_to_end(tolstoy_txt, tmp_path):
    out = tmp_path / "tolstoy"
    assert main(["--source", "text", str(tolstoy_txt), "--output_dir", str(out)]) == 0
    corpus, manifest = _check_manifest_matches(out)
    assert list(load_corpus(out)["validation"]["text"]) == list(corpus["validation"]["text"])
    files = sorted(tolstoy_txt.glob("*.txt"))
    assert [s["source"] for s in manifest["sources"]] == [f.name for f in files]
    for record, path in zip(manifest["sources"], files):
        assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert record["bytes"] == path.stat().st_size
    assert manifest["arguments"]["max_doc_chars"] == 20000 and manifest["arguments"]["seed"] == 0
    assert len(corpus["validation"]) >= 10 and len(corpus["train"]) > 200
    full = {path.name: repair_libru_quirks(clean_text(read_text_file(path)))[0] for path in files}
    assert manifest["libru_repairs"]["yo"] > 1000  # lib.ru's "вс„" came out as "всё"
    for row in corpus["validation"]:
        assert len(row["text"]) <= 20000
        assert row["text"] in full[row["source"]], "a validation document must be contiguous text of its source"
    assert not any("\ufeff" in t for t in list(corpus["train"]["text"]))
    # same seed: the same dataset; another seed: another validation set
    again = build_corpus(CorpusArguments(source="text", inputs=[str(tolstoy_txt)], output_dir="unused", seed=0))
    assert list(again["validation"]["text"]) == list(corpus["validation"]["text"])
    assert list(again["train"]["text"]) == list(corpus["train"]["text"])
    other = build_corpus(CorpusArguments(source="text", inputs=[str(tolstoy_txt)], output_dir="unused", seed=1))
    assert list(other["validation"]["text"]) != list(corpus["validation"]["text"])
    assert _all_texts(other) == _all_texts(corpus)


def test_cli_leipzig_end_to_end(leipzig_10k, tmp_path):
    out = tmp_path / "tat"
    assert main(["--source", "leipzig", str(leipzig_10k), "--output_dir", str(out), "--seed", "3"]) == 0
    corpus, manifest = _check_manifest_matches(out)
    assert manifest["rows_read"] == 10000 and manifest["malformed_lines_skipped"] == 0
    assert manifest["rows_read"] == (manifest["documents"] + manifest["duplicates_removed"]
                                     + manifest["too_short_dropped"] + manifest["empty_dropped"])
    assert manifest["sources"][0]["sha256"] == hashlib.sha256(leipzig_10k.read_bytes()).hexdigest()
    assert set(list(corpus["train"]["source"])) == {"tat_books_2024_10K.tar.gz"}
    n = manifest["documents"]
    assert len(corpus["validation"]) == round(n * 0.05)
    assert all("\n" not in t and len(t) >= 20 for t in list(corpus["validation"]["text"]))
    all_text = list(corpus["train"]["text"]) + list(corpus["validation"]["text"])
    assert len(set(all_text)) == len(all_text), "exact duplicates must be gone"
    same = build_corpus(CorpusArguments(source="leipzig", inputs=[str(leipzig_10k)], output_dir="unused", seed=3))
    other = build_corpus(CorpusArguments(source="leipzig", inputs=[str(leipzig_10k)], output_dir="unused", seed=4))
    assert list(same["validation"]["text"]) == list(corpus["validation"]["text"])
    assert list(other["validation"]["text"]) != list(corpus["validation"]["text"])


def test_existing_output_folder_is_an_error_unless_overwrite(leipzig_10k, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    argv = ["--source", "leipzig", str(leipzig_10k), "--output_dir", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: {out} already exists and is not empty; pass --overwrite")
    assert (out / "precious.txt").read_text() == "keep me"
    assert main(argv + ["--overwrite"]) == 0
    assert not (out / "precious.txt").exists()
    _check_manifest_matches(out)
    assert _leftovers(tmp_path) == []
    # an empty existing folder is fine without --overwrite
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["--source", "leipzig", str(leipzig_10k), "--output_dir", str(empty)]) == 0


def test_failed_run_writes_nothing_and_keeps_the_old_output(tolstoy_txt, checkpoints_dir, tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name in ("posle_bala_after_the_ball.utf8bom.txt", "tri_smerti_three_deaths.utf8bom.txt"):
        (inputs / name).write_bytes((tolstoy_txt / name).read_bytes())
    good = prepare_corpus(CorpusArguments(source="text", inputs=[str(inputs)], output_dir=str(tmp_path / "old")))
    before = {p.relative_to(good): p.read_bytes() for p in good.rglob("*") if p.is_file()}
    # one unreadable input among good ones
    (inputs / "zz_weights.txt").write_bytes(next(checkpoints_dir.rglob("*.safetensors")).read_bytes()[:8192])
    for target, extra in ((tmp_path / "new", []), (good, ["--overwrite"])):
        assert main(["--source", "text", str(inputs), "--output_dir", str(target), *extra]) == 2
    assert not (tmp_path / "new").exists()
    assert {p.relative_to(good): p.read_bytes() for p in good.rglob("*") if p.is_file()} == before
    assert _leftovers(tmp_path) == []


def test_cli_error_is_one_line_on_stderr_and_exit_2(tmp_path):
    (tmp_path / "empty").mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "corpora", "--source", "text", str(tmp_path / "empty"),
                           "--output_dir", str(tmp_path / "out")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: no *.txt files under {tmp_path / 'empty'}; "
                                                "give a folder that holds .txt files, or the files"]
    assert proc.stdout == "" and not (tmp_path / "out").exists()


def test_hub_dataset_from_a_local_path(tmp_path):
    data = tmp_path / "hubdata"
    data.mkdir()
    rows = [{"body": f"Документ номер {i}: җөмлә өчен текст.", "id": i} for i in range(40)] + [{"body": "коротко", "id": 99}]
    (data / "train.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    args = CorpusArguments(source="hub", inputs=[str(data)], output_dir=str(tmp_path / "out"), text_column="body",
                           validation_split=0.1)
    out = prepare_corpus(args)
    corpus, manifest = _check_manifest_matches(out)
    assert manifest["documents"] == 40 and manifest["too_short_dropped"] == 1
    assert len(corpus["validation"]) == 4
    # a saved DatasetDict (our own output) also works as a hub-source path
    again = build_corpus(CorpusArguments(source="hub", inputs=[str(out)], output_dir="unused", validation_split=0.1))
    assert _all_texts(again) == _all_texts(corpus)
    with pytest.raises(CorpusError, match=r"has no column 'text' \(columns: body, id\); pass --text_column"):
        build_corpus(CorpusArguments(source="hub", inputs=[str(data)], output_dir="unused"))
    with pytest.raises(CorpusError, match="cannot load the dataset no-such-user/no-such-dataset"):
        build_corpus(CorpusArguments(source="hub", inputs=["no-such-user/no-such-dataset"], output_dir="unused"))


def test_chunk_paragraphs_cuts_at_paragraph_boundaries():
    text = "\n".join(["а" * 30, "б" * 30, "в" * 30, "г" * 100 + " " + "д" * 20])
    docs = chunk_paragraphs(text, 70)
    assert all(len(d) <= 70 for d in docs)
    assert docs[:2] == ["а" * 30 + "\n" + "б" * 30, "в" * 30]
    assert "".join(docs).replace("\n", "").replace(" ", "") == text.replace("\n", "").replace(" ", "")
    assert chunk_paragraphs("short", 0) == ["short"] and chunk_paragraphs("", 10) == []


def test_clean_documents_dedups_drops_short_and_counts():
    rows = [{"text": "Один абзац текста.\nВторой абзац.", "source": "a"},
            {"text": "Один абзац\u00a0текста.\r\nВторой   абзац.", "source": "b"},  # same after cleaning
            {"text": "мало", "source": "c"},
            {"text": " \x00 ", "source": "d"}]
    kept, stats = clean_documents(rows, min_chars=10, max_doc_chars=20000)
    assert kept == [{"text": "Один абзац текста.\nВторой абзац.", "source": "a"}]
    assert (stats.duplicates_removed, stats.too_short_dropped, stats.empty_dropped, stats.documents) == (1, 1, 1, 1)


def test_split_documents_is_seeded_and_keeps_order():
    rows = [{"text": str(i), "source": "s"} for i in range(100)]
    train, val = split_documents(rows, 0.1, seed=0)
    assert len(val) == 10 and len(train) == 90
    assert split_documents(rows, 0.1, seed=0) == (train, val)
    assert split_documents(rows, 0.1, seed=1)[1] != val
    assert [int(r["text"]) for r in val] == sorted(int(r["text"]) for r in val)
    assert sorted(train + val, key=lambda r: int(r["text"])) == rows
    assert len(split_documents(rows[:3], 0.05, seed=0)[1]) == 1  # at least one validation document
    assert split_documents(rows, 0.0)[1] == []


def _paragraph_key(paragraph: str) -> str:
    return re.sub(r"[\W_]+", "", paragraph.lower().replace("ё", "е"))


def test_overlapping_documents_finds_another_edition_of_the_same_text(tolstoy_txt):
    text = read_text_file(tolstoy_txt / "tri_smerti_three_deaths.utf8bom.txt")
    other = read_text_file(tolstoy_txt / "posle_bala_after_the_ball.utf8bom.txt")
    half = clean_text(text)[: len(text) // 2]
    # another edition: other dashes and quotes, ё spelled е, paragraphs joined differently, a sentence dropped
    edition = half.replace("–", "—").replace("ё", "е").replace("«", '"').replace("»", '"').replace("\n", " ", 5)
    edition = edition.replace(edition.split(". ")[3] + ". ", "", 1)
    documents = [half, clean_text(other), edition, clean_text(text)[len(text) // 2 :]]
    assert overlapping_documents(documents) == {0, 2}
    assert overlapping_documents(documents, min_share=1.01) == set()


def test_split_documents_keeps_near_duplicates_out_of_validation(caplog):
    rows = [{"text": str(i), "source": "s"} for i in range(20)]
    train, val = split_documents(rows, 0.25, seed=0, not_for_validation=set(range(10)))
    assert len(val) == 5 and all(int(r["text"]) >= 10 for r in val)
    with caplog.at_level(logging.WARNING, logger="corpora.cleaning"):
        train, val = split_documents(rows, 0.25, seed=0, not_for_validation=set(range(18)))
    assert [r["text"] for r in val] == ["18", "19"] and len(train) == 18
    assert "validation gets 2 instead of 5" in caplog.text


def test_two_editions_of_war_and_peace_do_not_leak_into_validation(tolstoy_txt, tmp_path):
    """tolstoy/txt holds War and Peace twice (az.lib.ru's volumes 1-2 and lib.ru's full text, which differ in
    punctuation and paragraph breaks): without the check a third of the validation paragraphs are in train."""

    def leaked_share(validation_overlap: float) -> tuple[float, dict]:
        args = CorpusArguments(source="text", inputs=[str(tolstoy_txt)], output_dir=str(tmp_path / "unused"),
                               validation_overlap=validation_overlap)  # fmt: skip
        corpus, manifest = build_corpus_with_manifest(args)
        train = {_paragraph_key(p) for text in corpus["train"]["text"] for p in text.split("\n")}
        validation = [_paragraph_key(p) for text in corpus["validation"]["text"] for p in text.split("\n")]
        validation = [key for key in validation if len(key) >= 40]
        return sum(key in train for key in validation) / len(validation), manifest

    share_off, manifest_off = leaked_share(0.0)
    share_on, manifest_on = leaked_share(0.5)
    assert share_off > 0.2 and manifest_off["kept_out_of_validation_as_near_duplicates"] == 0
    assert share_on < 0.01 and manifest_on["kept_out_of_validation_as_near_duplicates"] > 100
    assert manifest_on["splits"]["validation"]["documents"] == manifest_off["splits"]["validation"]["documents"]


def test_validation_overlap_outside_0_1_is_an_error(tmp_path):
    with pytest.raises(CorpusError, match="--validation_overlap 1.5"):
        CorpusArguments(source="text", inputs=["x"], output_dir=str(tmp_path), validation_overlap=1.5)


def test_a_short_story_gets_both_splits(corpora_dir, tmp_path):
    """Tolstoy's After the Ball (34 KB, one document at --max_doc_chars 20000) is cut finer, not left unsplit."""
    story = corpora_dir / "tolstoy" / "txt" / "posle_bala_after_the_ball.utf8bom.txt"
    corpus, manifest = build_corpus_with_manifest(CorpusArguments(source="text", inputs=[str(story)],
                                                                  output_dir=str(tmp_path / "o")))  # fmt: skip
    assert len(corpus["train"]) >= 10 and len(corpus["validation"]) >= 1
    total = sum(manifest["splits"][s]["characters"] for s in ("train", "validation"))
    assert 0.02 < manifest["splits"]["validation"]["characters"] / total < 0.15  # about --validation_split 0.05


def test_a_text_too_small_to_split_is_refused_at_build_time(tmp_path, capsys):
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("Все счастливые семьи похожи друг на друга.\n", encoding="utf-8")
    assert main(["--source", "text", str(tiny), "--output_dir", str(tmp_path / "o")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "too small to split" in err[0] and str(tiny) in err[0]
    assert not (tmp_path / "o").exists()
    # with no validation wanted, it builds
    assert main(["--source", "text", str(tiny), "--output_dir", str(tmp_path / "o"), "--validation_split", "0"]) == 0


def test_stale_build_folders_of_killed_runs_are_cleaned(tmp_path):
    """A kill during the save leaves `.NAME.building-PID-*` (and maybe `.NAME.replaced-PID-*`) beside the target."""
    from corpora.builder import clean_stale_builds

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    text = tmp_path / "t.txt"
    text.write_text("".join(f"{i}. Все счастливые семьи похожи друг на друга, каждая несчастливая семья несчастлива "
                            "по-своему.\n" for i in range(30)), encoding="utf-8")
    out = tmp_path / "o"
    assert main(["--source", "text", str(text), "--output_dir", str(out)]) == 0
    # killed between moving the old corpus aside and moving the new one in: the old one is put back
    moved_aside = tmp_path / f".o.replaced-{pid}-1700000000"
    os.replace(out, moved_aside)
    clean_stale_builds(out)
    assert (out / "manifest.json").is_file() and not moved_aside.exists()
    # killed while saving: the half-written build folder is removed; a live build's is not touched
    stale = tmp_path / f".o.building-{pid}-abc123"
    stale.mkdir()
    (stale / "half.arrow").write_bytes(b"x")
    live = tmp_path / f".o.building-{os.getpid()}-def456"
    live.mkdir()
    assert main(["--source", "text", str(text), "--output_dir", str(out), "--overwrite", "true"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".o.")) == [live.name]
