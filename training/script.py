"""What `train_clm.py` and `finetune.py` share as scripts: the sequence of a run and how it ends.

`run_script` parses and checks every argument, claims the output folder, trains, saves, publishes and
reports; a script gives it only what differs: its arguments (`parse`) and how it makes the model, the
tokenizer and the blocks (`prepare`). A user's mistake ends the run with one line and exit code 2, an
interrupt with the command that resumes it.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import datasets
import psutil
import torch
import transformers
from transformers import Trainer, TrainingArguments, set_seed

from corpora import CorpusError
from publishing import PushError, UploadError

from .arguments import RunArguments, describe_args
from .errors import ArgumentsError
from .hub_push import push_at_end, take_over_hub_push
from .loop import RunInterrupted, train_and_save
from .outputs import claimed_output_dir, disk_full_message
from .trainer import TrainingDivergedError, build_trainer

logger = logging.getLogger(__name__)

# What a user can fix: printed as one line (no traceback) by the scripts, exit code 2.
USER_ERRORS = (ArgumentsError, CorpusError, TrainingDivergedError, PushError, UploadError)


@dataclass
class ParsedRun:
    """A script's arguments: every dataclass, in the order run_args.json records them, and the recipe file."""

    groups: tuple
    recipe: str | Path | None = None

    def get(self, kind: type):
        """The group of type `kind` (RunArguments, TrainingArguments, ...)."""
        return next(group for group in self.groups if isinstance(group, kind))


def run_script(
    program: str,
    argv: list[str],
    parse: Callable[[list[str]], ParsedRun],
    prepare: Callable[[ParsedRun], tuple],
    after: Callable[[ParsedRun, Trainer], None] | None = None,
) -> int:
    """One training run of `program`; returns the process exit code.

    `parse(argv)` returns the checked arguments (nothing may be written before it returns); `prepare(run)`
    returns (model, tokenizer, blocks), called inside the claimed output folder once the seed is set;
    `after(run, trainer)` runs on the finished, saved (and pushed) run.
    """
    training_args = None
    try:
        run = parse(argv)
        run_args, training_args = run.get(RunArguments), run.get(TrainingArguments)
        setup_process(training_args)
        hub_target = take_over_hub_push(training_args)
        with claimed_output_dir(training_args, run_args.overwrite_output_dir) as finished:
            if finished is not None:
                print(f"already complete at step {finished}: model in {training_args.output_dir} (nothing changed)")
                return 0
            set_seed(training_args.seed)
            model, tokenizer, blocks = prepare(run)
            trainer = build_trainer(model, tokenizer, blocks, training_args, run_args)
            arguments = describe_args(*run.groups)
            arguments["recipe"] = str(run.recipe) if run.recipe else None
            metrics = train_and_save(trainer, training_args.resume_from_checkpoint, arguments)
            url = push_at_end(trainer, hub_target)
            if after is not None:
                after(run, trainer)
    except USER_ERRORS as e:
        print(error_line(program, e), file=sys.stderr)
        return 2
    except RunInterrupted as e:
        print(interrupted_lines(program, e, argv), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:  # a second Ctrl-C, or one before training started: stop now, say so
        print(f"\n{program}: interrupted; the newest complete checkpoint (if any) resumes with "
              "--resume_from_checkpoint auto", file=sys.stderr)
        return 130
    except Exception as e:
        line = disk_full_message(e, training_args.output_dir) if training_args is not None else None
        if line is None:
            raise
        print(f"\n{program}: error: {line}", file=sys.stderr)
        return 2
    report_end(trainer, metrics, url)
    return 0


def error_line(program: str, error: Exception) -> str:
    """`program: error: ...`, on a line of its own even when a progress bar was being drawn on stderr."""
    newline = "\n" if isinstance(error, TrainingDivergedError) else ""  # tqdm leaves its bar without a newline
    return f"{newline}{program}: error: {error}"


def setup_process(training_args: TrainingArguments) -> None:
    """Per-process setup: logging (INFO on the main process only) and CPU denormals flushed to zero.

    Near convergence gradients underflow into denormal floats, which x86 CPUs handle in microcode: an LSTM
    overfitting one batch measured 163 s with them and 0.6 s flushed. Flushing changes no result that matters
    (values below 1e-38) and is a no-op on GPUs.
    """
    torch.set_flush_denormal(True)
    level = logging.INFO if training_args.should_log else logging.WARNING
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=level, stream=sys.stdout)
    transformers.utils.logging.set_verbosity(level)
    datasets.utils.logging.set_verbosity(logging.WARNING)
    threads = withheld_cpu_threads()
    if threads:
        torch.set_num_threads(threads)
        logger.info("accelerate launch gave this lone CPU process 1 thread (its default without --cpu or a config): "
                    "training on %d cores (--num_cpu_threads_per_process N chooses)", threads)  # fmt: skip


def withheld_cpu_threads() -> int | None:
    """The physical core count, when `accelerate launch` pinned a single CPU process to 1 thread by default.

    Without `--cpu` or a config file, accelerate launches with OMP_NUM_THREADS=1, so `accelerate launch
    train_clm.py` trained on one core of a laptop's several. Only that case is undone: one process, no GPU,
    OMP_NUM_THREADS absent from the launcher's own environment and no --num_cpu_threads_per_process given.
    """
    if torch.cuda.is_available() or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return None
    if os.environ.get("OMP_NUM_THREADS") != "1" or "ACCELERATE_MIXED_PRECISION" not in os.environ:
        return None
    try:
        launcher = psutil.Process().parent()
        words, launcher_env = launcher.cmdline(), launcher.environ()
    except (psutil.Error, OSError):
        return None
    if not any("accelerate" in word for word in words[:3]) or "OMP_NUM_THREADS" in launcher_env:
        return None
    if any(word.startswith("--num_cpu_threads_per_process") for word in words):
        return None
    cores = psutil.cpu_count(logical=False) or 1
    return cores if cores > 1 else None


def interrupted_lines(program: str, error: RunInterrupted, argv: list[str]) -> str:
    """What the user reads after Ctrl-C: where the checkpoint is and the command that resumes it."""
    words = list(argv)
    if "--resume_from_checkpoint" in words:
        i = words.index("--resume_from_checkpoint")
        del words[i : i + 2]
    launcher = "accelerate launch" if "LOCAL_RANK" in os.environ else "python"
    saved = f"checkpoint saved in {error.checkpoint}" if error.checkpoint else "no checkpoint was saved"
    command = shlex.join([*launcher.split(), program, *words, "--resume_from_checkpoint", "auto"])
    return f"\n{program}: {error}: {saved}; resume with:\n  {command}"


def report_end(trainer: Trainer, metrics: dict, url: str | None) -> None:
    """The lines a run ends with (main process): steps, validation metrics, the model folder, the Hub URL."""
    if not trainer.is_world_process_zero():
        return
    print(
        f"done: {metrics['global_step']} steps, validation loss {metrics['eval_loss']:.4f}, "
        f"perplexity {metrics['eval_perplexity']:.2f}, bits per byte {metrics['eval_bits_per_byte']:.4f}; "
        f"model in {trainer.args.output_dir}"
    )
    if url:
        print(f"pushed to {url}")
