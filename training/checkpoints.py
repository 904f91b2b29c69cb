"""Finding the checkpoint to resume from: the newest *complete* one, never a folder cut short by a kill."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from .errors import ArgumentsError

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
        raise ArgumentsError(
            f"--resume_from_checkpoint {value} is not a complete checkpoint folder: use 'auto' or another checkpoint"
        )
    return str(path)


class IncompleteModelError(ValueError):
    """A model folder with a missing, empty or cut-short file; the message names the file and what to do."""


def _safetensors_complete(path: Path) -> bool:
    """True when the safetensors header parses and the file is as long as the header says."""
    try:
        with path.open("rb") as f:
            size = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(size))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        return path.stat().st_size == 8 + size + end
    except (OSError, ValueError, KeyError, TypeError):
        return False


def check_model_folder(path: str | Path) -> None:
    """Raise IncompleteModelError when the model folder `path` was cut short (a kill while saving, a bad copy).

    Checks what `from_pretrained` would otherwise trip over with an unrelated error: config.json, the weight
    files (a safetensors file as long as its header says), and the code files that `auto_map` names.
    """
    path = Path(path)
    # A kill between the moves of a final model (training/outputs.py) leaves whole files only: the folder
    # loads when they are all there, and the next run of the training finishes the moves.
    cause = "its final save was interrupted" if (path / ".final-ready").exists() else "a kill while saving?"
    advice = f"it was cut short ({cause}): rerun the training with --resume_from_checkpoint auto to finish it"
    config_name = "config.json"
    if not (path / config_name).exists() and (path / "adapter_config.json").exists():
        config_name = "adapter_config.json"  # a LoRA run's folder: the adapter, no base weights
    try:
        config = json.loads((path / config_name).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IncompleteModelError(f"{path} is incomplete (no config.json): {advice}") from None
    except (OSError, ValueError):
        raise IncompleteModelError(f"{path} is incomplete ({config_name} is empty or cut short): {advice}") from None
    weights = sorted(path.glob("*.safetensors")) + sorted(path.glob("pytorch_model*.bin"))
    if not weights:
        raise IncompleteModelError(f"{path} is incomplete (no weights: model.safetensors is missing): {advice}")
    for file in weights:
        if file.suffix == ".safetensors" and not _safetensors_complete(file):
            raise IncompleteModelError(f"{path} is incomplete ({file.name} is cut short): {advice}")
    auto_map = config.get("auto_map", {}) if isinstance(config, dict) else {}
    for reference in auto_map.values():
        for ref in reference if isinstance(reference, list) else [reference]:
            if not ref or "--" in ref:  # None, or code in another Hub repository
                continue
            code = path / (ref.rsplit(".", 1)[0] + ".py")
            if not code.is_file() or code.stat().st_size == 0:
                raise IncompleteModelError(f"{path} is incomplete ({code.name} is missing or empty): {advice}")
