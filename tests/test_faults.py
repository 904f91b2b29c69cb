"""Runs you can trust: kills at many moments, SIGINT/SIGTERM, two runs on one folder, and bad arguments.

    .venv/bin/python -m pytest tests/test_faults.py -q

Faults are delivered by tests/_fault_probe.py: a real train_clm.py process that sends itself a real signal
(SIGKILL, SIGINT, SIGTERM) at an exact moment (inside a checkpoint's save, inside the final save, between
the moves of the final model), so nothing here depends on timing. The runs train a 2-layer, 32-wide RoPE GPT
for 8 steps on one Tolstoy story: a few seconds each.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT

TINY = "hidden_size=32,num_hidden_layers=2,num_attention_heads=2,intermediate_size=64"
STORY = "posle_bala_after_the_ball.utf8bom.txt"
MAX_STEPS = 8


@pytest.fixture(scope="module")
def prepared(corpora_dir, tmp_path_factory):
    """One short story as a corpus and a 300-token BPE tokenizer."""
    from corpora import CorpusArguments, load_corpus, prepare_corpus
    from tokenizer_training import train_tokenizer

    root = tmp_path_factory.mktemp("faults")
    story = str(corpora_dir / "tolstoy" / "txt" / STORY)
    data = prepare_corpus(CorpusArguments(source="text", inputs=[story], output_dir=str(root / "data"),
                                          validation_split=0.2, max_doc_chars=2000))  # fmt: skip
    tokenizer = train_tokenizer(load_corpus(data)["train"]["text"], kind="bpe", vocab_size=300, model_max_length=32)
    tokenizer.save_pretrained(root / "tokenizer")
    return data, root / "tokenizer"


def args_for(prepared, output_dir, *extra) -> list[str]:
    data, tokenizer = prepared
    return [
        "--dataset_dir", str(data), "--tokenizer_dir", str(tokenizer), "--output_dir", str(output_dir),
        "--preset", "tiny", "--config_overrides", TINY, "--block_size", "32",
        "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "16", "--max_eval_blocks", "8",
        "--learning_rate", "3e-3", "--max_steps", str(MAX_STEPS), "--eval_steps", "4", "--save_steps", "4",
        "--save_total_limit", "10", "--logging_steps", "1", "--report_to", "none", "--sample_max_new_tokens", "4",
        "--seed", "0", "--dataloader_num_workers", "0", *extra,
    ]  # fmt: skip


def run(args: list[str], fault: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """train_clm.py in a fresh process, through the fault probe when `fault` is given."""
    script = [str(ROOT / "tests" / "_fault_probe.py")] if fault else [str(ROOT / "train_clm.py")]
    env = {**os.environ, **(env or {}), **({"FAULT": fault} if fault else {})}
    return subprocess.run([sys.executable, *script, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip


def loads(output_dir: Path) -> bool:
    """True when our loader (generate.load_model) loads the folder; an incomplete folder must say so in one line."""
    from generate import GenerateError, load_model

    try:
        load_model(str(output_dir), "cpu")
    except GenerateError as e:
        assert "incomplete" in str(e) or "does not exist" in str(e) or "no config.json" in str(e), str(e)
        assert "\n" not in str(e)
        return False
    return True


def final_step(output_dir: Path) -> int:
    return json.loads((output_dir / "metrics.json").read_text())["global_step"]


def checkpoint_steps(output_dir: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in output_dir.glob("checkpoint-*"))


def fingerprint(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".run.lock"}  # fmt: skip


def resume_and_check(prepared, out: Path, max_steps: int = MAX_STEPS) -> None:
    """Resume with `auto`: the run ends at exactly max_steps and the folder loads."""
    resumed = run(args_for(prepared, out, "--max_steps", str(max_steps), "--resume_from_checkpoint", "auto"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert final_step(out) == max_steps
    assert max(checkpoint_steps(out)) == max_steps
    assert loads(out)


@pytest.fixture(scope="module")
def finished(prepared, tmp_path_factory):
    """A run that reached MAX_STEPS (copied by the tests that change it)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    result = run(args_for(prepared, out, "--hub_token", SECRET))
    assert result.returncode == 0, result.stderr[-3000:]
    (out.parent / "log.txt").write_text(result.stdout + result.stderr)
    return out


def test_no_noise_a_user_reads_as_a_fault(finished):
    """The best model's reload (tied lm_head) and CPU evaluation (pin_memory) used to warn on every run."""
    log = (finished.parent / "log.txt").read_text()
    assert "Loading best model" in log  # the reload did happen
    assert "missing keys" not in log and "pin_memory" not in log


SECRET = "hf_NeverWriteMe0123456789"


def test_the_hub_token_is_in_no_file_of_the_run(finished):
    written = [p for p in finished.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert not written and (finished / "training_args.bin").is_file()
    assert (finished / "checkpoint-4" / "training_args.bin").is_file()


# ---------------------------------------------------------------- SIGKILL at many moments


@pytest.mark.slow
@pytest.mark.parametrize(
    "fault,loadable",
    [("checkpoint_state:4", False), ("checkpoint_state:8", False), ("final_save:_", False), ("publish:1", False),
     ("publish:10", True)],  # after 10 moves config, code and weights are in place: only metrics.json is not
)  # fmt: skip
def test_sigkill_of_a_first_run_then_resume_reaches_max_steps(prepared, tmp_path, fault, loadable):
    out = tmp_path / "run"
    killed = run(args_for(prepared, out), fault=fault)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    # no complete final model yet: our loader says the folder is incomplete (one line), never an AttributeError
    assert loads(out) == loadable
    resume_and_check(prepared, out)


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["final_save:_", "publish:1", "publish:5", "publish:10"])
def test_sigkill_while_replacing_a_finished_model_keeps_a_loadable_folder(prepared, finished, tmp_path, fault):
    """Training continued to 12 steps, killed while its final model replaces the 8-step one."""
    import shutil

    out = tmp_path / "run"
    shutil.copytree(finished, out)
    killed = run(args_for(prepared, out, "--max_steps", "12", "--resume_from_checkpoint", "auto"), fault=fault)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert loads(out)  # the previous model, or whole files of the new one: never a cut file
    resume_and_check(prepared, out, max_steps=12)


def test_resuming_a_finished_run_changes_nothing(prepared, finished):
    before = fingerprint(finished)
    result = run(args_for(prepared, finished, "--resume_from_checkpoint", "auto"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"already complete at step {MAX_STEPS}" in result.stdout
    assert fingerprint(finished) == before and max(checkpoint_steps(finished)) == MAX_STEPS


def test_a_fresh_run_into_a_finished_run_is_refused_unless_overwrite(prepared, finished, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(finished, out)
    before = fingerprint(out)
    refused = run(args_for(prepared, out))
    assert refused.returncode == 2
    assert str(out) in refused.stderr and "--overwrite_output_dir" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert fingerprint(out) == before
    again = run(args_for(prepared, out, "--max_steps", "4", "--overwrite_output_dir", "true"))
    assert again.returncode == 0, again.stderr[-3000:]
    assert final_step(out) == 4 and checkpoint_steps(out) == [4]  # the old run's checkpoint-8 is gone


def test_a_model_folder_cut_short_is_reported_as_incomplete(finished, tmp_path):
    import shutil

    from training.checkpoints import IncompleteModelError, check_model_folder

    check_model_folder(finished)
    for name, cut in (("configuration_ropegpt.py", b""), ("model.safetensors", None), ("config.json", b"{")):
        out = tmp_path / name
        shutil.copytree(finished, out)
        data = (out / name).read_bytes()
        (out / name).write_bytes(cut if cut is not None else data[: len(data) // 2])
        with pytest.raises(IncompleteModelError, match=f"incomplete .*{name}"):
            check_model_folder(out)
        assert not loads(out)


# ---------------------------------------------------------------- SIGINT / SIGTERM


@pytest.mark.slow
@pytest.mark.parametrize("name,code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_interrupt_saves_the_current_step_and_says_how_to_resume(prepared, tmp_path, name, code):
    out = tmp_path / "run"
    stopped = run(args_for(prepared, out), fault=f"signal:{name}:6")
    assert stopped.returncode == code, stopped.stderr[-3000:]
    assert "Traceback" not in stopped.stderr
    assert f"interrupted by {name} at step 6" in stopped.stderr and "--resume_from_checkpoint auto" in stopped.stderr
    assert checkpoint_steps(out) == [4, 6] and not (out / "metrics.json").exists()
    resume_and_check(prepared, out)


@pytest.mark.slow
def test_sigterm_from_outside(prepared, tmp_path):
    """A preempted VM: SIGTERM from another process while training; exit 143 with a checkpoint of that step."""
    from training.checkpoints import is_complete_checkpoint

    out = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "train_clm.py"), *args_for(prepared, out, "--max_steps", "100000")]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not is_complete_checkpoint(out / "checkpoint-4"):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143 and "Traceback" not in err, err[-3000:]
    last = max(checkpoint_steps(out))
    assert last > 4 and is_complete_checkpoint(out / f"checkpoint-{last}")
    assert f"at step {last}" in err


# ---------------------------------------------------------------- one run per folder


@pytest.mark.slow
def test_a_second_run_on_the_same_folder_is_refused_at_once(prepared, tmp_path):
    out = tmp_path / "run"
    flag = tmp_path / "go"
    cmd = [sys.executable, str(ROOT / "tests" / "_fault_probe.py"), *args_for(prepared, out)]
    first = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "FAULT": "pause:3", "FAULT_FLAG": str(flag)},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.time() + 300
    while time.time() < deadline and not Path(f"{flag}.paused").exists() and first.poll() is None:
        time.sleep(0.05)
    try:
        second = run(args_for(prepared, out, "--resume_from_checkpoint", "auto"))
    finally:
        flag.touch()
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-3000:]
    assert second.returncode == 2
    lines = [l for l in second.stderr.splitlines() if l.startswith("train_clm.py: error:")]
    assert len(lines) == 1 and "Traceback" not in second.stderr, second.stderr[-3000:]
    assert str(out) in lines[0] and f"pid {first.pid}" in lines[0]
    assert final_step(out) == MAX_STEPS and max(checkpoint_steps(out)) == MAX_STEPS
    # the first run's log is its own: one sample block per evaluation (steps 4 and 8, and the final one)
    assert (out / "samples.txt").read_text().count("=== step") == 3


def test_the_lock_of_a_dead_run_is_taken_over(tmp_path):
    from training.outputs import LOCK_NAME, RunLock

    out = tmp_path / "run"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / LOCK_NAME).write_text(json.dumps({"pid": int(dead.stdout), "host": "here", "command": "train_clm.py"}))
    lock = RunLock(out)
    lock.acquire()  # no flock is held on it: the process that wrote it is gone
    try:
        assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()
        other = RunLock(out)
        with pytest.raises(Exception, match=f"in use by another run \\(pid {os.getpid()}"):
            other.acquire()
    finally:
        lock.release()


# ---------------------------------------------------------------- every bad argument: one line, exit 2, nothing written


@pytest.mark.parametrize(
    "extra,words",
    [
        (["--block_size", "100000"], ["--block_size 100000", "context of"]),
        (["--learning_rate", "-1"], ["--learning_rate -1"]),
        (["--config_overrides", "num_hidden_layers=abc"], ["num_hidden_layers", "int"]),
        (["--config_overrides", "hidden_size=30,num_attention_heads=4"], ["hidden_size=30"]),
        (["--eval_steps", "1000", "--save_steps", "1"], ["multiple"]),
        (["--max_steps", "0"], ["--max_steps 0"]),
        (["--max_steps", "-5"], ["--max_steps -5"]),
        (["--per_device_train_batch_size", "0"], ["--per_device_train_batch_size 0"]),
        (["--model_type", "gpt2", "--config_overrides", "n_positions=64", "--block_size", "128"], ["context of 64"]),
        (["--resume_from_checkpoint", "nowhere"], ["nowhere"]),
        (["--tokenizer_dir", "EMPTY"], ["--tokenizer_dir", "no tokenizer"]),
        (["--optimizer", "muon", "--muon_learning_rate", "-0.01"], ["--muon_learning_rate -0.01"]),
        (["--optimizer", "muon", "--muon_momentum", "1.0"], ["--muon_momentum 1.0"]),
        (["--model_type", "gpt2", "--document_masking", "true"], ["--document_masking", "gpt2"]),
    ],
)
def test_bad_argument_is_one_line_before_any_work(corpora_dir, tmp_path, capsys, extra, words):
    import train_clm

    empty = tmp_path / "empty"
    empty.mkdir()
    extra = [str(empty) if w == "EMPTY" else w for w in extra]
    out = tmp_path / "out"
    story = str(corpora_dir / "tolstoy" / "txt" / STORY)
    # --source text with no --tokenizer_dir: without the early checks a corpus and a tokenizer would be made
    assert train_clm.main(["--source", "text", story, "--output_dir", str(out), "--report_to", "none", *extra]) == 2
    err = capsys.readouterr().err
    lines = [l for l in err.strip().splitlines() if l.startswith("train_clm.py: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    for word in words:
        assert word in lines[0], lines[0]
    assert not out.exists()  # nothing written


def test_config_overrides_of_aliased_fields_land(corpora_dir):
    from training.arguments import ModelArguments
    from training.models import build_config, model_context_length

    config = build_config(ModelArguments(model_type="gpt2", config_overrides="n_positions=64,n_embd=32"), None, 32)
    assert config.n_positions == 64 and model_context_length(config) == 64 and config.hidden_size == 32
    # the standard name works too, and lands on the real field
    config = build_config(ModelArguments(model_type="gpt2", config_overrides="max_position_embeddings=48"), None, 32)
    assert config.n_positions == 48
    # an unpinned context shrinks to the block the model trains at (what the saved config advertises); it is never
    # grown: a longer block is the one-line error of the test above
    assert build_config(ModelArguments(model_type="gpt2"), None, 512).n_positions == 512


# ---------------------------------------------------------------- disk full


@pytest.fixture
def small_disk(tmp_path):
    """An 800 KB tmpfs: room for one checkpoint of the tiny model (520 KB), not two; skipped where not root."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=800k", "tmpfs", str(disk)], capture_output=True,
                             text=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here to fill a disk ({mounted.stderr.strip() or 'not root'})")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=False)


@pytest.mark.slow
def test_disk_full_is_one_line_and_the_last_checkpoint_stays_loadable(prepared, small_disk):
    from training.checkpoints import check_model_folder, is_complete_checkpoint

    out = small_disk / "run"
    full = run(args_for(prepared, out, "--optimizer", "adamw"))  # AdamW's two moments: 520 KB, one fits, not two
    assert full.returncode == 2, full.stderr[-3000:]
    lines = [l for l in full.stderr.splitlines() if l.startswith("train_clm.py: error:")]
    assert len(lines) == 1 and "Traceback" not in full.stderr, full.stderr[-3000:]
    assert "no space left" in lines[0] and str(out) in lines[0] and "bytes free" in lines[0]
    assert "checkpoint-4" in lines[0]
    assert is_complete_checkpoint(out / "checkpoint-4")
    check_model_folder(out / "checkpoint-4")
