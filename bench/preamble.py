"""What bench_quality.py and bench_train.py do before importing the libraries, and their scratch folder.

    ROOT = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(ROOT))
    from bench.preamble import scratch_dir  # noqa: E402  (before datasets, transformers, tokenizers)

The Hub and datasets stay offline (every input is on disk), and tokenizers' own threads stay off, so that
they do not compete with training for the CPU being measured.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@functools.cache
def scratch_dir(prefix: str = "ropegpt-bench-") -> str:
    """A temporary folder for this process's run outputs, made on first use and removed when it exits."""
    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
