"""Perplexity from summed negative log-likelihood and token count, as an `evaluate` module.

Load it by path (works offline; the Hub's "perplexity" module would rerun a model, this one does not):

    metric = evaluate.load("metrics/perplexity")
    metric.add_batch(total_nats=[batch_nll_sum], num_tokens=[batch_predicted_tokens])   # per eval batch
    metric.compute()   # {"perplexity": exp(mean), "loss": mean}, mean = sum(total_nats) / sum(num_tokens)

Inputs are per-batch sums, so the loss is the token-weighted mean over the whole evaluation set (what
Trainer's eval_loss approximates with a mean of batch means). Count predicted tokens (labels != -100),
not input tokens.

In a training loop that has already reduced the sums across ranks, load with `keep_in_memory=True`: the
default writes every batch to an Arrow file under a lock, and a compute that raised keeps that lock, so the
next compute on the same object stalls 1 s.

Tests: `.venv/bin/python -m pytest tests/test_metrics.py -q`
"""

import math

import datasets
import evaluate

_DESCRIPTION = """Perplexity = exp(summed negative log-likelihood in nats / number of predicted tokens).
It depends on the tokenizer: compare models with different vocabularies by bits per byte instead."""

_INPUTS = """
Args:
    total_nats (float): summed negative log-likelihood, in nats, of one evaluation batch (>= 0).
    num_tokens (int): tokens whose likelihood that sum covers (>= 0; their sum must be > 0).
Returns:
    perplexity (float): exp(loss); inf when it overflows a float.
    loss (float): sum(total_nats) / sum(num_tokens), nats per token.
Examples:
    >>> metric = evaluate.load("metrics/perplexity")
    >>> metric.compute(total_nats=[2.0, 4.0], num_tokens=[1, 2])
    {'perplexity': 7.38905609893065, 'loss': 2.0}
"""


def perplexity(total_nats: float, num_tokens: int) -> dict:
    """{"perplexity", "loss"} of `total_nats` nats over `num_tokens` tokens; ValueError on impossible input."""
    if num_tokens <= 0:
        raise ValueError(f"perplexity needs num_tokens > 0 (predicted tokens), got {num_tokens}")
    if total_nats < 0:
        raise ValueError(f"perplexity needs total_nats >= 0 (a negative log-likelihood), got {total_nats}")
    loss = total_nats / num_tokens
    # An untrained or diverged model can reach a loss above ~709; report inf instead of raising.
    return {"perplexity": math.exp(loss) if loss < 709.0 else math.inf, "loss": loss}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _INPUTS)
class Perplexity(evaluate.Metric):
    """Summed nats and token counts in, perplexity and mean loss out; see the module docstring."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_INPUTS,
            features=datasets.Features(
                {"total_nats": datasets.Value("float64"), "num_tokens": datasets.Value("float64")}
            ),
        )

    def _compute(self, total_nats, num_tokens):
        # Counts are declared float64 so that a fractional count (a mean passed by mistake) is refused here
        # instead of being truncated silently by the int64 cast.
        bad = [n for n in num_tokens if n < 0 or not float(n).is_integer()]
        if bad:
            raise ValueError(f"perplexity needs every num_tokens to be a whole number >= 0, got {bad[0]}")
        return perplexity(math.fsum(total_nats), int(sum(num_tokens)))
