"""The output folder of a run: one run at a time, a final model that is never half-written, finished runs kept.

* A lock (`OUTPUT_DIR/.run.lock`, an advisory `flock` held by the process that writes the folder) refuses a
  second run on the same folder at once. The kernel drops the lock when its holder dies, so the lock of a
  killed run (kill -9, a lost VM) is taken over by the next run without anyone deleting anything.
* The final model is written into `OUTPUT_DIR/.final-staging`, renamed to `OUTPUT_DIR/.final-ready` when
  complete, then moved file by file into OUTPUT_DIR with `os.replace` (atomic per file): the weights go last
  but for `metrics.json`, which marks a finished run. A kill before the rename leaves the previous model
  untouched; a kill during the moves leaves whole files only, and the next run finishes the moves first.
* A fresh run into a folder that holds a run (checkpoints or a finished model) is refused unless
  `--overwrite_output_dir true`; `--resume_from_checkpoint auto` on a finished run changes nothing.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import shutil
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from .checkpoints import (
    _CHECKPOINT,
    IncompleteModelError,
    check_model_folder,
    find_resumable_checkpoint,
    is_complete_checkpoint,
)
from .errors import ArgumentsError

logger = logging.getLogger(__name__)

LOCK_NAME = ".run.lock"
STAGING_NAME = ".final-staging"
READY_NAME = ".final-ready"
FINISHED_MARKER = "metrics.json"
# What a run writes at the top of OUTPUT_DIR besides the model and tokenizer files (removed on overwrite).
RUN_FILES = ("metrics.json", "run_args.json", "trainer_state.json", "samples.txt", "training_args.bin")


class RunLock:
    """An exclusive, non-blocking `flock` on OUTPUT_DIR/.run.lock; the file says who holds it."""

    def __init__(self, output_dir: str | Path):
        self.path = Path(output_dir) / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ArgumentsError(
                f"--output_dir {self.path.parent} is in use by another run ({describe_holder(self.path)}): "
                "wait for it to end, stop it, or give another --output_dir"
            ) from None
        previous = read_holder(self.path)
        if previous.get("pid"):
            logger.warning("taking over the lock of an ended run (pid %s) on %s", previous["pid"], self.path.parent)
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                  "command": " ".join(sys.argv)}  # fmt: skip
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder, ensure_ascii=False) + "\n").encode("utf-8"), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is None:
            return
        # Emptied, not deleted: deleting would let a waiting run lock an unlinked file while a third locks a new one.
        os.ftruncate(self.fd, 0)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None


def read_holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}


def describe_holder(path: Path) -> str:
    holder = read_holder(path)
    if not holder:
        return "it is starting"
    return f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}: {holder.get('command')}"


def holds_a_run(output_dir: Path) -> bool:
    """True when `output_dir` has checkpoints or a finished model of an earlier run."""
    if not output_dir.is_dir():
        return False
    return (output_dir / FINISHED_MARKER).exists() or any(_CHECKPOINT.match(p.name) for p in output_dir.iterdir())


def clear_previous_run(output_dir: Path) -> None:
    """--overwrite_output_dir: remove an earlier run's checkpoints, model and logs; keep corpus/ and tokenizer/."""
    keep = {"corpus", "tokenizer", LOCK_NAME}
    for path in output_dir.iterdir():
        if path.name in keep:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    logger.warning("--overwrite_output_dir: removed the earlier run in %s (kept corpus/ and tokenizer/)", output_dir)


def publish_ready(output_dir: Path) -> bool:
    """Move a complete `.final-ready` model into OUTPUT_DIR (weights, then metrics.json last); True if one was there."""
    ready = output_dir / READY_NAME
    if not ready.is_dir():
        return False

    def order(path: Path) -> int:
        if path.name == FINISHED_MARKER:
            return 2
        is_weights = path.suffix in (".safetensors", ".bin") and path.name != "training_args.bin"
        return 1 if is_weights or path.name.endswith(".index.json") else 0

    for path in sorted(ready.iterdir(), key=order):
        target = output_dir / path.name
        if path.is_dir():  # e.g. a LoRA run's nested folders: replace as a whole
            if target.exists():
                shutil.rmtree(target)
        os.replace(path, target)
    ready.rmdir()
    return True


def recover_output_dir(output_dir: Path) -> None:
    """Finish the moves of a final model that a kill interrupted; drop a final model cut short while written."""
    if publish_ready(output_dir):
        logger.warning("finished moving the final model of an interrupted run into %s", output_dir)
    staging = output_dir / STAGING_NAME
    if staging.exists():
        shutil.rmtree(staging)
        logger.warning("removed %s: a final model cut short by a kill (the last checkpoint is intact)", staging)


def finished_step(output_dir: Path, max_steps: int, resume: str) -> int | None:
    """The step of the checkpoint `resume` ('auto': the newest complete one) when it reached `max_steps`, else None.

    `max_steps` <= 0 (epochs) uses the target the run itself recorded in its trainer_state.json.
    """
    checkpoint = find_resumable_checkpoint(output_dir) if resume == "auto" else Path(resume)
    if checkpoint is None or not is_complete_checkpoint(checkpoint):
        return None
    state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    target = max_steps if max_steps > 0 else state.get("max_steps", 0)
    step = state["global_step"]
    return step if target and step >= target else None


def final_model_complete(output_dir: Path, step: int) -> bool:
    """True when OUTPUT_DIR holds the finished model of step `step` (its metrics.json names that step)."""
    try:
        metrics = json.loads((output_dir / FINISHED_MARKER).read_text(encoding="utf-8"))
        check_model_folder(output_dir)
    except (OSError, ValueError, IncompleteModelError):
        return False
    return metrics.get("global_step") == step


@contextmanager
def claimed_output_dir(training_args, overwrite: bool = False):
    """Hold OUTPUT_DIR for this run: the lock, recovery of an interrupted final save, no silent overwrite.

    Only the process that writes the folder (`should_save`) takes the lock; under `accelerate launch` the
    launcher stops the other ranks when it refuses. Yields the step of a finished run whose final model is
    complete when --resume_from_checkpoint points at a checkpoint that reached max_steps, else None.
    """
    output_dir = Path(training_args.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ArgumentsError(f"--output_dir {output_dir} is a file: give a folder")
    lock = RunLock(output_dir) if training_args.should_save else None
    if lock is not None:
        lock.acquire()
    try:
        resume = training_args.resume_from_checkpoint
        with training_args.main_process_first(desc="checking the output folder"):
            if lock is not None:
                recover_output_dir(output_dir)
                if not resume and holds_a_run(output_dir):
                    if not overwrite:
                        raise ArgumentsError(
                            f"--output_dir {output_dir} already holds a run: continue it with "
                            "--resume_from_checkpoint auto, start over with --overwrite_output_dir true, "
                            "or give another --output_dir"
                        )
                    clear_previous_run(output_dir)
            step = finished_step(output_dir, training_args.max_steps, resume) if resume else None
            done = step if step is not None and final_model_complete(output_dir, step) else None
        yield done
    finally:
        if lock is not None:
            lock.release()


def save_final(trainer, files: dict[str, str]) -> None:
    """Write the final model, trainer_state.json and `files` ({name: text}) beside OUTPUT_DIR, then move them in."""
    output_dir = Path(trainer.args.output_dir)
    staging = output_dir / STAGING_NAME
    if trainer.is_world_process_zero() and staging.exists():
        shutil.rmtree(staging)
    trainer.save_model(str(staging))  # every rank: FSDP/DeepSpeed gather the weights collectively
    if not trainer.is_world_process_zero():
        return
    trainer.state.save_to_json(str(staging / "trainer_state.json"))
    for name, text in files.items():
        (staging / name).write_text(text, encoding="utf-8")
    ready = output_dir / READY_NAME
    if ready.exists():
        shutil.rmtree(ready)
    os.replace(staging, ready)  # from here on the new model is complete and will be published
    publish_ready(output_dir)


def _chain(error: BaseException):
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


def disk_full_message(error: BaseException, output_dir: str | Path) -> str | None:
    """One line for a write that failed because the disk of OUTPUT_DIR is full, else None.

    torch.save and safetensors report a full disk in their own words (a RuntimeError "unexpected pos", a
    SafetensorError with "os error 28"), so the chain of errors is searched for ENOSPC or those words.
    """
    certain = ("no space left on device", "os error 28", "enospc")
    # torch's zip writer only says that a write came up short: a full disk when the disk is (nearly) full
    short_write = ("file write failed", "unexpected pos")
    output_dir = Path(output_dir)
    folder = next((p for p in (output_dir, *output_dir.parents) if p.exists()), Path("."))
    free = shutil.disk_usage(folder).free
    texts = [str(e).lower() for e in _chain(error)]
    full = any(isinstance(e, OSError) and e.errno == errno.ENOSPC for e in _chain(error))
    full = full or any(w in t for t in texts for w in certain)
    full = full or (free < 64 * 2**20 and any(w in t for t in texts for w in short_write))
    if not full:
        return None
    last = find_resumable_checkpoint(output_dir) if output_dir.is_dir() else None
    kept = f"the last complete checkpoint ({last.name}) is intact" if last else "no complete checkpoint was written"
    return (
        f"no space left on the disk of {output_dir} ({free} bytes free): {kept}; free some space and resume with "
        "--resume_from_checkpoint auto, or give an --output_dir on a larger disk"
    )
