"""Turn a DatasetDict of documents into fixed-length causal-LM training blocks, losing no token.

    from training.blocks import prepare_blocks
    blocks, stats = prepare_blocks(load_from_disk("data/tolstoy"), tokenizer, block_size=256)
    stats["validation"].bytes          # UTF-8 bytes of the text: bits per byte = nats / ln 2 / bytes

Two cached `datasets.map` steps, like transformers' run_clm.py example, with its losses fixed:

1. `tokenize_dataset`: batched map of the fast (Rust) tokenizer over the `text` column. Each document
   gets an `<eos>` after it, so documents do not run together once concatenated. Output columns:
   `input_ids` (list of int32) and `num_bytes` (the document's UTF-8 byte count, kept so that the byte
   total of a split comes out of the same cache as its tokens).
2. `group_blocks`: concatenate every split's tokens and cut them into rows of exactly `block_size`
   (`input_ids`, `attention_mask`, `labels` = a copy of `input_ids`). run_clm.py drops the remainder of
   every 1000-row map batch; here the remainder is carried into the next batch, so the only tokens not in
   a full block are the final tail of the split (< block_size). `keep_tail=True` (the default) pads that
   tail into one last block (pad id, attention_mask 0, labels -100); `keep_tail=False` drops it and logs
   how many tokens went. The carry lives in a single-process map over Arrow batches (flatten the list
   column, reshape with numpy), which measured faster than run_clm's Python-list grouping and needs no
   Python objects per token.

Both steps are cached by `datasets` under an explicit fingerprint made of the input's fingerprint, the
tokenizer's serialized JSON and the parameters, so a second call with the same inputs reads the cache
files instead of recomputing (datasets only caches datasets that live on disk: `load_from_disk`, not
`Dataset.from_dict`).

`prepare_blocks` runs both and returns `(DatasetDict of blocks, {split: BlockStats})`; `BlockStats` holds
documents, bytes, tokens, blocks and the tail, which later turn a summed loss into bits per byte.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, DatasetDict, Features, List, Value
from datasets.fingerprint import Hasher

logger = logging.getLogger(__name__)

# Bump when the output of a step changes, so that old cache files are not reused.
_TOKENIZE_VERSION = "tokenize-v1"
_GROUP_VERSION = "group-v1"
LABEL_IGNORE = -100

TOKENIZED_FEATURES = Features({"input_ids": List(Value("int32")), "num_bytes": Value("int64")})

# Map batches are bounded in bytes as well as rows: a row count alone lets documents of 20,000 characters make
# batches of 35 MB of text, which the tokenizer's encodings and the id lists turn into a gigabyte per worker.
TOKENIZE_BATCH_BYTES = 4_000_000  # UTF-8 text per tokenize batch (at most 1000 documents)
GROUP_BATCH_BYTES = 32_000_000  # token ids per group batch (at most 10,000 documents)


@dataclass
class BlockStats:
    """What one split became. `bytes` is the UTF-8 size of its text (the denominator of bits per byte)."""

    documents: int
    bytes: int
    tokens: int  # tokens produced by tokenization, the <eos> after each document included
    blocks: int
    tail_tokens: int  # tokens in the final partial block (0 when the split divides evenly)
    tail: str  # "padded", "dropped" or "none"

    def to_dict(self) -> dict:
        return asdict(self)


def _splits(dd: Dataset | DatasetDict) -> DatasetDict:
    return dd if isinstance(dd, DatasetDict) else DatasetDict({"train": dd})


def _empty(features: Features) -> Dataset:
    return Dataset.from_dict({key: [] for key in features}, features=features)


def rows_per_batch(split: Dataset, column: str, target_bytes: int, max_rows: int) -> int:
    """Rows of `split` per map batch so that a batch holds about `target_bytes` of `column` (1 to `max_rows`).

    The mean row size comes from the Arrow buffers' sizes (no data is read), over the table under any
    `select`, which is as representative as the selection.
    """
    table = split.data
    if table.num_rows == 0:
        return max_rows
    mean = table.column(column).nbytes / table.num_rows
    return int(min(max_rows, max(1, target_bytes // max(mean, 1))))


def _tokenize_batch(table: pa.Table, *, tokenizer, text_column: str, eos_id: int | None) -> pa.Table:
    """Token ids (+ `<eos>`) and UTF-8 byte counts of one Arrow batch of documents."""
    texts = table.column(text_column)
    # encode_batch_fast skips the character offsets nobody uses here; the backend carries
    # split_special_tokens, so a literal "<eos>" in the text stays text.
    encodings = tokenizer.backend_tokenizer.encode_batch_fast(texts.to_pylist(), add_special_tokens=False)
    tail = [] if eos_id is None else [eos_id]
    ids = pa.array([e.ids + tail for e in encodings], type=pa.list_(pa.int32()))
    num_bytes = pc.binary_length(texts).cast(pa.int64())
    return pa.table({"input_ids": ids, "num_bytes": num_bytes})


def tokenize_dataset(
    dd: Dataset | DatasetDict,
    tokenizer,
    *,
    add_eos: bool = True,
    num_proc: int | None = None,
    text_column: str = "text",
    batch_size: int | None = None,
) -> DatasetDict:
    """Tokenize the `text_column` of every split with a batched, cached `map`.

    Returns a DatasetDict (a lone Dataset is treated as split "train") whose rows are the documents, with
    columns `input_ids` (int32; `<eos>` appended when `add_eos`) and `num_bytes`; the original columns are
    removed. `num_proc` > 1 runs the map in worker processes (the Rust tokenizer already uses both cores
    of a small machine through its own threads, so the default None is usually as fast). `batch_size`
    (documents per map batch) defaults to about `TOKENIZE_BATCH_BYTES` of text and at most 1000 documents,
    which bounds each process's memory whatever the corpus size; it does not change the output.
    """
    dd = _splits(dd)
    if add_eos and tokenizer.eos_token_id is None:
        raise ValueError("add_eos=True but the tokenizer has no eos_token; set one or pass add_eos=False")
    eos_id = tokenizer.eos_token_id if add_eos else None
    # The tokenizer's own serialization (not a pickle of the Python wrapper, whose state changes after use)
    # decides the cache key, with split_special_tokens because it changes the ids.
    backend = tokenizer.backend_tokenizer
    tokenizer_key = Hasher.hash([backend.to_str(), backend.encode_special_tokens])
    out = {}
    for name, split in dd.items():
        if text_column not in split.column_names:
            raise ValueError(
                f"split {name} has no column {text_column!r} (columns: {', '.join(split.column_names)}); "
                "pass text_column="
            )
        if len(split) == 0:  # datasets' map returns an empty input unchanged, with its old columns
            out[name] = _empty(TOKENIZED_FEATURES)
            continue
        fingerprint = Hasher.hash([split._fingerprint, tokenizer_key, eos_id, text_column, _TOKENIZE_VERSION])
        out[name] = (
            split.with_format("arrow")
            .map(
                _tokenize_batch,
                batched=True,
                batch_size=batch_size or rows_per_batch(split, text_column, TOKENIZE_BATCH_BYTES, 1000),
                remove_columns=split.column_names,
                fn_kwargs={"tokenizer": tokenizer, "text_column": text_column, "eos_id": eos_id},
                features=TOKENIZED_FEATURES,
                num_proc=num_proc if num_proc and num_proc > 1 and len(split) > 1 else None,
                new_fingerprint=fingerprint,
                desc=f"Tokenizing {name}",
            )
            .with_format(None)
        )
    return DatasetDict(out)


def _block_table(ids: np.ndarray, block_size: int, valid: int | None = None) -> pa.Table:
    """Arrow table of blocks from a flat int32 array whose length is a multiple of `block_size`.

    `valid` (for the padded tail) is how many leading tokens are real; the rest get attention_mask 0 and
    labels -100.
    """
    mask = np.ones(len(ids), dtype=np.int8)
    labels = ids
    if valid is not None:
        mask[valid:] = 0
        labels = ids.copy()
        labels[valid:] = LABEL_IGNORE

    def column(values: np.ndarray) -> pa.Array:
        return pa.FixedSizeListArray.from_arrays(pa.array(values), block_size)

    return pa.table({"input_ids": column(ids), "attention_mask": column(mask), "labels": column(labels)})


class _Grouper:
    """The map function of `group_blocks`: carries the remainder of each batch into the next one.

    It relies on the map running in one process over the batches in order (num_proc=None), and on
    `with_indices` to know when the last batch arrives and the tail must be padded or dropped.
    """

    def __init__(self, block_size: int, num_rows: int, keep_tail: bool, pad_token_id: int, split: str):
        self.block_size, self.num_rows, self.keep_tail = block_size, num_rows, keep_tail
        self.pad_token_id, self.split = pad_token_id, split
        self.carry = np.empty(0, dtype=np.int32)

    def __call__(self, table: pa.Table, indices: list[int]) -> pa.Table:
        flat = pc.list_flatten(table.column("input_ids")).to_numpy().astype(np.int32, copy=False)
        ids = np.concatenate([self.carry, flat]) if len(self.carry) else flat
        full = len(ids) // self.block_size * self.block_size
        self.carry = ids[full:].copy()
        tables = [_block_table(ids[:full], self.block_size)]
        if indices[-1] == self.num_rows - 1 and len(self.carry):
            tail = len(self.carry)
            if self.keep_tail:
                padded = np.full(self.block_size, self.pad_token_id, dtype=np.int32)
                padded[:tail] = self.carry
                tables.append(_block_table(padded, self.block_size, valid=tail))
            else:
                logger.warning("%s: dropped the final %d tokens (less than one block of %d)",
                               self.split, tail, self.block_size)
            self.carry = self.carry[:0]
        return pa.concat_tables(tables)


def group_blocks(
    tokenized: Dataset | DatasetDict,
    block_size: int,
    *,
    keep_tail: bool = True,
    pad_token_id: int = 0,
    batch_size: int | None = None,
) -> DatasetDict:
    """Concatenate each split's `input_ids` and cut them into blocks of exactly `block_size` tokens.

    Columns: `input_ids`, `attention_mask`, `labels` (a copy of input_ids), all fixed-length lists. The
    remainder of every map batch is carried into the next, so only the split's final tail (< block_size)
    is special: padded into one more block when `keep_tail` (pad_token_id, attention_mask 0, labels -100),
    else dropped with a logged count. A split with fewer tokens than one block gives one padded block or
    none. Cached like `tokenize_dataset`; `batch_size` (rows of documents per map batch) only trades memory
    for speed: the default takes about `GROUP_BATCH_BYTES` of token ids and at most 10,000 documents.
    """
    if block_size < 1:
        raise ValueError(f"block_size={block_size} must be a positive number of tokens")
    out = {}
    for name, split in _splits(tokenized).items():
        if "input_ids" not in split.column_names:
            raise ValueError(f"split {name} has no input_ids column: run tokenize_dataset first")
        features = Features(
            {
                "input_ids": List(Value("int32"), length=block_size),
                "attention_mask": List(Value("int8"), length=block_size),
                "labels": List(Value("int32"), length=block_size),
            }
        )
        if len(split) == 0:
            out[name] = _empty(features)
            continue
        fingerprint = Hasher.hash([split._fingerprint, block_size, keep_tail, pad_token_id, _GROUP_VERSION])
        grouper = _Grouper(block_size, len(split), keep_tail, pad_token_id, name)
        out[name] = (
            split.select_columns(["input_ids"])
            .with_format("arrow")
            .map(
                grouper,
                batched=True,
                batch_size=batch_size or rows_per_batch(split, "input_ids", GROUP_BATCH_BYTES, 10_000),
                with_indices=True,
                remove_columns=["input_ids"],
                features=features,
                new_fingerprint=fingerprint,
                desc=f"Grouping {name} into blocks of {block_size}",
            )
            .with_format(None)
        )
    return DatasetDict(out)


def prepare_blocks(
    dd: Dataset | DatasetDict,
    tokenizer,
    block_size: int,
    *,
    keep_tail: bool = True,
    add_eos: bool = True,
    num_proc: int | None = None,
    text_column: str = "text",
) -> tuple[DatasetDict, dict[str, BlockStats]]:
    """Tokenize and group every split; return the blocks and a `BlockStats` per split.

    The pad id is the tokenizer's (0 for ours). Statistics come from the cached tokenized columns, so a
    second call costs two cache reads and two column sums.
    """
    tokenized = tokenize_dataset(dd, tokenizer, add_eos=add_eos, num_proc=num_proc, text_column=text_column)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    blocks = group_blocks(tokenized, block_size, keep_tail=keep_tail, pad_token_id=pad_id)
    stats = {}
    for name, split in tokenized.items():
        columns = split.with_format("arrow")
        tokens = int(pc.sum(pc.list_value_length(columns["input_ids"])).as_py() or 0)
        tail = tokens % block_size
        stats[name] = BlockStats(
            documents=len(split),
            bytes=int(pc.sum(columns["num_bytes"]).as_py() or 0),
            tokens=tokens,
            blocks=len(blocks[name]),
            tail_tokens=tail,
            tail="none" if tail == 0 else ("padded" if keep_tail else "dropped"),
        )
    return blocks, stats
