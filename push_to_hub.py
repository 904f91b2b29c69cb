"""Publish a trained model folder to the Hugging Face Hub with a model card, or export it and check it loads.

    python push_to_hub.py --model_dir runs/tolstoy_tiny --repo_id user/tolstoy-ropegpt-tiny
    python push_to_hub.py --model_dir runs/tolstoy_tiny --repo_id user/tolstoy-ropegpt-tiny --private --revision v1
    python push_to_hub.py --model_dir runs/tolstoy_tiny --repo_id user/tolstoy-ropegpt-tiny --dry_run /tmp/export

The token comes from `HF_TOKEN` or the login cache (`hf auth login`); it is never printed. Afterwards anyone runs

    from transformers import pipeline
    pipeline("text-generation", model="user/tolstoy-ropegpt-tiny", trust_remote_code=True)

What goes up is an allowlist, written first into an export folder (see `export_model`): weights
(safetensors only), config.json, generation_config.json, the model's remote code, tokenizer files,
metrics.json, samples.txt, the corpus manifest as corpus_manifest.json, the resolved arguments as
training_args.json (tokens redacted) and README.md (the model card). Never pickles (training_args.bin),
checkpoints, optimizer states, TensorBoard logs or the corpus itself. A LoRA adapter folder (finetune.py
--lora_r N) goes up as a PEFT repository: adapter_config.json (naming `--base_model` when given) and
adapter_model.safetensors instead of the model, with `library_name: peft` and `base_model` in the card.

`--dry_run EXPORT_DIR` writes the export and loads it with the pipeline above in a fresh offline process
whose working directory and import path exclude this project, so the shipped remote code is what runs.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData, get_token
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from transformers import HfArgumentParser
from transformers.dynamic_module_utils import get_relative_import_files

from training.checkpoints import IncompleteModelError, check_model_folder

DEFAULT_LICENSE = "apache-2.0"
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


class PushError(ValueError):
    """A bad argument or an unusable model folder, found before anything is uploaded; one line."""


class UploadError(RuntimeError):
    """The Hub refused or failed the upload; one line saying whether retrying is safe."""


@dataclass
class PushArguments:
    """Command-line arguments of push_to_hub.py."""

    model_dir: str = field(metadata={"help": "The trained model folder (train_clm.py's --output_dir)."})
    repo_id: str = field(metadata={"help": "The Hub repository, owner/name (created if missing)."})
    private: bool = field(
        default=False, metadata={"help": "Create the repository as private (an existing one keeps its visibility)."}
    )
    revision: str | None = field(
        default=None, metadata={"help": "Branch to commit to (created from main if new); default: main."}
    )
    commit_message: str | None = field(
        default=None, metadata={"help": "Commit message; default: 'Upload <model_dir> with push_to_hub.py'."}
    )
    dry_run: str | None = field(
        default=None,
        metadata={"help": "Upload nothing: write the export into this (new or empty) folder and check that it "
                  "loads with pipeline('text-generation', trust_remote_code=True) in a fresh offline process."},
    )
    language: list[str] | None = field(
        default=None,
        metadata={"help": "ISO 639-1 language codes for the card (e.g. ru tt); default: detected from the data."},
    )
    license: str = field(default=DEFAULT_LICENSE, metadata={"help": "License identifier for the card's metadata."})
    base_model: str | None = field(
        default=None,
        metadata={"help": "Hub id of the base model, for a LoRA adapter (or a merged model) trained from a local "
                  "copy of it: written into the card and the adapter's adapter_config.json."},
    )


# ---------------------------------------------------------------- reading the model folder


def _read_json(path: Path) -> dict | None:
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


def _tokenizer_dir(model_dir: Path) -> Path:
    """Where the tokenizer files are: the folder itself (Trainer.save_model) or its tokenizer/ copy."""
    if any((model_dir / name).is_file() for name in TOKENIZER_FILES):
        return model_dir
    return model_dir / "tokenizer"


def remote_code_files(model_dir: Path) -> list[Path]:
    """The .py files the model and tokenizer need with trust_remote_code: those in auto_map and what they import."""
    modules = set()
    for name in ("config.json", "tokenizer_config.json"):
        auto_map = (_read_json(model_dir / name) or {}).get("auto_map") or {}
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


def _hub_base_model(run_args: dict | None, name: str | None = None) -> str | None:
    """`name` (default: model_name_or_path) when it names a Hub repo (a fine-tune), not a local folder."""
    name = name or ((run_args or {}).get("ModelArguments") or {}).get("model_name_or_path")
    if not name or Path(name).exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        return None
    try:
        validate_repo_id(name)
    except HFValidationError:
        return None
    return name


def _count_parameters(model_dir: Path) -> int:
    """Stored parameters, read from the safetensors headers (tied weights are stored once)."""
    from safetensors import safe_open

    total = 0
    for path in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(path), framework="numpy") as f:
            for name in f.keys():
                total += math.prod(f.get_slice(name).get_shape())
    return total


def _format_count(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}K"


def _last_samples(model_dir: Path) -> tuple[str | None, list[str]]:
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


# ---------------------------------------------------------------- the model card


def _dataset_label(run_args: dict | None, manifest: dict | None) -> tuple[str, str, list[str]]:
    """(type, human name, Hub dataset ids) of the training data, for the card's metadata."""
    args = (manifest or {}).get("arguments") or ((run_args or {}).get("DataArguments") or {})
    source = args.get("source") or "custom"
    inputs = [str(x) for x in args.get("inputs") or []]
    # `datasets:` links to huggingface.co/datasets/<id>; only a corpus taken from the Hub has such an id.
    hub_ids = inputs[:1] if source == "hub" and inputs else []
    names = ", ".join("/".join(Path(x).parts[-2:]) or x for x in inputs[:3]) + (", …" if len(inputs) > 3 else "")
    label = f"{source}: {names}" if names else source
    return (hub_ids[0] if hub_ids else source), label, hub_ids


def _lora_settings(run_args: dict | None) -> dict | None:
    """finetune.py's LoRA arguments of the run, or None when it trained every weight."""
    args = (run_args or {}).get("FinetuneArguments") or {}
    if not args.get("lora_r"):
        return None
    return {k: args.get(k) for k in ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules", "merge_lora")}


def build_model_card(
    model_dir: str | Path,
    repo_id: str,
    *,
    languages: list[str] | None = None,
    license: str = DEFAULT_LICENSE,
    base_model: str | None = None,
) -> ModelCard:
    """The model card of `model_dir` for `repo_id`: YAML metadata (huggingface_hub's ModelCardData, with a
    model-index of the validation perplexity and bits per byte) and prose (use, evaluation, recipe, data, samples).

    A PEFT adapter folder gets `library_name: peft` and its base model; `base_model` (a Hub id) names the base
    when the run started from a local copy of it."""
    model_dir = Path(model_dir)
    adapter = is_adapter(model_dir)
    adapter_config = _read_json(model_dir / "adapter_config.json") if adapter else None
    config = _read_json(model_dir / "config.json") or {}
    metrics = _read_json(model_dir / "metrics.json") or {}
    run_args = _read_json(model_dir / "run_args.json")
    manifest_path = find_manifest(model_dir, run_args)
    manifest = _read_json(manifest_path) if manifest_path else None
    languages = list(languages) if languages else detect_languages(model_dir, run_args, manifest)
    model_type = config.get("model_type", "causal-lm")
    base_model = _hub_base_model(run_args, base_model or (adapter_config or {}).get("base_model_name_or_path"))
    lora = _lora_settings(run_args)
    dataset_type, dataset_name, hub_datasets = _dataset_label(run_args, manifest)

    eval_results = [
        EvalResult(
            task_type="text-generation",
            task_name="Causal language modeling",
            dataset_type=dataset_type,
            dataset_name=dataset_name,
            dataset_split="validation",
            metric_type=metric_type,
            metric_name=metric_name,
            metric_value=round(float(metrics[key]), 4),
        )
        for key, metric_type, metric_name in (
            ("eval_perplexity", "perplexity", "Perplexity"),
            ("eval_bits_per_byte", "bits_per_byte", "Bits per byte"),
        )
        if isinstance(metrics.get(key), (int, float)) and math.isfinite(metrics[key])
    ]
    data = ModelCardData(
        language=languages or None,
        license=license,
        library_name="peft" if adapter else "transformers",
        pipeline_tag="text-generation",
        tags=([] if adapter else [model_type]) + ["causal-lm", *(LANGUAGE_NAMES[c] for c in languages if c in LANGUAGE_NAMES)]
        + (["fine-tuned"] if base_model or lora else []) + (["lora"] if lora or adapter else []),
        datasets=hub_datasets or None,
        base_model=base_model,
        model_name=repo_id if eval_results else None,
        eval_results=eval_results or None,
    )
    body = _card_body(model_dir, repo_id, config, metrics, run_args, manifest, languages, base_model, adapter_config)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


def _card_body(model_dir, repo_id, config, metrics, run_args, manifest, languages, base_model, adapter_config=None) -> str:
    """The prose of the card, in Markdown."""
    model_type = config.get("model_type", "?")
    shape = ", ".join(
        f"{config[k]} {label}"
        for k, label in (("num_hidden_layers", "layers"), ("n_layer", "layers"), ("num_attention_heads", "heads"),
                         ("n_head", "heads"), ("hidden_size", "wide"), ("n_embd", "wide"),
                         ("max_position_embeddings", "token context"), ("n_positions", "token context"),
                         ("vocab_size", "token vocabulary"))
        if k in config
    )
    lang_text = " and ".join(LANGUAGE_NAMES.get(c, c).capitalize() for c in languages) or "text"
    origin = f"fine-tuned from `{base_model}`" if base_model else "trained from scratch"
    if run_args is None:
        origin = "made"  # no run_args.json: not a train_clm.py folder, so say nothing about how
    local_base = ((run_args or {}).get("ModelArguments") or {}).get("model_name_or_path")
    if local_base and not base_model:
        origin = f"fine-tuned from the local checkpoint `{local_base}`"
    lora = _lora_settings(run_args)
    if lora:
        targets = ", ".join(lora["lora_target_modules"] or []) or "peft's default modules"
        how = (f"with LoRA (rank {lora['lora_r']}, alpha {lora['lora_alpha']}, dropout {lora['lora_dropout']}, "
               f"on {targets})")  # fmt: skip
        origin += f" {how}" + ("" if adapter_config else ", the adapter merged into the base weights")
    code_files = [p.name for p in remote_code_files(model_dir)]
    prompt = next(iter(((run_args or {}).get("RunArguments") or {}).get("sample_prompts") or []), "Однажды")
    what = (f"A LoRA adapter ({_format_count(_count_parameters(model_dir))} parameters) for the causal language "
            f"model `{base_model or (adapter_config or {}).get('base_model_name_or_path')}`, for {lang_text}"
            if adapter_config else
            f"A {_format_count(_count_parameters(model_dir))}-parameter `{model_type}` causal language model for "
            f"{lang_text} ({shape})")  # fmt: skip
    lines = [f"# {repo_id.split('/')[-1]}", "", f"{what}, {origin} with the RoPE-GPT project.", "", "## Use it", ""]
    if adapter_config:
        lines += [
            "With `peft` installed (`pip install peft`), transformers loads the base model and applies the adapter:",
            "",
            "```python",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            f'model = AutoModelForCausalLM.from_pretrained("{repo_id}")',
            f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")',
            f"ids = tokenizer({json.dumps(prompt, ensure_ascii=False)}, return_tensors=\"pt\").input_ids",
            "print(tokenizer.decode(model.generate(ids, max_new_tokens=60, do_sample=True, top_p=0.95)[0]))",
            "```",
        ]
    else:
        lines += [
            "```python",
            "from transformers import pipeline",
            "",
            f'generator = pipeline("text-generation", model="{repo_id}", trust_remote_code=True)',
            f"out = generator({json.dumps(prompt, ensure_ascii=False)}, max_new_tokens=60, do_sample=True, top_p=0.95)",
            'print(out[0]["generated_text"])',
            "```",
            "",
            "`trust_remote_code=True` runs the model code shipped in this repository"
            + (f" (`{'`, `'.join(code_files)}`)." if code_files else " (none is needed for this model type)."),
        ]
    lines += [
        f"From the project: `python generate.py --model {repo_id} --prompt {json.dumps(prompt, ensure_ascii=False)}`.",
        "",
        "## Evaluation",
        "",
    ]
    keys = ("eval_perplexity", "eval_bits_per_byte", "eval_loss", "global_step", "world_size")
    rows = [(k, metrics[k]) for k in keys if k in metrics]
    if rows:
        lines += ["On the validation split:", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in rows]
        lines += ["", "Bits per byte = summed NLL (nats) / ln 2 / UTF-8 bytes of the text: comparable across "
                  "tokenizers, unlike perplexity."]
    else:
        lines += ["No metrics.json was found in the training folder."]
    lines += ["", "## Training recipe", ""]
    if run_args:
        lines += _recipe_lines(run_args)
    else:
        lines += ["No run_args.json was found in the training folder."]
    lines += ["", "## Data", ""]
    lines += _manifest_lines(manifest) if manifest else ["No corpus manifest was found."]
    step, samples = _last_samples(model_dir)
    if samples:
        lines += ["", "## Samples", "", f"Sampled at step {step} (temperature and prompts as in the recipe):", ""]
        lines += ["```text", *samples, "```"]
    return "\n".join(lines) + "\n"


def _recipe_lines(run_args: dict) -> list[str]:
    """The arguments that define the run, as a Markdown list; all of them are in training_args.json."""
    picks = {
        "ModelArguments": ("model_type", "preset", "config_overrides", "model_name_or_path", "attn_implementation"),
        "DataArguments": (
            "source", "inputs", "dataset_dir", "tokenizer_kind", "vocab_size", "block_size", "validation_split",
        ),
        "FinetuneArguments": ("wrap_documents", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules",
                              "merge_lora"),
        "TrainingArguments": (
            "max_steps", "num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps",
            "learning_rate", "lr_scheduler_type", "warmup_steps", "weight_decay", "max_grad_norm", "bf16", "fp16",
            "seed",
        ),
    }
    lines = []
    if run_args.get("recipe"):
        lines.append(f"Recipe `{Path(run_args['recipe']).name}`, resolved arguments:")
        lines.append("")
    for group, keys in picks.items():
        values = run_args.get(group) or {}
        for key in keys:
            value = values.get(key)
            if group == "FinetuneArguments" and key != "wrap_documents" and not values.get("lora_r"):
                continue  # every weight was trained: LoRA settings mean nothing
            if value not in (None, [], ""):
                lines.append(f"- `{key}`: `{redact(value, key)}`")
    lines += ["", "Every argument is in `training_args.json`; `python train_clm.py --help` explains each."]
    return lines


def _manifest_lines(manifest: dict) -> list[str]:
    """A summary of the corpus manifest (corpora/builder.py's format); the whole is in corpus_manifest.json."""
    args = manifest.get("arguments") or {}
    lines = [f"- source: `{args.get('source', '?')}`"]
    for record in (manifest.get("sources") or [])[:10]:
        if isinstance(record, dict):
            lines.append(f"  - `{record.get('location', '?')}`: {record.get('rows', '?')} rows")
    for split, stats in (manifest.get("splits") or {}).items():
        if isinstance(stats, dict):
            lines.append(
                f"- {split}: {stats.get('documents', '?')} documents, {stats.get('characters', '?')} characters, "
                f"{stats.get('utf8_bytes', '?')} UTF-8 bytes"
            )
    for key in ("duplicates_removed", "kept_out_of_validation_as_near_duplicates", "too_short_dropped"):
        if key in manifest:
            lines.append(f"- {key.replace('_', ' ')}: {manifest[key]}")
    lines += ["", "The full manifest (sources, checksums, cleaning statistics) is in `corpus_manifest.json`."]
    return lines


def write_model_card(
    model_dir: str | Path,
    repo_id: str,
    path: str | Path,
    *,
    languages: list[str] | None = None,
    license: str = DEFAULT_LICENSE,
    base_model: str | None = None,
) -> Path:
    """Write `build_model_card(...)` to `path` (usually EXPORT_DIR/README.md); returns the path."""
    path = Path(path)
    build_model_card(model_dir, repo_id, languages=languages, license=license, base_model=base_model).save(path)
    return path


# ---------------------------------------------------------------- export, verify, push


def _place(src: Path, dst: Path, link: bool) -> None:
    """Hard-link (weights can be gigabytes) or, when not allowed or across file systems, copy."""
    if link:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    shutil.copy2(src, dst)


def export_model(
    model_dir: str | Path,
    export_dir: str | Path,
    repo_id: str,
    *,
    languages: list[str] | None = None,
    license: str = DEFAULT_LICENSE,
    base_model: str | None = None,
    link: bool = False,
) -> Path:
    """Write into `export_dir` (new or empty) exactly the files to upload for `model_dir`; returns it.

    The allowlist is in the module docstring; anything else in the training folder stays behind. A PEFT
    adapter folder exports its adapter files instead of a model; `base_model` (a Hub id) replaces the local
    path its adapter_config.json names, so that the adapter loads anywhere. Files are copies, so editing an
    export (a --dry_run folder) never edits the trained model; `link=True` hard-links them instead, for a
    temporary export that is only read (push_model's).
    """
    model_dir = check_inputs(model_dir, repo_id)
    export_dir = Path(export_dir)
    if export_dir.exists() and (not export_dir.is_dir() or any(export_dir.iterdir())):
        raise PushError(f"export folder {export_dir} exists and is not empty: remove it or give a new one")
    export_dir.mkdir(parents=True, exist_ok=True)
    run_args = _read_json(model_dir / "run_args.json")

    adapter = is_adapter(model_dir)
    if adapter:
        files = [model_dir / n for n in ADAPTER_FILES[1:] + REPORT_FILES]
        adapter_config = _read_json(model_dir / "adapter_config.json")
        if base_model:
            adapter_config["base_model_name_or_path"] = base_model
        (export_dir / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2) + "\n", encoding="utf-8")
    else:
        files = [*model_dir.glob("*.safetensors"), *(model_dir / n for n in MODEL_FILES + REPORT_FILES)]
        files += remote_code_files(model_dir)
    tokenizer_dir = _tokenizer_dir(model_dir)
    files += [tokenizer_dir / n for n in TOKENIZER_FILES]
    for src in files:
        if src.is_file():
            _place(src, export_dir / src.name, link)
    manifest = find_manifest(model_dir, run_args)
    # Both hold arguments as given (a Hub dataset's token may be among them): redacted like the recipe.
    manifest_data = _read_json(manifest) if manifest else None
    for data, name in ((manifest_data, "corpus_manifest.json"), (run_args, "training_args.json")):
        if data is not None:
            text = json.dumps(redact(data), indent=2, ensure_ascii=False) + "\n"
            (export_dir / name).write_text(text, encoding="utf-8")
    write_model_card(model_dir, repo_id, export_dir / "README.md", languages=languages, license=license,
                     base_model=base_model)
    return export_dir


_VERIFY_CODE = """
import json, sys
from transformers import pipeline
export_dir, prompt, max_new_tokens, project = sys.argv[1:5]
generator = pipeline("text-generation", model=export_dir, trust_remote_code=True)
out = generator(prompt, max_new_tokens=int(max_new_tokens), do_sample=False)
def ours(name, module):  # this project's own code, not its virtual environment or the remote-code cache
    path = getattr(module, "__file__", None) or ""
    return (path.startswith(project) and not path.startswith((sys.prefix, sys.base_prefix))
            and not name.startswith("transformers_modules"))
from_project = sorted(name for name, module in list(sys.modules.items()) if ours(name, module))
print(json.dumps({"model_class": type(generator.model).__module__ + "." + type(generator.model).__name__,
                  "text": out[0]["generated_text"], "from_project": from_project}, ensure_ascii=False))
"""
PROJECT_ROOT = Path(__file__).resolve().parent


def verify_export(export_dir: str | Path, prompt: str, max_new_tokens: int = 8, timeout: float = 300) -> dict:
    """Load `export_dir` with `pipeline("text-generation", trust_remote_code=True)` in a fresh offline process
    and continue `prompt` greedily; returns {"model_class", "text", "from_project"}, or raises PushError.

    The child runs in a temporary working directory without PYTHONPATH, so this project (whose `modeling`
    package registers the same model) is not importable there and only the exported remote code can serve;
    the child lists any module it did load from this project, and any at all is an error.
    """
    export_dir = Path(export_dir).resolve()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    with tempfile.TemporaryDirectory(prefix="ropegpt-verify-") as cwd:
        proc = subprocess.run(
            [sys.executable, "-c", _VERIFY_CODE, str(export_dir), prompt, str(max_new_tokens), str(PROJECT_ROOT) + os.sep],
            cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise PushError(f"the export in {export_dir} does not load in a fresh process: {tail}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["from_project"]:
        names = ", ".join(result["from_project"][:5])
        raise PushError(f"the load check imported this project's own modules ({names}), so it proves nothing")
    return result


def _verify_prompt(model_dir: Path) -> str:
    """A prompt in the model's language: the first training sample prompt, else a Russian one."""
    run_args = _read_json(model_dir / "run_args.json") or {}
    return next(iter((run_args.get("RunArguments") or {}).get("sample_prompts") or []), "Однажды")


def resolve_token(token: str | None = None) -> str:
    """The token to use: the argument, else HF_TOKEN or the login cache (`huggingface_hub.get_token`)."""
    token = token or get_token()
    if not token:
        raise PushError("no Hugging Face token: set HF_TOKEN or run `hf auth login` (nothing was uploaded)")
    return token


def _after_failure(status: int | None) -> str:
    """What a failed upload means for the user: a Hub commit is atomic, so nothing is half-uploaded."""
    if status in (401, 403):
        return "nothing was committed; check that your token has write access to this repository"
    if status is not None and 400 <= status < 500 and status not in (408, 429):
        return "nothing was committed (see the Hub's message above)"
    return "nothing was committed, so running the same command again is safe"


def push_model(
    model_dir: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    token: str | None = None,
    languages: list[str] | None = None,
    license: str = DEFAULT_LICENSE,
    base_model: str | None = None,
) -> str:
    """Export `model_dir` and upload it to `repo_id` in one commit (on branch `revision` if given); returns the URL.

    Everything that can be checked locally (folder, repo id, token, export) is checked before the first
    request. The repo is created if missing (`private` applies then); a new `revision` branches from main.
    Raises PushError (nothing sent) or UploadError (the Hub failed; the commit is atomic, so retrying is safe).
    """
    # huggingface_hub's HTTP client raises its own base error (httpx2.HTTPError in 2.4) for transport
    # failures; taken from huggingface_hub.errors so we don't name the client package ourselves.
    from huggingface_hub.errors import HfHubHTTPError, HTTPError

    model_dir = check_inputs(model_dir, repo_id)
    token = resolve_token(token)
    with tempfile.TemporaryDirectory(prefix="ropegpt-export-") as tmp:
        export_dir = export_model(model_dir, Path(tmp) / "export", repo_id, languages=languages, license=license,
                                  base_model=base_model, link=True)
        api = HfApi(token=token)
        try:
            repo_url = api.create_repo(repo_id, private=private, exist_ok=True)
            if revision:
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            api.upload_folder(
                repo_id=repo_id,
                folder_path=export_dir,
                revision=revision,
                commit_message=commit_message or f"Upload {model_dir.name} with push_to_hub.py",
            )
        except HfHubHTTPError as e:
            response = getattr(e, "response", None)
            status = getattr(response, "status_code", None)
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UploadError(f"upload to {repo_id} failed (HTTP {status}: {first}); {_after_failure(status)}") from e
        except (HTTPError, OSError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise UploadError(
                f"upload to {repo_id} failed ({type(e).__name__}: {first}); {_after_failure(None)}"
            ) from e
    url = str(repo_url).rstrip("/")
    return f"{url}/tree/{revision}" if revision else url


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, then dry-run (export + load check) or push; returns the exit code."""
    (args,) = HfArgumentParser(PushArguments).parse_args_into_dataclasses(args=argv)
    try:
        if args.dry_run:
            export_dir = export_model(
                args.model_dir, args.dry_run, args.repo_id, languages=args.language, license=args.license,
                base_model=args.base_model,
            )
            print(f"exported {len(list(export_dir.iterdir()))} files to {export_dir}: "
                  + ", ".join(sorted(p.name for p in export_dir.iterdir())))
            result = verify_export(export_dir, _verify_prompt(Path(args.model_dir)))
            print(
                f"dry run OK: loaded {result['model_class']} in a fresh offline process; "
                f"greedy sample: {result['text']!r}"
            )
            return 0
        url = push_model(
            args.model_dir, args.repo_id, private=args.private, revision=args.revision,
            commit_message=args.commit_message, languages=args.language, license=args.license,
            base_model=args.base_model,
        )
    except PushError as e:
        print(f"push_to_hub.py: error: {e}", file=sys.stderr)
        return 2
    except UploadError as e:
        print(f"push_to_hub.py: error: {e}", file=sys.stderr)
        return 1
    print(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
