"""Tests of training.blocks: no token lost, exact block lengths, the tail both ways, EOS, caching.

    .venv/bin/python -m pytest tests/test_blocks.py -q
"""

import logging

import pytest
from datasets import Dataset, DatasetDict, load_from_disk

import training.blocks as blocks_module
from tokenizer_training import train_tokenizer
from training.blocks import BlockStats, group_blocks, prepare_blocks, tokenize_dataset

DOCS = [
    "Первый документ.\nС новой строкой.",
    "Второй — «короткий».",
    "",
    "Өченче: әни, җил, һава, ңгы.",
    "Четвёртый документ, подлиннее: " + "слово " * 30,
    "5",
]


@pytest.fixture(scope="module")
def char_tok():
    return train_tokenizer(DOCS + ["0123456789"], "char", 500)


@pytest.fixture()
def on_disk(tmp_path):
    """A DatasetDict saved and loaded back, so that datasets caches what is computed from it."""

    def make(splits: dict[str, list[str]]) -> str:
        path = str(tmp_path / "dd")
        dd = DatasetDict({k: Dataset.from_dict({"text": v, "source": ["t"] * len(v)}) for k, v in splits.items()})
        dd.save_to_disk(path)
        return path

    return make


def _expected_ids(tok, docs):
    """What tokenization must give: each document's ids, then <eos>."""
    return [tok(d, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for d in docs]


def _real_tokens(split) -> list[int]:
    """The tokens of a blocks split with the padding removed, in order."""
    out = []
    for row in split:
        out.extend(i for i, m in zip(row["input_ids"], row["attention_mask"]) if m)
    return out


def test_tokenize_appends_eos_after_every_document_and_drops_other_columns(char_tok):
    dd = DatasetDict(train=Dataset.from_dict({"text": DOCS, "source": ["x"] * len(DOCS)}))
    tokenized = tokenize_dataset(dd, char_tok)
    split = tokenized["train"]
    assert split.column_names == ["input_ids", "num_bytes"]
    assert split["input_ids"][:] == _expected_ids(char_tok, DOCS)
    assert split["num_bytes"][:] == [len(d.encode("utf-8")) for d in DOCS]
    without = tokenize_dataset(Dataset.from_dict({"text": DOCS}), char_tok, add_eos=False)["train"]
    assert without["input_ids"][:] == [ids[:-1] for ids in _expected_ids(char_tok, DOCS)]


def test_map_batches_are_bounded_in_bytes_so_long_documents_do_not_fill_memory(char_tok, monkeypatch):
    """Documents of 20,000 characters in batches of 1000 made 35 MB batches (a gigabyte per tokenize worker)."""
    long_docs = Dataset.from_dict({"text": ["слово " * 2000] * 40})  # 40 documents of 22 KB
    assert blocks_module.rows_per_batch(long_docs, "text", 100_000, 1000) == 4
    assert blocks_module.rows_per_batch(long_docs, "text", 10**9, 1000) == 1000  # short documents: the row cap
    assert blocks_module.rows_per_batch(long_docs, "text", 1, 1000) == 1
    assert blocks_module.rows_per_batch(long_docs.select([]), "text", 100_000, 1000) == 1000
    expected = tokenize_dataset(long_docs, char_tok, batch_size=1000)["train"]["input_ids"][:]
    seen = []
    original = blocks_module._tokenize_batch

    def counted(table, **kwargs):
        seen.append(len(table))
        return original(table, **kwargs)

    monkeypatch.setattr(blocks_module, "_tokenize_batch", counted)
    monkeypatch.setattr(blocks_module, "TOKENIZE_BATCH_BYTES", 100_000)
    tokenized = tokenize_dataset(long_docs, char_tok)["train"]
    assert max(seen) == 4 and tokenized["input_ids"][:] == expected  # smaller batches, the same ids
    monkeypatch.setattr(blocks_module, "GROUP_BATCH_BYTES", 100_000)
    blocks = group_blocks(tokenized, 64)["train"]
    assert _real_tokens(blocks) == [t for ids in expected for t in ids]


@pytest.mark.parametrize("block_size", [1, 7, 16, 64])
@pytest.mark.parametrize("batch_size", [1, 2, 1000])
def test_group_loses_no_token_across_batches(char_tok, block_size, batch_size):
    tokenized = tokenize_dataset(Dataset.from_dict({"text": DOCS * 3}), char_tok)
    blocks = group_blocks(tokenized, block_size, batch_size=batch_size)["train"]
    expected = [t for ids in tokenized["train"]["input_ids"] for t in ids]
    assert all(len(row["input_ids"]) == block_size for row in blocks)
    assert sum(sum(row["attention_mask"]) for row in blocks) == len(expected)
    assert _real_tokens(blocks) == expected  # order kept, EOS between documents included
    assert len(blocks) == -(-len(expected) // block_size)
    for row in blocks:
        assert row["labels"] == [i if m else -100 for i, m in zip(row["input_ids"], row["attention_mask"])]


def test_padded_tail(char_tok):
    tokenized = tokenize_dataset(Dataset.from_dict({"text": DOCS}), char_tok)
    total = sum(len(ids) for ids in tokenized["train"]["input_ids"])
    block_size = 16
    assert total % block_size, "the test needs a partial last block"
    last = group_blocks(tokenized, block_size, pad_token_id=char_tok.pad_token_id)["train"][-1]
    tail = total % block_size
    assert last["attention_mask"] == [1] * tail + [0] * (block_size - tail)
    assert last["input_ids"][tail:] == [char_tok.pad_token_id] * (block_size - tail)
    assert last["labels"][tail:] == [-100] * (block_size - tail)
    assert last["input_ids"][tail - 1] == char_tok.eos_token_id  # the last document's EOS is kept


def test_dropped_tail_is_logged(char_tok, caplog):
    tokenized = tokenize_dataset(Dataset.from_dict({"text": DOCS}), char_tok)
    total = sum(len(ids) for ids in tokenized["train"]["input_ids"])
    with caplog.at_level(logging.WARNING, logger="training.blocks"):
        blocks = group_blocks(tokenized, 16, keep_tail=False, batch_size=2)["train"]
    assert len(blocks) == total // 16
    assert all(all(row["attention_mask"]) for row in blocks)
    assert f"dropped the final {total % 16} tokens" in caplog.text


@pytest.mark.parametrize("keep_tail,n_blocks", [(True, 1), (False, 0)])
def test_split_shorter_than_one_block(char_tok, keep_tail, n_blocks):
    blocks, stats = prepare_blocks(
        DatasetDict(train=Dataset.from_dict({"text": DOCS}), validation=Dataset.from_dict({"text": ["5"]})),
        char_tok, 64, keep_tail=keep_tail,
    )
    assert len(blocks["validation"]) == n_blocks
    assert stats["validation"].tokens == 2 and stats["validation"].tail_tokens == 2
    if keep_tail:
        assert blocks["validation"][0]["attention_mask"][:3] == [1, 1, 0]


def test_empty_split_gives_no_blocks(char_tok):
    blocks, stats = prepare_blocks(
        DatasetDict(train=Dataset.from_dict({"text": DOCS}), validation=Dataset.from_dict({"text": []})), char_tok, 8
    )
    assert len(blocks["validation"]) == 0 and stats["validation"] == BlockStats(0, 0, 0, 0, 0, "none")


def test_prepare_blocks_stats(char_tok):
    dd = DatasetDict(train=Dataset.from_dict({"text": DOCS * 2}), validation=Dataset.from_dict({"text": DOCS[:2]}))
    blocks, stats = prepare_blocks(dd, char_tok, 8)
    for name, texts in {"train": DOCS * 2, "validation": DOCS[:2]}.items():
        tokens = sum(len(ids) for ids in _expected_ids(char_tok, texts))
        assert stats[name].bytes == sum(len(t.encode("utf-8")) for t in texts)
        assert stats[name].documents == len(texts) and stats[name].tokens == tokens
        assert stats[name].blocks == len(blocks[name]) == -(-tokens // 8)
        assert sum(sum(row["attention_mask"]) for row in blocks[name]) == tokens
        assert stats[name].to_dict()["tail"] in {"padded", "none"}


def test_second_call_reads_the_cache(char_tok, on_disk, monkeypatch):
    path = on_disk({"train": DOCS * 5, "validation": DOCS})
    dd = load_from_disk(path)
    first, _ = prepare_blocks(dd, char_tok, 16)
    files = {k: v.cache_files for k, v in first.items()}
    assert all(files.values()), "on-disk datasets must give cached results"

    calls = []
    real = blocks_module._tokenize_batch
    monkeypatch.setattr(blocks_module, "_tokenize_batch", lambda *a, **k: calls.append(1) or real(*a, **k))
    again, stats = prepare_blocks(load_from_disk(path), char_tok, 16)  # a fresh load, as a new process would
    assert calls == []  # nothing re-tokenized
    assert {k: v.cache_files for k, v in again.items()} == files
    assert again["train"][:] == first["train"][:]
    assert stats["train"].documents == len(DOCS) * 5

    other = train_tokenizer(DOCS + ["0123456789", "xyz"], "char", 500)
    changed, _ = prepare_blocks(dd, other, 16)
    assert calls  # a different tokenizer is a different cache entry
    assert changed["train"].cache_files != files["train"]
    assert group_blocks(tokenize_dataset(dd, char_tok), 8)["train"].cache_files != files["train"]


def test_tokenize_with_worker_processes_matches(char_tok):
    ds = Dataset.from_dict({"text": DOCS * 4})
    assert (
        tokenize_dataset(ds, char_tok, num_proc=2)["train"]["input_ids"][:]
        == tokenize_dataset(ds, char_tok)["train"]["input_ids"][:]
    )


def test_real_tatar_text_blocks(corpora_dir):
    path = sorted((corpora_dir / "tatar/books").glob("tukay*.txt"))[0]
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()][:300]
    tok = train_tokenizer(lines, "bpe", 400)
    blocks, stats = prepare_blocks(Dataset.from_dict({"text": lines}), tok, 32)
    assert stats["train"].bytes == sum(len(line.encode("utf-8")) for line in lines)
    flat = _real_tokens(blocks["train"])
    assert len(flat) == stats["train"].tokens and flat.count(tok.eos_token_id) == len(lines)
    assert tok.decode(flat, skip_special_tokens=True) == "".join(lines)


def test_bad_inputs(char_tok):
    with pytest.raises(ValueError, match="no column 'text'"):
        tokenize_dataset(Dataset.from_dict({"body": ["x"]}), char_tok)
    with pytest.raises(ValueError, match="block_size"):
        group_blocks(tokenize_dataset(Dataset.from_dict({"text": ["x"]}), char_tok), 0)
