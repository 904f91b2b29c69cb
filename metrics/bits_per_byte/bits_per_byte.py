"""Bits per byte: a tokenizer-independent score for a causal LM, as an `evaluate` module.

Load it by path (works offline, the module never touches the Hub):

    metric = evaluate.load("metrics/bits_per_byte")
    metric.add_batch(total_nats=[batch_nll_sum], num_bytes=[batch_utf8_bytes])   # once per eval batch
    metric.compute()   # {"bits_per_byte": sum(total_nats) / ln 2 / sum(num_bytes)}

The training loop already has the summed negative log-likelihood (nats) of each evaluation batch and the
UTF-8 length of the text it covered, so the inputs are per-batch scalars and `_compute` sums them: the ratio of
sums is the corpus figure, whereas a mean of per-batch ratios would weight short batches too much.

`unigram_bits_per_byte(train_ids, eval_ids, num_bytes, vocab_size)` is the baseline a trained model must
beat. It is reachable from the loaded metric (`metric.unigram_bits_per_byte(...)`) or by importing this file:

    spec = importlib.util.spec_from_file_location("bits_per_byte", "metrics/bits_per_byte/bits_per_byte.py")

In a training loop that has already reduced the sums across ranks, load with `keep_in_memory=True`: the
default writes every batch to an Arrow file under a lock, and a compute that raised keeps that lock, so the
next compute on the same object stalls 1 s.

Tests: `.venv/bin/python -m pytest tests/test_metrics.py -q`
"""

import math

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """Bits per byte = summed negative log-likelihood in nats / ln 2 / UTF-8 bytes of the evaluated text.
Unlike perplexity it does not depend on the tokenizer, so models with different vocabularies compare."""

_INPUTS = """
Args:
    total_nats (float): summed negative log-likelihood, in nats, of one evaluation batch (>= 0).
    num_bytes (int): UTF-8 bytes of the text that batch covers (>= 0; their sum must be > 0).
Returns:
    bits_per_byte (float): sum(total_nats) / ln 2 / sum(num_bytes).
Examples:
    >>> metric = evaluate.load("metrics/bits_per_byte")
    >>> metric.compute(total_nats=[math.log(2) * 8], num_bytes=[4])
    {'bits_per_byte': 2.0}
"""


def bits_per_byte(total_nats: float, num_bytes: int) -> float:
    """Bits per byte of `total_nats` nats spread over `num_bytes` UTF-8 bytes; ValueError on impossible input."""
    if num_bytes <= 0:
        raise ValueError(f"bits_per_byte needs num_bytes > 0 (UTF-8 bytes of the evaluated text), got {num_bytes}")
    # NaN passes on purpose: a diverged run should report nan, not crash the evaluation.
    if total_nats < 0:
        raise ValueError(f"bits_per_byte needs total_nats >= 0 (a negative log-likelihood), got {total_nats}")
    return total_nats / math.log(2) / num_bytes


def unigram_bits_per_byte(train_ids, eval_ids, num_bytes: int, vocab_size: int) -> float:
    """Bits per byte of an add-one smoothed unigram model fitted on `train_ids`, scored on `eval_ids`.

    p(t) = (count_train(t) + 1) / (len(train_ids) + vocab_size), so every token of the vocabulary has a
    non-zero probability. `num_bytes` is the UTF-8 length of the text `eval_ids` encode. A trained model
    whose bits per byte is not below this has learnt nothing beyond token frequencies.
    """
    if vocab_size <= 0:
        raise ValueError(f"unigram_bits_per_byte needs vocab_size > 0, got {vocab_size}")
    train = np.asarray(train_ids, dtype=np.int64).ravel()
    evals = np.asarray(eval_ids, dtype=np.int64).ravel()
    for name, ids in (("train_ids", train), ("eval_ids", evals)):
        if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
            raise ValueError(f"unigram_bits_per_byte: {name} holds ids outside [0, {vocab_size})")
    log_probs = np.log(np.bincount(train, minlength=vocab_size) + 1.0) - math.log(train.size + vocab_size)
    return bits_per_byte(float(-log_probs[evals].sum()), num_bytes)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _INPUTS)
class BitsPerByte(evaluate.Metric):
    """Summed nats and bytes in, bits per byte out; see the module docstring."""

    unigram_bits_per_byte = staticmethod(unigram_bits_per_byte)

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_INPUTS,
            features=datasets.Features(
                {"total_nats": datasets.Value("float64"), "num_bytes": datasets.Value("float64")}
            ),
        )

    def _compute(self, total_nats, num_bytes):
        # Counts are declared float64 so that a fractional count (a mean passed by mistake) is refused here
        # instead of being truncated silently by the int64 cast.
        bad = [n for n in num_bytes if n < 0 or not float(n).is_integer()]
        if bad:
            raise ValueError(f"bits_per_byte needs every num_bytes to be a whole number >= 0, got {bad[0]}")
        return {"bits_per_byte": bits_per_byte(math.fsum(total_nats), int(sum(num_bytes)))}
