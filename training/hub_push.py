"""--push_to_hub: Trainer's own push is switched off, and the finished folder is published once at the end."""

from __future__ import annotations

from transformers import Trainer, TrainingArguments

from publishing import push_model

from .errors import ArgumentsError


def take_over_hub_push(training_args: TrainingArguments) -> dict | None:
    """--push_to_hub is done once at the end by push_to_hub.py (model card, safetensors-only allowlist).

    Trainer's own push would upload every checkpoint, pickles included, so it is switched off here and the
    target returned for `push_at_end`. Call before building the Trainer.
    """
    # Trainer pickles its arguments into training_args.bin of every checkpoint and of the model folder:
    # the token must not travel with them (push_at_end gets it from here).
    token, training_args.hub_token = training_args.hub_token, None
    if not training_args.push_to_hub:
        return None
    if not training_args.hub_model_id:
        raise ArgumentsError("--push_to_hub needs --hub_model_id user/name (the repository to create or update)")
    training_args.push_to_hub = False
    target = {
        "repo_id": training_args.hub_model_id,
        "private": bool(training_args.hub_private_repo),
        "token": token,
    }
    return target


def push_at_end(trainer: Trainer, target: dict | None) -> str | None:
    """Upload the finished output folder with publishing.push_model (main process only); returns the URL."""
    if target is None or not trainer.is_world_process_zero():
        return None
    url = push_model(trainer.args.output_dir, **target)
    return url
