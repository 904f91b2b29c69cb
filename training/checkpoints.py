"""Finding the checkpoint to resume from: the newest *complete* one, never a folder cut short by a kill."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

logger = logging.getLogger(__name__)

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
# Trainer writes the weights, then optimizer/scheduler/RNG state, and trainer_state.json last: a folder whose
# trainer_state.json parses and names its own step was finished.
_REQUIRED = ("trainer_state.json", "optimizer.pt", "scheduler.pt")


def is_complete_checkpoint(path: Path) -> bool:
    """True when Trainer finished writing `path` (weights, optimizer, scheduler and a valid trainer_state)."""
    match = _CHECKPOINT.match(path.name)
    if not match or not path.is_dir():
        return False
    if any(not (path / name).is_file() for name in _REQUIRED):
        return False
    if not any(path.glob("*.safetensors")) and not any(path.glob("pytorch_model*.bin")):
        return False
    try:
        state = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return state.get("global_step") == int(match.group(1))


def find_resumable_checkpoint(output_dir: str | Path) -> Path | None:
    """The complete checkpoint with the highest step under `output_dir`, or None; skipped ones are logged."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    candidates = sorted(
        (p for p in output_dir.iterdir() if _CHECKPOINT.match(p.name)),
        key=lambda p: int(_CHECKPOINT.match(p.name).group(1)),
        reverse=True,
    )
    for path in candidates:
        if is_complete_checkpoint(path):
            return path
        logger.warning("skipping %s: incomplete (the run was probably killed while saving it)", path)
    return None


def resolve_resume(value: str | None, output_dir: str | Path) -> str | None:
    """--resume_from_checkpoint: None, a checkpoint path, or 'auto' for the newest complete checkpoint."""
    if not value:
        return None
    if value == "auto":
        found = find_resumable_checkpoint(output_dir)
        if found is None:
            logger.info("--resume_from_checkpoint auto: no complete checkpoint in %s, starting fresh", output_dir)
        return str(found) if found else None
    path = Path(value)
    if not is_complete_checkpoint(path):
        from .arguments import ArgumentsError

        raise ArgumentsError(
            f"--resume_from_checkpoint {value} is not a complete checkpoint folder: use 'auto' or another checkpoint"
        )
    return str(path)
