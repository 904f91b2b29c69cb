"""The local `evaluate` modules in metrics/: exact values, accumulation over batches, refused inputs.

Run: .venv/bin/python -m pytest tests/test_metrics.py -q   (offline: conftest sets HF_HUB_OFFLINE=1)
"""

import importlib.util
import math
from pathlib import Path

import evaluate
import pytest

METRICS = Path(__file__).resolve().parents[1] / "metrics"


# keep_in_memory: evaluate's default writes each batch to an Arrow file under a file lock, and a compute that
# raises leaves that lock held, so the next compute on the same object waits 1 s for it.
@pytest.fixture(scope="module")
def bpb():
    return evaluate.load(str(METRICS / "bits_per_byte"), keep_in_memory=True)


@pytest.fixture(scope="module")
def ppl():
    return evaluate.load(str(METRICS / "perplexity"), keep_in_memory=True)


def test_bits_per_byte_exact(bpb):
    # 8 bits of information over 4 bytes.
    assert bpb.compute(total_nats=[8 * math.log(2)], num_bytes=[4]) == {"bits_per_byte": pytest.approx(2.0, abs=1e-15)}


def test_bits_per_byte_sums_batches_not_ratios(bpb):
    # Ratio of sums (3 + 1) bits / (1 + 3) bytes = 1.0; a mean of per-batch ratios would give (3 + 1/3) / 2.
    bpb.add_batch(total_nats=[3 * math.log(2)], num_bytes=[1])
    bpb.add(total_nats=1 * math.log(2), num_bytes=3)
    assert bpb.compute()["bits_per_byte"] == pytest.approx(1.0, abs=1e-15)


def test_perplexity_exact_and_accumulated(ppl):
    expected = {"perplexity": pytest.approx(math.exp(2.0)), "loss": 2.0}
    assert ppl.compute(total_nats=[2.0, 4.0], num_tokens=[1, 2]) == expected
    for nats, tokens in [(1.0, 1), (0.5, 2), (1.5, 0)]:  # an empty batch (no labels) contributes nothing
        ppl.add_batch(total_nats=[nats], num_tokens=[tokens])
    out = ppl.compute()
    assert out["loss"] == pytest.approx(1.0) and out["perplexity"] == pytest.approx(math.e)


def test_default_on_disk_mode_accumulates():
    metric = evaluate.load(str(METRICS / "bits_per_byte"))
    metric.add_batch(total_nats=[2 * math.log(2), 6 * math.log(2)], num_bytes=[2, 2])
    assert metric.compute()["bits_per_byte"] == pytest.approx(2.0)


def test_perplexity_overflow_is_inf(ppl):
    assert ppl.compute(total_nats=[1e6], num_tokens=[1])["perplexity"] == math.inf


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"total_nats": [1.0], "num_bytes": [0]}, "num_bytes > 0"),
        ({"total_nats": [-1.0], "num_bytes": [4]}, "total_nats >= 0"),
        ({"total_nats": [1.0, 1.0], "num_bytes": [5, -1]}, "whole number >= 0"),
        ({"total_nats": [1.0], "num_bytes": [1.5]}, "whole number >= 0"),
    ],
)
def test_bits_per_byte_refuses(bpb, kwargs, message):
    with pytest.raises(ValueError, match=message):
        bpb.compute(**kwargs)


def test_perplexity_refuses_zero_tokens(ppl):
    with pytest.raises(ValueError, match="num_tokens > 0"):
        ppl.compute(total_nats=[1.0], num_tokens=[0])


def test_unigram_baseline_exact(bpb):
    # Train counts [2, 1, 0] + 1 -> p = [3, 2, 1] / 6; eval [0, 1] costs 1 + log2(3) bits over 2 bytes.
    expected = (1 + math.log2(3)) / 2
    assert bpb.unigram_bits_per_byte([0, 0, 1], [0, 1], num_bytes=2, vocab_size=3) == pytest.approx(expected)
    # The same function, imported from the file without evaluate.
    spec = importlib.util.spec_from_file_location("bits_per_byte", METRICS / "bits_per_byte" / "bits_per_byte.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.unigram_bits_per_byte([0, 0, 1], [0, 1], 2, 3) == pytest.approx(expected)
    # An unseen token still has probability 1 / (N + V).
    assert module.unigram_bits_per_byte([0], [2], 1, 3) == pytest.approx(math.log2(4))
    with pytest.raises(ValueError, match=r"outside \[0, 3\)"):
        module.unigram_bits_per_byte([0, 3], [0], 1, 3)
    with pytest.raises(ValueError, match="num_bytes > 0"):
        module.unigram_bits_per_byte([0], [0], 0, 3)
