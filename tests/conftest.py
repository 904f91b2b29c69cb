"""Shared test fixtures: the real corpora and checkpoints in ../shared, and a hermetic Hugging Face home.

Tests never reach the network: the Hub clients are put offline and their caches point into a temporary
folder, set here before any test imports `datasets` or `transformers`.
"""

import os
import tempfile
from pathlib import Path

import pytest
import torch

_HF_HOME = tempfile.mkdtemp(prefix="ropegpt-test-hf-")
os.environ.setdefault("HF_HOME", _HF_HOME)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Denormal floats (gradients of a model overfitting a batch) are ~100x slower on x86: one LSTM test took
# 163 s with them and 0.6 s without. train_clm.py flushes them too (training/script.py: setup_process).
torch.set_flush_denormal(True)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CORPORA = SHARED / "corpora"
CHECKPOINTS = SHARED / "checkpoints"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent: these tests read the real corpora and checkpoints from ../shared")
    return path


@pytest.fixture(scope="session")
def corpora_dir() -> Path:
    """`../shared/corpora`, or a skip saying it is absent."""
    return _need(CORPORA)


@pytest.fixture(scope="session")
def checkpoints_dir() -> Path:
    """`../shared/checkpoints`, or a skip saying it is absent."""
    return _need(CHECKPOINTS)
