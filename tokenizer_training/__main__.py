"""Train a tokenizer on a saved DatasetDict and report how it compresses the validation split.

    python -m tokenizer_training --dataset_dir data/tolstoy --kind bpe --vocab_size 8192 \
        --output_dir runs/tok-bpe [--export_json runs/tok-bpe/mapping.json] [--min_frequency 2] \
        [--model_max_length 1024]

`--dataset_dir` is a `datasets.DatasetDict` written by `save_to_disk` (as `python -m corpora` does) with
splits `train` and `validation` and a `text` column. Bad input ends with one line on stderr and exit code 2.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

from datasets import DatasetDict, load_from_disk
from transformers import HfArgumentParser

from .train import export_json, tokenizer_stats, train_tokenizer


@dataclass
class TokenizerTrainingArguments:
    """Command-line arguments of `python -m tokenizer_training`."""

    dataset_dir: str = field(metadata={"help": "A DatasetDict saved with save_to_disk (splits train, validation)."})
    output_dir: str = field(metadata={"help": "Where save_pretrained writes the tokenizer."})
    kind: Literal["bpe", "char", "word"] = field(
        default="bpe", metadata={"help": "bpe (byte-level BPE), char (one token per character) or word."}
    )
    vocab_size: int = field(default=8192, metadata={"help": "Vocabulary size, the 4 special tokens included."})
    min_frequency: int = field(
        default=2, metadata={"help": "Minimum count of a BPE merge or a word (char keeps every character)."}
    )
    model_max_length: int = field(default=1024, metadata={"help": "model_max_length saved with the tokenizer."})
    text_column: str = field(default="text", metadata={"help": "Column holding the documents."})
    export_json: Optional[str] = field(
        default=None, metadata={"help": "Also write the vocabulary and tokenized validation samples to this JSON file."}
    )
    export_limit: int = field(default=100, metadata={"help": "How many validation texts --export_json shows."})


class UsageError(Exception):
    """An input problem reported as one line, exit code 2."""


def load_splits(dataset_dir: str, text_column: str):
    """Load the DatasetDict at `dataset_dir`, checking it has a `train` split with `text_column`."""
    if not Path(dataset_dir).is_dir():
        raise UsageError(f"--dataset_dir {dataset_dir} does not exist (build one with `python -m corpora`)")
    try:
        dd = load_from_disk(dataset_dir)
    except (FileNotFoundError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"--dataset_dir {dataset_dir} is not a dataset saved with save_to_disk: {first}") from None
    except IndexError:
        # datasets saves an empty split as zero shards and then cannot load it back
        raise UsageError(f"--dataset_dir {dataset_dir} has an empty split; rebuild it with python -m corpora") from None
    if not isinstance(dd, DatasetDict):
        raise UsageError(f"--dataset_dir {dataset_dir} holds a single Dataset, not a DatasetDict with train/validation")
    if "train" not in dd:
        raise UsageError(f"--dataset_dir {dataset_dir} has no train split (splits: {', '.join(dd) or 'none'})")
    for name, split in dd.items():
        if text_column not in split.column_names:
            raise UsageError(
                f"split {name} of {dataset_dir} has no column {text_column!r} (columns: "
                f"{', '.join(split.column_names)}); pass --text_column"
            )
    return dd


def main(argv: list[str] | None = None) -> int:
    """Train, save, print validation statistics; return the exit code."""
    (args,) = HfArgumentParser(TokenizerTrainingArguments).parse_args_into_dataclasses(args=argv)
    try:
        dd = load_splits(args.dataset_dir, args.text_column)
        tok = train_tokenizer(
            (text for text in dd["train"][args.text_column]),
            args.kind,
            args.vocab_size,
            min_frequency=args.min_frequency,
            model_max_length=args.model_max_length,
            show_progress=sys.stderr.isatty(),
        )
    except (UsageError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    tok.save_pretrained(args.output_dir)
    print(f"saved {args.kind} tokenizer, {len(tok)} tokens, to {args.output_dir}")
    eval_split = "validation" if "validation" in dd else "train"
    stats = tokenizer_stats(tok, dd[eval_split][args.text_column])
    print(
        f"{eval_split}: {stats['texts']} texts, {stats['bytes']} bytes, {stats['tokens']} tokens | "
        f"bytes per token {stats['bytes_per_token']:.3f} | tokens per word {stats['tokens_per_word']:.3f} | "
        f"<unk> share {stats['unk_share']:.4%}"
    )
    if args.export_json:
        path = export_json(tok, dd[eval_split][args.text_column], args.export_json, limit=args.export_limit)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
