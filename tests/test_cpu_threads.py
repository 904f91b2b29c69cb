"""`accelerate launch train_clm.py` on a CPU machine trains on every core, not on the 1 thread accelerate gives a
lone process by default (without --cpu or a config file); a thread count the user chose is left alone.

    .venv/bin/python -m pytest tests/test_cpu_threads.py -q
"""

import os
import subprocess
import sys

import psutil
import pytest

from conftest import ROOT

PROBE = "from training.script import withheld_cpu_threads; print('threads', withheld_cpu_threads())"

pytestmark = pytest.mark.skipif((psutil.cpu_count(logical=False) or 1) < 2, reason="needs 2 or more CPU cores")


def launched(tmp_path, *launch_args: str, **env: str) -> str:
    """What withheld_cpu_threads() says inside a process started by `accelerate launch`."""
    probe = tmp_path / "probe.py"
    probe.write_text(f"import sys; sys.path.insert(0, {str(ROOT)!r})\n{PROBE}\n", encoding="utf-8")
    base = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    done = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1",
                           *launch_args, str(probe)], cwd=ROOT, env={**base, **env, "CUDA_VISIBLE_DEVICES": ""},
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return next(line for line in done.stdout.splitlines() if line.startswith("threads "))


def test_a_lone_cpu_process_gets_every_core(tmp_path):
    assert launched(tmp_path) == f"threads {psutil.cpu_count(logical=False)}"


@pytest.mark.parametrize("how", ["launcher option", "environment"])
def test_a_thread_count_the_user_chose_is_kept(tmp_path, how):
    if how == "launcher option":
        assert launched(tmp_path, "--num_cpu_threads_per_process", "1") == "threads None"
    else:
        assert launched(tmp_path, OMP_NUM_THREADS="1") == "threads None"


def test_outside_accelerate_nothing_changes():
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.stdout.strip() == "threads None", done.stderr[-2000:]
