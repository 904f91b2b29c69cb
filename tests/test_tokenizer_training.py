"""Tests of tokenizer_training: round trips, <unk>, special ids, save/load, stats, JSON export, CLI.

    .venv/bin/python -m pytest tests/test_tokenizer_training.py -q
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from datasets import Dataset, DatasetDict
from transformers import AutoTokenizer

from tokenizer_training import SPECIAL_TOKENS, export_json, tokenizer_stats, train_tokenizer
from tokenizer_training.__main__ import main

ROOT = Path(__file__).resolve().parents[1]

ODD_STRINGS = [
    "",
    " ",
    "  leading spaces",
    "trailing  ",
    "multiple    spaces\tand\ttabs",
    "\n\nnewlines\n\n\n",
    "\r\nwindows\r\n",
    "emoji 😀👍🏽 и ZWJ 👨‍👩‍👧",
    "combining й and ё",
    "中文 العربية ελληνικά",
    "literal <eos> and <unk> and <pad>",
    "\x00\x01 control \u200b zero-width",
]


def _chunks(path: Path, paragraphs: int, per_chunk: int = 3) -> list[str]:
    """The first `paragraphs` paragraphs of a real text, `per_chunk` to a text, blank lines kept between."""
    pieces = path.read_text(encoding="utf-8-sig").split("\n\n")[:paragraphs]
    return ["\n\n".join(pieces[i : i + per_chunk]) for i in range(0, len(pieces), per_chunk)]


@pytest.fixture(scope="module")
def russian(corpora_dir) -> list[str]:
    return _chunks(corpora_dir / "tolstoy/txt/smert_ivana_ilicha.utf8bom.txt", 60)


@pytest.fixture(scope="module")
def tatar(corpora_dir) -> list[str]:
    path = sorted((corpora_dir / "tatar/books").glob("tukay*.txt"))[0]
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()][:400]
    # Keep the line breaks: groups of lines, so newlines are part of what must round-trip.
    return ["\n".join(lines[i : i + 8]) + "\n" for i in range(0, len(lines), 8)]


@pytest.fixture(scope="module")
def bpe(russian, tatar):
    return train_tokenizer(russian + tatar, "bpe", 600)


def _roundtrip(tok, text: str) -> str:
    return tok.decode(tok(text)["input_ids"])


def test_real_text_has_the_characters_we_care_about(russian, tatar):
    ru, tt = "".join(russian), "".join(tatar)
    for ch in "«»—ё\xa0\n":
        assert ch in ru
    for ch in "әөүҗңһ\n":
        assert ch in tt


def test_bpe_round_trips_real_russian_and_tatar(bpe, russian, tatar):
    for text in russian + tatar:
        assert _roundtrip(bpe, text) == text


@pytest.mark.parametrize("text", ODD_STRINGS)
def test_bpe_round_trips_any_string_and_never_unk(bpe, text):
    ids = bpe(text)["input_ids"]
    assert bpe.decode(ids) == text
    assert bpe.unk_token_id not in ids


def test_bpe_does_not_add_prefix_space(bpe):
    assert bpe.convert_ids_to_tokens(bpe("a")["input_ids"]) == ["a"]


@pytest.mark.parametrize("kind", ["char", "word"])
def test_char_and_word_round_trip_seen_text(kind, russian, tatar):
    texts = russian + tatar + ["  indent\n\n   double  space\r\n"]
    tok = train_tokenizer(texts, kind, 100_000, min_frequency=1)
    for text in texts:
        ids = tok(text)["input_ids"]
        assert tok.unk_token_id not in ids
        assert tok.decode(ids) == text


def test_char_unseen_character_is_unk():
    tok = train_tokenizer(["абв где\n"], "char", 50)
    ids = tok("аж😀б")["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == ["а", "<unk>", "<unk>", "б"]


def test_char_keeps_characters_seen_once_despite_min_frequency():
    tok = train_tokenizer(["ааа ё"], "char", 50, min_frequency=2)
    assert tok.unk_token_id not in tok("ё")["input_ids"]


def test_word_splits_words_punctuation_and_whitespace():
    tok = train_tokenizer(["Мир, мир!\n  Әни."] * 2, "word", 100)
    tokens = tok.convert_ids_to_tokens(tok("Мир, мир!\n  Әни.")["input_ids"])
    assert tokens == ["Мир", ",", " ", "мир", "!", "\n", " ", " ", "Әни", "."]


def test_word_unseen_word_is_unk_and_vocab_is_frequency_capped():
    texts = ["кот кот кот пёс пёс мышь"] * 3
    tok = train_tokenizer(texts, "word", len(SPECIAL_TOKENS) + 3, min_frequency=1)
    vocab = tok.get_vocab()
    assert len(vocab) == len(SPECIAL_TOKENS) + 3
    assert {"кот", " ", "пёс"} <= set(vocab) and "мышь" not in vocab
    ids = tok("кот мышь слон")["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == ["кот", " ", "<unk>", " ", "<unk>"]


@pytest.mark.parametrize("kind,size", [("bpe", 300), ("char", 40), ("word", 40)])
def test_special_tokens_ids_and_max_length(kind, size):
    tok = train_tokenizer(["abc def abc def\n"] * 3, kind, size, model_max_length=77)
    assert tok.convert_tokens_to_ids(SPECIAL_TOKENS) == [0, 1, 2, 3]
    assert (tok.pad_token_id, tok.unk_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2, 3)
    assert tok.model_max_length == 77
    assert tok("abc")["input_ids"] == tok("abc", add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("kind,size", [("bpe", 400), ("char", 200), ("word", 400)])
def test_save_pretrained_then_autotokenizer_encodes_identically(kind, size, russian, tmp_path):
    tok = train_tokenizer(russian, kind, size, model_max_length=256)
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded.model_max_length == 256
    assert loaded.convert_tokens_to_ids(SPECIAL_TOKENS) == [0, 1, 2, 3]
    assert loaded.eos_token == "<eos>" and loaded.pad_token == "<pad>"
    for text in russian[:10] + ["unseen ☃ text <eos>"]:
        assert loaded(text)["input_ids"] == tok(text)["input_ids"]
        assert loaded.decode(loaded(text)["input_ids"]) == tok.decode(tok(text)["input_ids"])


def test_train_from_a_generator_streams():
    def gen():
        for i in range(3000):
            yield f"строка {i % 50} текст\n"

    tok = train_tokenizer(gen(), "word", 200, min_frequency=1)
    assert tok("строка 7 текст")["input_ids"].count(tok.unk_token_id) == 0


@pytest.mark.parametrize(
    "kind,size,minimum",
    [("bpe", 259, "260"), ("char", 6, "9"), ("word", 4, "5")],
)
def test_vocab_too_small_is_a_one_line_value_error(kind, size, minimum):
    with pytest.raises(ValueError) as info:
        train_tokenizer(["абв абв\n"], kind, size)
    message = str(info.value)
    assert "\n" not in message
    assert f"vocab_size={size}" in message and minimum in message and "raise" in message


@pytest.mark.parametrize("texts", [[], ["", ""]])
@pytest.mark.parametrize("kind", ["bpe", "char", "word"])
def test_empty_texts_is_a_one_line_value_error(kind, texts):
    with pytest.raises(ValueError, match="no text") as info:
        train_tokenizer(iter(texts), kind, 300)
    assert "\n" not in str(info.value)


def test_unknown_kind():
    with pytest.raises(ValueError, match="bpe, char, word"):
        train_tokenizer(["a"], "sentencepiece", 300)


def test_stats_are_sane(bpe, russian):
    stats = tokenizer_stats(bpe, russian)
    assert stats["texts"] == len(russian)
    assert stats["bytes"] == sum(len(t.encode("utf-8")) for t in russian)
    assert stats["words"] == sum(len(t.split()) for t in russian)
    assert 1.0 < stats["bytes_per_token"] < 8.0  # Cyrillic is 2 bytes a letter; 600 tokens merge a little
    assert 1.0 < stats["tokens_per_word"] < 6.0
    assert stats["unk_share"] == 0.0
    char = train_tokenizer(russian[:5], "char", 500)
    unseen = tokenizer_stats(char, ["ab", "ёё"])
    assert unseen["tokens"] == 4 and 0 < unseen["unk_share"] <= 1


def test_export_json_shows_readable_tokens(bpe, russian, tmp_path):
    path = export_json(bpe, russian, tmp_path / "map.json", limit=3)
    raw = path.read_text(encoding="utf-8")
    assert "Ġ" not in raw and "Ð" not in raw  # decoded text, not GPT-2's byte stand-ins
    assert "\\u04" not in raw  # ensure_ascii=False: Cyrillic is written as itself
    data = json.loads(raw)
    assert set(data) == {"vocab", "data"}
    assert data["vocab"][:4] == SPECIAL_TOKENS and len(data["vocab"]) == len(bpe)
    assert len(data["data"]) == 3
    for item, text in zip(data["data"], russian):
        assert item["text"] == text
        assert item["ids"] == bpe(text)["input_ids"]
        assert len(item["tokens"]) == len(item["ids"])
        if "\\x" not in "".join(item["tokens"]):
            assert "".join(item["tokens"]) == text


def _tiny_datasetdict(path: Path, texts: list[str]) -> Path:
    DatasetDict(
        train=Dataset.from_dict({"text": texts[:-5]}), validation=Dataset.from_dict({"text": texts[-5:]})
    ).save_to_disk(str(path))
    return path


def test_cli_end_to_end(russian, tmp_path, capsys):
    data = _tiny_datasetdict(tmp_path / "dd", russian)
    out = tmp_path / "tok"
    code = main(
        ["--dataset_dir", str(data), "--kind", "bpe", "--vocab_size", "400", "--output_dir", str(out),
         "--export_json", str(tmp_path / "m.json"), "--model_max_length", "128"]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "bytes per token" in printed and "tokens per word" in printed and "<unk> share" in printed
    loaded = AutoTokenizer.from_pretrained(out)
    assert len(loaded) == 400 and loaded.model_max_length == 128
    assert len(json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))["data"]) == 5


def test_cli_missing_dataset_dir_exits_2_with_one_line_and_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "tokenizer_training", "--dataset_dir", str(tmp_path / "missing"),
         "--output_dir", str(tmp_path / "o")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "missing" in lines[0], proc.stderr


def test_cli_bad_inputs_exit_2_with_one_line(russian, tmp_path, capsys):
    data = _tiny_datasetdict(tmp_path / "dd", russian)
    DatasetDict(train=Dataset.from_dict({"body": ["x"]})).save_to_disk(str(tmp_path / "nocol"))
    (tmp_path / "plain").mkdir()
    DatasetDict(train=Dataset.from_dict({"text": ["x"]}), validation=Dataset.from_dict({"text": []})).save_to_disk(
        str(tmp_path / "emptysplit")
    )
    capsys.readouterr()  # drop the save_to_disk progress bars
    cases = {
        "single Dataset": ["--dataset_dir", str(data / "train")],
        "not a dataset": ["--dataset_dir", str(tmp_path / "plain")],
        "no column 'text'": ["--dataset_dir", str(tmp_path / "nocol")],
        "has an empty split": ["--dataset_dir", str(tmp_path / "emptysplit")],
        "vocab_size=10": ["--dataset_dir", str(data), "--kind", "char", "--vocab_size", "10"],
    }
    for expected, args in cases.items():
        assert main(["--output_dir", str(tmp_path / "o"), *args]) == 2
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], err


def test_dataset_texts_reads_all_in_order_or_a_seeded_sample_of_contiguous_runs():
    import datasets

    from tokenizer_training import dataset_texts

    texts = [f"документ {i} " + "слово " * (i % 7) for i in range(2500)]
    ds = datasets.Dataset.from_dict({"text": texts})
    assert list(dataset_texts(ds)) == texts  # every text, in order, read in Arrow batches
    sample = list(dataset_texts(ds, max_bytes=5_000, seed=3, batch_size=10, run_bytes=1_000))
    assert sample == list(dataset_texts(ds, max_bytes=5_000, seed=3, batch_size=10, run_bytes=1_000))  # seeded
    assert sample != list(dataset_texts(ds, max_bytes=5_000, seed=4, batch_size=10, run_bytes=1_000))
    size = sum(len(t.encode()) for t in sample)
    assert 5_000 <= size < 5_000 + 10 * 100  # stops within one batch of the budget
    # Whole runs of neighbouring documents (a few pages of the file each), from all over the split.
    rows = [texts.index(t) for t in sample]
    starts = [r for i, r in enumerate(rows) if i == 0 or r != rows[i - 1] + 1]
    assert 3 <= len(starts) <= 8 and sorted(starts) != starts
    assert max(rows) - min(rows) > 1000
    # A budget larger than the split reads all of it, run after run.
    assert sorted(dataset_texts(ds, max_bytes=10**9, run_bytes=1_000), key=texts.index) == texts


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="reads Linux's /proc; malloc_trim is glibc's")
def test_bpe_training_hands_its_freed_heap_back(corpora_dir):
    """The trainer's word counts are freed but malloc keeps them (about 0.1 GB for War and Peace) unless
    trimmed; a tokenize map with num_proc forks right after training and would carry them into every worker."""
    probe = """import sys
from pathlib import Path
from tokenizer_training import train_tokenizer
def anon():
    rollup = Path("/proc/self/smaps_rollup").read_text().splitlines()
    return int(next(line for line in rollup if line.startswith("Anonymous:")).split()[1]) * 1024
texts = Path(sys.argv[1]).read_bytes().decode("cp1251").split("\\n")
train_tokenizer(texts[:100], "bpe", 300)  # imports and the trainer's thread pool, before the baseline
before = anon()
tokenizer = train_tokenizer(texts, "bpe", 2000)
print(anon() - before)
"""
    path = corpora_dir / "tolstoy" / "txt" / "war_and_peace_full.libru_txt.cp1251.txt"
    out = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])  # fmt: skip
    assert int(out.stdout.split()[-1]) < 60e6  # 27 MB measured (the tokenizer itself); 113 MB untrimmed
