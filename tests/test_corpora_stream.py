"""corpora/stream.py: `--streaming true` gives the corpus the in-memory builder gives, without holding it.

    .venv/bin/python -m pytest tests/test_corpora_stream.py -q
"""

import json

import pytest

from corpora import CorpusArguments, CorpusError, load_corpus, prepare_corpus
from corpora.builder import build_corpus_with_manifest, main


def test_streaming_builds_the_same_corpus_as_the_in_memory_builder(corpora_dir, tmp_path):
    inputs = [str(corpora_dir / "tolstoy" / "txt")]
    out = prepare_corpus(CorpusArguments(source="text", inputs=inputs, output_dir=str(tmp_path / "s"), streaming=True))
    streamed = load_corpus(out)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    corpus, expected = build_corpus_with_manifest(CorpusArguments(source="text", inputs=inputs, output_dir="unused"))
    for split in ("train", "validation"):
        assert streamed[split]["text"] == corpus[split]["text"]
        assert streamed[split]["source"] == corpus[split]["source"]
    for key in ("splits", "documents", "duplicates_removed", "kept_out_of_validation_as_near_duplicates",
                "libru_repairs", "sources"):  # fmt: skip
        assert manifest[key] == expected[key], key
    assert manifest["streamed"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]  # the Arrow working folder is gone


def test_streaming_bad_inputs_are_one_line_errors(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert main(["--source", "text", str(empty), "--output_dir", str(tmp_path / "o"), "--streaming", "true"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "empty.txt is empty" in err[-1]
    assert not (tmp_path / "o").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".ropegpt")]
    with pytest.raises(CorpusError, match="--streaming works with --source text"):
        prepare_corpus(CorpusArguments(source="leipzig", inputs=["x"], output_dir=str(tmp_path / "l"), streaming=True))
