"""Tokenizer training for RoPE-GPT: byte-level BPE, character and word tokenizers.

    python -m tokenizer_training --dataset_dir data/tolstoy --kind bpe --vocab_size 8192 --output_dir runs/tok-bpe
"""

from .train import (
    KINDS,
    SPECIAL_TOKENS,
    dataset_texts,
    export_json,
    readable_tokens,
    tokenizer_stats,
    train_tokenizer,
)

__all__ = ["KINDS", "SPECIAL_TOKENS", "dataset_texts", "export_json", "readable_tokens", "tokenizer_stats", "train_tokenizer"]
