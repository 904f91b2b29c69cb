"""Validation metrics that compare across tokenizers: perplexity and bits per byte.

Bits per byte = total negative log-likelihood in nats / ln 2 / UTF-8 bytes of the predicted text. The bytes
are counted per predicted token from the tokenizer's own byte view of each token (byte-level BPE tokens map
back to raw bytes; other tokens to their UTF-8 text), so a model that sees the first token of each block
without predicting it is not credited with that token's bytes. Special tokens (<eos> between documents) are
predicted, their nats count, and they add no bytes: the metric never flatters a model.

The per-token work happens in `preprocess_logits_for_metrics` (on the device, per batch), so Trainer only
gathers three numbers per sequence across processes instead of the full logits.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import evaluate
import numpy as np
import torch
from tokenizers import pre_tokenizers
from transformers import EvalPrediction

METRICS_DIR = Path(__file__).resolve().parents[1] / "metrics"


def _is_byte_level(tokenizer) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    decoder = getattr(backend, "decoder", None) if backend is not None else None
    return decoder is not None and "ByteLevel" in repr(decoder)


def token_byte_lengths(tokenizer) -> np.ndarray:
    """UTF-8 bytes that each token id stands for (0 for special tokens), as an array indexed by id."""
    size = len(tokenizer)
    lengths = np.zeros(size, dtype=np.int64)
    special = set(tokenizer.all_special_ids)
    byte_level = _is_byte_level(tokenizer)
    # Byte-level BPE writes each raw byte as one of 256 printable stand-in characters.
    alphabet = set(pre_tokenizers.ByteLevel.alphabet()) if byte_level else set()
    for token, idx in tokenizer.get_vocab().items():
        if idx >= size or idx in special:
            continue
        if byte_level and all(ch in alphabet for ch in token):
            lengths[idx] = len(token)
        else:
            # WordPiece-style continuation marks and SentencePiece's '▁' stand for nothing or one space.
            text = token.replace("▁", " ")
            lengths[idx] = len(text.encode("utf-8"))
    return lengths


class TokenNLL:
    """`preprocess_logits_for_metrics` for Trainer: per sequence, (sum of NLL in nats, tokens, bytes).

    Labels are shifted the way causal LM losses shift them; positions labelled -100 are skipped.
    """

    def __init__(self, tokenizer):
        self.byte_lengths = torch.from_numpy(token_byte_lengths(tokenizer))

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if isinstance(logits, tuple):
            logits = logits[0]
        logits = logits[:, :-1].float()  # (B, T-1, V)
        targets = labels[:, 1:]  # (B, T-1)
        mask = targets != -100
        safe = targets.masked_fill(~mask, 0)
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), safe, reduction="none")  # (B, T-1)
        nll = (nll * mask).sum(dim=1)
        lengths = self.byte_lengths.to(targets.device)
        safe = safe.clamp(max=lengths.numel() - 1)
        n_bytes = (lengths[safe] * mask).sum(dim=1)
        return torch.stack([nll, mask.sum(dim=1).float(), n_bytes.float()], dim=1)  # (B, 3)


@lru_cache(maxsize=None)
def load_metric(name: str):
    """One of our evaluate modules in metrics/, loaded by local path (works offline)."""
    # keep_in_memory: the totals are already reduced across ranks, no Arrow file or lock is needed.
    return evaluate.load(str(METRICS_DIR / name), keep_in_memory=True)


def summarize_nll(total_nats: float, num_tokens: int, num_bytes: int) -> dict[str, float]:
    """Loss, perplexity and bits per byte from totals, through the evaluate modules in metrics/."""
    out = dict(load_metric("perplexity").compute(total_nats=[total_nats], num_tokens=[num_tokens]))
    out.update(load_metric("bits_per_byte").compute(total_nats=[total_nats], num_bytes=[num_bytes]))
    out["tokens"] = int(num_tokens)
    out["bytes"] = int(num_bytes)
    return out


def compute_metrics(eval_pred: EvalPrediction) -> dict[str, float]:
    """`compute_metrics` for Trainer over the (B, 3) rows that `TokenNLL` produced."""
    rows = np.asarray(eval_pred.predictions, dtype=np.float64).reshape(-1, 3)
    total_nats, num_tokens, num_bytes = rows.sum(axis=0)
    return summarize_nll(float(total_nats), int(num_tokens), int(num_bytes))

