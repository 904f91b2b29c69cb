"""What a model folder holds, read for publishing: which files go up, its languages, its size and samples.

Every function takes the trained folder (train_clm.py's or finetune.py's output_dir, or a save_pretrained
folder) and reads it without changing it.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from safetensors import safe_open
from transformers.dynamic_module_utils import get_relative_import_files

from training.checkpoints import IncompleteModelError, check_model_folder

from .errors import PushError

# The files transformers' tokenizers save (fast and slow, BPE, WordPiece, SentencePiece, chat templates).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
    "chat_template.jinja",
    "chat_template.json",
)
MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors.index.json")
# What peft's save_pretrained writes for a LoRA adapter (finetune.py --lora_r N leaves it in OUTPUT_DIR).
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
REPORT_FILES = ("metrics.json", "samples.txt")
LANGUAGE_NAMES = {"ru": "russian", "tt": "tatar"}
# Leipzig corpus names start with an ISO 639-3 code (tat_books_2024_10K); other hints are our source names.
LANGUAGE_HINTS = {
    "tt": re.compile(r"(^|[^a-z])(tat_|tatar)", re.IGNORECASE),
    "ru": re.compile(r"(^|[^a-z])(rus_|russian|tolstoy|tolstoj|libru|lib\.ru)", re.IGNORECASE),
}
TATAR_LETTERS = re.compile(r"[әөүҗңһӘӨҮҖҢҺ]")
CYRILLIC = re.compile(r"[а-яёА-ЯЁ]")
SECRET_KEY = re.compile(r"(^|_)(token|password|secret|api_key)$", re.IGNORECASE)
HF_TOKEN_VALUE = re.compile(r"hf_[A-Za-z0-9]{8,}")
REDACTED = "<redacted>"


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def is_adapter(model_dir: Path) -> bool:
    """Whether `model_dir` is a PEFT adapter folder (finetune.py --lora_r N): adapter files, no config.json."""
    return all((model_dir / name).is_file() for name in ADAPTER_FILES) and not (model_dir / "config.json").is_file()


def check_inputs(model_dir: str | Path, repo_id: str) -> Path:
    """`model_dir` as a Path, once it has a config and safetensors weights (or is a PEFT adapter folder) and
    `repo_id` is owner/name."""
    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise PushError(f"bad --repo_id {repo_id!r}: {str(e).splitlines()[0]}") from e
    if repo_id.count("/") != 1:
        raise PushError(f"bad --repo_id {repo_id!r}: give owner/name, e.g. your-user/tolstoy-ropegpt")
    path = Path(model_dir)
    if not path.is_dir():
        raise PushError(f"model folder {model_dir} does not exist")
    if is_adapter(path):
        return path
    if not (path / "config.json").is_file():
        raise PushError(f"{model_dir} has no config.json: give a folder written by train_clm.py or save_pretrained "
                        "(or a LoRA adapter folder with adapter_config.json and adapter_model.safetensors)")
    if not any(path.glob("*.safetensors")):
        pickled = sorted(p.name for p in path.glob("*.bin") if p.name != "training_args.bin")
        hint = f" (found {pickled[0]}: re-save with safe_serialization, pickles are never uploaded)" if pickled else ""
        raise PushError(f"{model_dir} has no model weights (*.safetensors){hint}")
    try:
        check_model_folder(path)
    except IncompleteModelError as e:
        raise PushError(str(e)) from None
    return path


def tokenizer_dir(model_dir: Path) -> Path:
    """Where the tokenizer files are: the folder itself (Trainer.save_model) or its tokenizer/ copy."""
    if any((model_dir / name).is_file() for name in TOKENIZER_FILES):
        return model_dir
    return model_dir / "tokenizer"


def remote_code_files(model_dir: Path) -> list[Path]:
    """The .py files the model and tokenizer need with trust_remote_code: those in auto_map and what they import."""
    modules = set()
    for name in ("config.json", "tokenizer_config.json"):
        auto_map = (read_json(model_dir / name) or {}).get("auto_map") or {}
        for refs in auto_map.values():
            for ref in refs if isinstance(refs, list) else [refs]:
                # "module.Class", or "other/repo--module.Class" when the code lives in another repo
                if ref and "--" not in ref:
                    modules.add(ref.rsplit(".", 1)[0])
    files = set()
    for module in modules:
        path = model_dir / f"{module}.py"
        if path.is_file():
            files.add(path)
            files.update(Path(p) for p in get_relative_import_files(str(path)))
    return sorted(files)


def find_manifest(model_dir: Path, run_args: dict | None) -> Path | None:
    """The corpus manifest: output_dir/corpus/manifest.json, else the manifest of --dataset_dir."""
    candidates = [model_dir / "corpus" / "manifest.json"]
    dataset_dir = ((run_args or {}).get("DataArguments") or {}).get("dataset_dir")
    if dataset_dir:
        candidates.append(Path(dataset_dir) / "manifest.json")
    return next((p for p in candidates if p.is_file()), None)


def redact(value, key: str = ""):
    """A copy of a JSON-able value with every token-like field and every `hf_...` token string replaced."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if isinstance(value, str):
        if SECRET_KEY.search(key) and value and not (value.startswith("<") and value.endswith(">")):
            return REDACTED
        return HF_TOKEN_VALUE.sub(REDACTED, value)
    return value


def detect_languages(model_dir: Path, run_args: dict | None, manifest: dict | None) -> list[str]:
    """ISO 639-1 codes of the training text: from corpus names (tat_…, tolstoy…), else from the letters seen.

    Names are checked first (data source, inputs, manifest locations); failing those, sample prompts and
    samples are read: Tatar-only letters (ә ө ү җ ң һ) mean Tatar, other Cyrillic Russian. Empty if unknown.
    """
    data = (run_args or {}).get("DataArguments") or {}
    names = [str(data.get("source") or ""), str(data.get("dataset_dir") or ""), *map(str, data.get("inputs") or [])]
    if manifest:
        names += [str(manifest.get("arguments", {}).get("source") or "")]
        names += [str(x) for x in manifest.get("arguments", {}).get("inputs") or []]
        names += [str(s.get("location", "")) for s in manifest.get("sources") or [] if isinstance(s, dict)]
    found = [code for code, pattern in LANGUAGE_HINTS.items() if any(pattern.search(n) for n in names)]
    if found:
        return sorted(found)
    text = " ".join(((run_args or {}).get("RunArguments") or {}).get("sample_prompts") or [])
    samples = model_dir / "samples.txt"
    if samples.is_file():
        text += samples.read_text(encoding="utf-8", errors="replace")
    if TATAR_LETTERS.search(text):
        return ["tt"]
    if CYRILLIC.search(text):
        return ["ru"]
    return []


def hub_base_model(run_args: dict | None, name: str | None = None) -> str | None:
    """`name` (default: model_name_or_path) when it names a Hub repo (a fine-tune), not a local folder."""
    name = name or ((run_args or {}).get("ModelArguments") or {}).get("model_name_or_path")
    if not name or Path(name).exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        return None
    try:
        validate_repo_id(name)
    except HFValidationError:
        return None
    return name


def count_parameters(model_dir: Path) -> int:
    """Stored parameters, read from the safetensors headers (tied weights are stored once)."""
    total = 0
    for path in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(path), framework="numpy") as f:
            for name in f.keys():
                total += math.prod(f.get_slice(name).get_shape())
    return total


def format_count(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}K"


def last_samples(model_dir: Path) -> tuple[str | None, list[str]]:
    """The step and lines of the last `=== step N` block of samples.txt."""
    path = model_dir / "samples.txt"
    if not path.is_file():
        return None, []
    step, lines = None, []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("=== step"):
            step, lines = line.removeprefix("=== step").strip(), []
        elif line.strip():
            lines.append(line)
    return step, lines

