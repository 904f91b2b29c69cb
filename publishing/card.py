"""The model card: YAML metadata (huggingface_hub's ModelCardData with a model-index) and the prose of README.md."""

from __future__ import annotations

import json
import math
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .folder import (
    LANGUAGE_NAMES,
    count_parameters,
    detect_languages,
    find_manifest,
    format_count,
    hub_base_model,
    is_adapter,
    last_samples,
    read_json,
    redact,
    remote_code_files,
)

DEFAULT_LICENSE = "apache-2.0"


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
    adapter_config = read_json(model_dir / "adapter_config.json") if adapter else None
    config = read_json(model_dir / "config.json") or {}
    metrics = read_json(model_dir / "metrics.json") or {}
    run_args = read_json(model_dir / "run_args.json")
    manifest_path = find_manifest(model_dir, run_args)
    manifest = read_json(manifest_path) if manifest_path else None
    languages = list(languages) if languages else detect_languages(model_dir, run_args, manifest)
    model_type = config.get("model_type", "causal-lm")
    base_model = hub_base_model(run_args, base_model or (adapter_config or {}).get("base_model_name_or_path"))
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
    body = _card_body(model_dir, repo_id, config=config, metrics=metrics, run_args=run_args, manifest=manifest,
                      languages=languages, base_model=base_model, adapter_config=adapter_config)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


def _card_body(
    model_dir: Path,
    repo_id: str,
    *,
    config: dict,
    metrics: dict,
    run_args: dict | None,
    manifest: dict | None,
    languages: list[str],
    base_model: str | None,
    adapter_config: dict | None = None,
) -> str:
    """The prose of the card, in Markdown, from what `build_model_card` read out of the folder."""
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
    what = (f"A LoRA adapter ({format_count(count_parameters(model_dir))} parameters) for the causal language "
            f"model `{base_model or (adapter_config or {}).get('base_model_name_or_path')}`, for {lang_text}"
            if adapter_config else
            f"A {format_count(count_parameters(model_dir))}-parameter `{model_type}` causal language model for "
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
    step, samples = last_samples(model_dir)
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

