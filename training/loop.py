"""Training to the end: resume, a checkpoint and a clean stop on SIGINT/SIGTERM, evaluation, the output folder."""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path

from transformers import TrainerState

from .callbacks import StopOnSignal
from .checkpoints import resolve_resume
from .outputs import finished_step, save_final
from .trainer import CLMTrainer

logger = logging.getLogger(__name__)


class RunInterrupted(Exception):
    """SIGINT/SIGTERM stopped training after a checkpoint of the current step was saved."""

    def __init__(self, signum: int, step: int, checkpoint: str | None):
        super().__init__(f"interrupted by {signal.Signals(signum).name} at step {step}")
        self.signum, self.step, self.checkpoint = signum, step, checkpoint

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # what a shell reports for a process killed by the signal: 130, 143



def finish_from_checkpoint(trainer: CLMTrainer, checkpoint: str) -> dict:
    """The final model of a run whose training ended (checkpoint at max_steps) but whose final save was cut short.

    Restores the run's state and the weights the run would have ended with (the best checkpoint's under
    --load_best_model_at_end, else the last), without a training step.
    """
    trainer.state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))
    best = trainer.state.best_model_checkpoint
    source = best if trainer.args.load_best_model_at_end and best and Path(best).is_dir() else checkpoint
    logger.info("training already reached step %d: writing its final model from %s", trainer.state.global_step, source)
    # Trainer's own loader for resume and best-model reload: handles safetensors, shards and adapters.
    trainer._load_from_checkpoint(source)
    return {"finished_from_checkpoint": source}


def train_and_save(trainer: CLMTrainer, resume_from_checkpoint: str | None, extra: dict) -> dict:
    """Train (resuming if asked), evaluate, and write the output folder; returns the final metrics.

    SIGINT/SIGTERM during training save a checkpoint of the current step and raise RunInterrupted.
    """
    args = trainer.args
    resume = resolve_resume(resume_from_checkpoint, args.output_dir)
    stop = StopOnSignal()
    trainer.add_callback(stop)
    stop.install()
    try:
        if resume and finished_step(Path(args.output_dir), args.max_steps, resume) is not None:
            metrics = finish_from_checkpoint(trainer, resume)
        else:
            train_result = trainer.train(resume_from_checkpoint=resume)
            if stop.signum and trainer.state.global_step < trainer.state.max_steps:
                checkpoint = Path(args.output_dir) / f"checkpoint-{trainer.state.global_step}"
                saved = str(checkpoint) if checkpoint.is_dir() else None
                raise RunInterrupted(stop.signum, trainer.state.global_step, saved)
            metrics = {f"train_{k}" if not k.startswith("train") else k: v for k, v in train_result.metrics.items()}
        metrics.update(trainer.evaluate())
        metrics["world_size"] = args.world_size
        metrics["global_step"] = trainer.state.global_step
        if trainer.is_fsdp_enabled:
            # Under FSDP's sharded state dict (accelerate_configs/fsdp.yaml), save_model writes no weights at all.
            trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
        files = {}
        if trainer.is_world_process_zero():
            files = {
                "metrics.json": json.dumps(metrics, indent=2, ensure_ascii=False) + "\n",
                "run_args.json": json.dumps(extra, indent=2, ensure_ascii=False, default=str) + "\n",
            }
        # weights (safetensors), config with auto_map, model code, tokenizer: written beside, moved into place
        save_final(trainer, files)
    finally:
        stop.uninstall()
    return metrics

