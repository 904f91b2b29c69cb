"""Train a byte-level BPE, character or word tokenizer from an iterator of texts.

    python -m tokenizer_training --dataset_dir data/tolstoy --kind bpe --vocab_size 8192 --output_dir runs/tok-bpe

From Python:

    from tokenizer_training import train_tokenizer, tokenizer_stats
    tok = train_tokenizer(dd["train"]["text"], "bpe", 8192)
    tok.save_pretrained("runs/tok-bpe")          # AutoTokenizer.from_pretrained("runs/tok-bpe") loads it back

Every kind has the same special tokens with the same ids, so configs can rely on them:
`<pad>`=0, `<unk>`=1, `<bos>`=2, `<eos>`=3. The tokenizer adds none of them by itself (no post-processor):
`training.blocks` puts `<eos>` between documents, and generation starts from plain text.

The three kinds:
- `bpe`: byte-level BPE (GPT-2 pre-tokenizer regex, ByteLevel decoder, all 256 bytes in the initial
  alphabet, `add_prefix_space=False`, no normalizer): `decode(encode(s)) == s` for any Unicode string and
  `<unk>` never appears.
- `char`: one token per Unicode code point seen in training (`min_frequency` does not apply: a rare letter
  mapped to `<unk>` would break the round trip on the very text we trained on). Unseen characters are `<unk>`.
- `word`: a word-level vocabulary of the `vocab_size` most frequent pieces, where a piece is a run of word
  characters (`\\w+`, Unicode-aware: Cyrillic, ә ө ү җ ң һ, digits, combining marks), a single punctuation
  or symbol character, or a single whitespace character. Whitespace is kept as tokens of its own and the
  decoder simply concatenates (`decoders.Fuse`), so seen text is rebuilt exactly, indents, double spaces
  and newlines included. We chose this over a Metaspace-like "space glued to the next word" scheme because
  that stores most words twice (" слово" and "слово" after a newline or an indent), which on a
  frequency-capped vocabulary of a highly inflected language turns more words into `<unk>`; the price is
  about two tokens per word (the space is a token, and a trivially predictable one).

Text is always text: the wrapper is saved with `split_special_tokens=True`, so a literal "<eos>" in a corpus
is encoded as characters, not as the end-of-document token (and byte-level BPE stays free of `<unk>`).
"""

from __future__ import annotations

import ctypes
import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast
from transformers.convert_slow_tokenizer import bytes_to_unicode

SPECIAL_TOKENS = ["<pad>", "<unk>", "<bos>", "<eos>"]
KINDS = ("bpe", "char", "word")
# A word is a run of word characters; every punctuation mark and every whitespace character stands alone.
WORD_PATTERN = r"\w+|\s|[^\w\s]"
_BATCH = 1000
# A tokenizer sample is read in contiguous runs of this many bytes of text (see `dataset_texts`).
SAMPLE_RUN_BYTES = 4_000_000


def _batches(texts: Iterable[str], counter: dict, batch_size: int = _BATCH) -> Iterator[list[str]]:
    """Yield lists of texts for `train_from_iterator`, counting texts and characters on the way.

    Batches let the Rust trainer work on many texts per call while the corpus is still streamed.
    """
    batch: list[str] = []
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"texts must yield str, got {type(text).__name__}")
        counter["texts"] += 1
        counter["chars"] += len(text)
        batch.append(text)
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def dataset_texts(dataset, *, max_bytes: int | None = None, seed: int = 0, text_column: str = "text",
                  batch_size: int = _BATCH, run_bytes: int = SAMPLE_RUN_BYTES) -> Iterator[str]:
    """The texts of a `datasets.Dataset` for `train_tokenizer`, read in Arrow batches, never all at once.

    `dataset["text"]` would build one Python list of the whole corpus (gigabytes for a large one). With
    `max_bytes`, a seeded sample of about that many UTF-8 bytes: the split is cut into contiguous runs of
    about `run_bytes` (`Dataset.shard(contiguous=True)`) and whole runs are read in a random order (`seed`)
    until the budget is met; a BPE vocabulary learnt from a few hundred megabytes is as good as one from all.
    Runs, not documents drawn one by one: each document read from a memory-mapped split brings the
    kernel's readahead around it into memory (8 MB on our disks), so 50 MB of documents scattered over a
    1 GB split read and mapped the whole gigabyte. On the shared books a sample in runs scored within the
    seeds' spread of one drawn document by document (bench/RESULTS.md).
    """
    runs = [dataset]
    if max_bytes is not None:
        # Sized from the Arrow buffers' lengths (file metadata): no text is read to size the split.
        table = dataset.data
        total = table.column(text_column).get_total_buffer_size() * len(dataset) / max(table.num_rows, 1)
        n_runs = min(len(dataset), math.ceil(total / run_bytes))
        runs = (dataset.shard(n_runs, int(i), contiguous=True) for i in np.random.default_rng(seed).permutation(n_runs))
    given = 0
    for run in runs:
        for batch in run.with_format("arrow").select_columns([text_column]).iter(batch_size=batch_size):
            column = batch[text_column]
            yield from column.to_pylist()
            given += pc.sum(pc.binary_length(column)).as_py() or 0
            if max_bytes is not None and given >= max_bytes:
                return


def _backend(kind: str) -> Tokenizer:
    """An untrained `tokenizers.Tokenizer` with the model, pre-tokenizer and decoder of `kind`."""
    if kind == "bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
    elif kind == "char":
        tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
        # "." matches "\n" too in the tokenizers regex engine: newlines are characters like any other.
        tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), "isolated")
        tok.decoder = decoders.Fuse()
    else:
        tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(WORD_PATTERN), "isolated")
        tok.decoder = decoders.Fuse()
    return tok


def _release_freed_memory() -> None:
    """Hand the heap the trainer freed back to the system (glibc's `malloc_trim`; elsewhere nothing to do).

    BPE training on a 50 MB sample leaves 0.2-0.3 GB freed but still held by malloc (its per-thread arenas
    only shrink from the top); a process that forks `num_proc` tokenize workers next would carry it into
    every one of them (bench/RESULTS.md).
    """
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError, TypeError):  # not glibc: macOS, musl, Windows (no CDLL(None))
        pass


def train_tokenizer(
    texts: Iterable[str],
    kind: str,
    vocab_size: int,
    *,
    min_frequency: int = 2,
    model_max_length: int = 1024,
    batch_size: int = _BATCH,
    show_progress: bool = False,
) -> PreTrainedTokenizerFast:
    """Train a tokenizer of `kind` ("bpe", "char" or "word") on `texts` and wrap it for transformers.

    `texts` is any iterable of strings (a list, a generator, `dataset["text"]`); it is read once, in
    batches of `batch_size`, so large corpora stream. `vocab_size` counts the four special tokens.
    `min_frequency` is the minimum count of a BPE merge or of a word (ignored for `char`).

    Raises `ValueError` with a one-line message when `kind` is unknown, `vocab_size` cannot hold the
    alphabet (bpe: 256 bytes + 4 specials; char: every distinct character + 4 specials; word: at least one
    token beside the specials), or the texts are empty.
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is unknown: use one of {', '.join(KINDS)}")
    if kind == "bpe" and vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(
            f"vocab_size={vocab_size} is too small for byte-level BPE: the minimum is "
            f"{256 + len(SPECIAL_TOKENS)} (256 bytes + {len(SPECIAL_TOKENS)} special tokens); raise --vocab_size"
        )
    if kind == "word" and vocab_size < len(SPECIAL_TOKENS) + 1:
        raise ValueError(
            f"vocab_size={vocab_size} is too small for a word tokenizer: the minimum is "
            f"{len(SPECIAL_TOKENS) + 1} ({len(SPECIAL_TOKENS)} special tokens + 1 word); raise --vocab_size"
        )
    tok = _backend(kind)
    if kind == "bpe":
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=SPECIAL_TOKENS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=show_progress,
        )
    else:
        # char: no cap while training, so that we can tell the user how many characters there were.
        trainer = trainers.WordLevelTrainer(
            vocab_size=vocab_size if kind == "word" else 2**31 - 1,
            min_frequency=min_frequency if kind == "word" else 1,
            special_tokens=SPECIAL_TOKENS,
            show_progress=show_progress,
        )
    counter = {"texts": 0, "chars": 0}
    tok.train_from_iterator(_batches(texts, counter, batch_size), trainer=trainer)
    _release_freed_memory()
    if counter["chars"] == 0:
        raise ValueError(f"no text to train on: got {counter['texts']} texts, all empty; check the text column")
    if kind == "char" and tok.get_vocab_size() > vocab_size:
        raise ValueError(
            f"vocab_size={vocab_size} is too small for a char tokenizer: the texts have "
            f"{tok.get_vocab_size() - len(SPECIAL_TOKENS)} distinct characters, so the minimum is "
            f"{tok.get_vocab_size()} (with {len(SPECIAL_TOKENS)} special tokens); raise --vocab_size"
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<bos>",
        eos_token="<eos>",
        model_max_length=model_max_length,
        # transformers would otherwise "clean up" spaces before punctuation and break the round trip.
        clean_up_tokenization_spaces=False,
        split_special_tokens=True,
    )


def _encode(tokenizer: PreTrainedTokenizerFast, texts: list[str]) -> list[list[int]]:
    """Token ids of each text, without special tokens, through the fast Rust batch encoder."""
    encodings = tokenizer.backend_tokenizer.encode_batch_fast(texts, add_special_tokens=False)
    return [e.ids for e in encodings]


def tokenizer_stats(tokenizer: PreTrainedTokenizerFast, texts: Iterable[str], *, batch_size: int = _BATCH) -> dict:
    """Compression and coverage of `tokenizer` on `texts`.

    Returns a dict with `texts`, `bytes` (UTF-8), `words` (whitespace-separated), `tokens`, `unk_tokens`,
    `bytes_per_token`, `tokens_per_word` and `unk_share` (fraction of tokens that are `<unk>`); ratios are
    NaN when their denominator is zero.
    """
    unk_id = tokenizer.unk_token_id
    n_texts = n_bytes = n_words = n_tokens = n_unk = 0
    for batch in _batches(texts, {"texts": 0, "chars": 0}, batch_size):
        for text, ids in zip(batch, _encode(tokenizer, batch)):
            n_texts += 1
            n_bytes += len(text.encode("utf-8"))
            n_words += len(text.split())
            n_tokens += len(ids)
            n_unk += ids.count(unk_id)
    return {
        "texts": n_texts,
        "bytes": n_bytes,
        "words": n_words,
        "tokens": n_tokens,
        "unk_tokens": n_unk,
        "bytes_per_token": n_bytes / n_tokens if n_tokens else math.nan,
        "tokens_per_word": n_tokens / n_words if n_words else math.nan,
        "unk_share": n_unk / n_tokens if n_tokens else math.nan,
    }


def _is_byte_level(tokenizer: PreTrainedTokenizerFast) -> bool:
    return isinstance(tokenizer.backend_tokenizer.decoder, decoders.ByteLevel)


def readable_tokens(tokenizer: PreTrainedTokenizerFast, tokens: list[str]) -> list[str]:
    """Tokens as the text they stand for.

    Byte-level BPE tokens are stored as GPT-2's printable stand-ins for bytes ("Ġ" for a space, "Ð¸" for
    "и"); we map them back to bytes and decode as UTF-8. A token that holds only part of a multi-byte
    character shows the missing bytes as `\\xNN` escapes instead of a lossy U+FFFD. Special tokens and
    char/word tokens are already readable.
    """
    if not _is_byte_level(tokenizer):
        return list(tokens)
    byte_of = {ch: b for b, ch in bytes_to_unicode().items()}
    specials = set(tokenizer.all_special_tokens)
    out = []
    for token in tokens:
        if token in specials or any(ch not in byte_of for ch in token):
            out.append(token)
        else:
            out.append(bytes(byte_of[ch] for ch in token).decode("utf-8", errors="backslashreplace"))
    return out


def export_json(tokenizer: PreTrainedTokenizerFast, texts: Iterable[str], path: str | Path, limit: int = 100) -> Path:
    """Write the token mapping and the tokenization of the first `limit` texts to `path` as UTF-8 JSON.

    Layout: `{"vocab": [token text, index = id], "data": [{"text", "tokens", "ids"}]}`. Tokens are
    shown as readable text (see `readable_tokens`: for byte-level BPE the decoded bytes, not "Ġ"-forms);
    `ids` keep the exact mapping where a partial-byte token reads as an escape. Returns the path.
    """
    path = Path(path)
    vocab = tokenizer.backend_tokenizer.get_vocab(with_added_tokens=True)
    by_id = [tok for tok, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    data = []
    for i, text in enumerate(texts):
        if i >= limit:
            break
        ids = _encode(tokenizer, [text])[0]
        data.append(
            {"text": text, "tokens": readable_tokens(tokenizer, tokenizer.convert_ids_to_tokens(ids)), "ids": ids}
        )
    payload = {"vocab": readable_tokens(tokenizer, by_id), "data": data}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=1), encoding="utf-8")
    return path
