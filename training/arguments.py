"""Arguments shared by `train_clm.py` and `finetune.py`, and recipe files (YAML/JSON) under them.

A run is described by four dataclasses parsed by `HfArgumentParser`: `ModelArguments`, `DataArguments`,
`RunArguments` and transformers' own `TrainingArguments`. A recipe file gives values for any of their fields;
the command line overrides it:

    python train_clm.py recipes/tolstoy_tiny.yaml --max_steps 50 --output_dir runs/quick
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from transformers import AutoTokenizer, HfArgumentParser, TrainingArguments

from .checkpoints import is_complete_checkpoint
from .errors import ArgumentsError

ROOT = Path(__file__).resolve().parents[1]
RECIPES_DIR = ROOT / "recipes"
DEFAULT_RECIPE = RECIPES_DIR / "tolstoy_tiny.yaml"

# Where our defaults differ from TrainingArguments' (set under every recipe, so a command line alone
# also gets a sensible run): cosine decay with warm-up, regular evaluation that keeps the best model,
# TensorBoard logs, and NaN losses reported instead of averaged away.
TRAINING_DEFAULTS: dict[str, Any] = {
    "output_dir": "runs/tolstoy_tiny",
    "lr_scheduler_type": "cosine",
    "warmup_steps": 0.05,
    "weight_decay": 0.1,
    "adam_beta2": 0.95,
    "max_grad_norm": 1.0,
    "eval_strategy": "steps",
    "eval_steps": 200,
    "save_strategy": "steps",
    "save_steps": 200,
    "save_total_limit": 2,
    "load_best_model_at_end": True,
    "metric_for_best_model": "eval_loss",
    "logging_steps": 20,
    "report_to": ["tensorboard"],
    "logging_nan_inf_filter": False,
    "ddp_find_unused_parameters": False,
}


@dataclass
class ModelArguments:
    """Which model to build (train_clm.py) or load (finetune.py)."""

    model_type: str = field(
        default="ropegpt",
        metadata={"help": "ropegpt, lstm_lm, gpt2 or any transformers AutoConfig model type, built from scratch."},
    )
    preset: str | None = field(
        default=None,
        metadata={"help": "Named size of a ropegpt model (tiny, small, medium, base); default: the config's defaults."},
    )
    config_overrides: str | None = field(
        default=None,
        metadata={"help": "Comma-separated config fields, e.g. 'num_hidden_layers=4,hidden_size=256,bias=False'."},
    )
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "A pretrained checkpoint (folder or Hub id) to fine-tune (finetune.py)."},
    )
    attn_implementation: str | None = field(
        default=None,
        metadata={"help": "sdpa (default), eager or flash_attention_2 (needs the flash-attn package)."},
    )


@dataclass
class DataArguments:
    """Where the text comes from and how it becomes blocks of tokens."""

    dataset_dir: str | None = field(
        default=None,
        metadata={"help": "A prepared DatasetDict folder (from `python -m corpora`)."},
    )
    source: str | None = field(
        default=None,
        metadata={"help": "Prepare a corpus on the fly: tolstoy, libru, leipzig, text or hub (as `python -m corpora`)."},
    )
    inputs: list[str] = field(
        default_factory=list,
        metadata={"help": "Inputs for --source: URLs, files, folders, archives or a Hub dataset name."},
    )
    text_column: str = field(default="text", metadata={"help": "Column holding the text (hub datasets)."})
    validation_split: float = field(
        default=0.05, metadata={"help": "Share of documents held out for validation when preparing a corpus."}
    )
    corpus_cache_dir: str | None = field(
        default=None, metadata={"help": "Download cache for --source tolstoy/libru/leipzig (default: ~/.cache/ropegpt)."}
    )
    base_url: str | None = field(
        default=None, metadata={"help": "Base URL of the az.lib.ru mirror for --source tolstoy."}
    )
    snapshot_fallback: bool = field(
        default=True,
        metadata={"help": "--source tolstoy without network: use the snapshot in corpora/snapshot/ (false: an error)."},
    )
    tokenizer_dir: str | None = field(
        default=None,
        metadata={"help": "A saved tokenizer folder; without it one is trained and saved into output_dir."},
    )
    tokenizer_kind: str = field(default="bpe", metadata={"help": "Tokenizer to train: bpe, char or word."})
    vocab_size: int = field(default=8192, metadata={"help": "Vocabulary size of the tokenizer to train."})
    tokenizer_sample_bytes: int | None = field(
        default=None,
        metadata={"help": "Train the tokenizer on a seeded sample of about this many UTF-8 bytes of the train split "
                  "(large corpora); default: all of it."},
    )
    block_size: int = field(default=256, metadata={"help": "Tokens per training block (at most the model's context)."})
    max_train_blocks: int | None = field(
        default=None, metadata={"help": "Use only this many training blocks (quick experiments)."}
    )
    max_eval_blocks: int | None = field(
        default=None, metadata={"help": "Evaluate on only the first this many validation blocks (faster evaluations)."}
    )
    num_proc: int | None = field(default=None, metadata={"help": "Processes for tokenization (datasets.map)."})


@dataclass
class RunArguments:
    """The optimizer beyond TrainingArguments' AdamW, samples and early stopping (Hub: --push_to_hub, --hub_model_id)."""

    optimizer: str = field(
        default="adamw",
        metadata={
            "help": "adamw: Trainer's AdamW for every parameter. muon: torch.optim.Muon for the 2-D hidden matrices "
            "(attention and MLP projections) and AdamW for embeddings, head, norms and biases (training/optim.py).",
            "choices": ["adamw", "muon"],
        },
    )
    muon_learning_rate: float | None = field(
        default=None,
        metadata={"help": "Peak learning rate of the Muon groups (on AdamW's scale); default: --learning_rate."},
    )
    muon_momentum: float = field(default=0.95, metadata={"help": "Muon's Nesterov momentum."})
    embedding_learning_rate: float | None = field(
        default=None, metadata={"help": "Peak learning rate of the token embeddings; default: --learning_rate."}
    )
    head_learning_rate: float | None = field(
        default=None,
        metadata={"help": "Peak learning rate of an untied output head (tie_word_embeddings=false); default: "
                  "--learning_rate."},  # fmt: skip
    )
    document_masking: bool = field(
        default=False,
        metadata={
            "help": "Keep the documents packed into one block from attending to each other: position_ids restart "
            "after every <eos> (for models that read packed position_ids: ropegpt, llama and its kin; not gpt2)."
        },
    )

    sample_prompts: list[str] = field(
        default_factory=lambda: ["Князь Андрей", "Наташа", "Война"],
        metadata={"help": "Prompts continued at each evaluation; the samples go to samples.txt and TensorBoard."},
    )
    sample_max_new_tokens: int = field(default=48, metadata={"help": "Tokens to generate per sample."})
    sample_temperature: float = field(default=0.8, metadata={"help": "Sampling temperature for the samples."})
    early_stopping_patience: int | None = field(
        default=None, metadata={"help": "Stop after this many evaluations without improvement."}
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Start over in an --output_dir that holds an earlier run (its checkpoints and model are "
                  "removed; corpus/ and tokenizer/ are kept). Without it such a folder is refused."},
    )


def _dataclass_fields(types) -> set[str]:
    return {f.name for t in types for f in dataclasses.fields(t)}


def load_recipe(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON recipe into a dict, with a one-line error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ArgumentsError(f"recipe {path} does not exist: pick one from {RECIPES_DIR} or write your own")
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        raise ArgumentsError(f"recipe {path} is not valid {path.suffix[1:].upper()}: {str(e).splitlines()[0]}")
    if not isinstance(data, dict):
        raise ArgumentsError(f"recipe {path} must be a mapping of argument names to values")
    return data


def dict_to_argv(values: dict[str, Any]) -> list[str]:
    """Turn {name: value} into command-line words that argparse reads back to the same values."""
    argv: list[str] = []
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            if value:
                argv += [f"--{key}", *map(str, value)]
        elif isinstance(value, dict):
            argv += [f"--{key}", json.dumps(value)]
        else:
            argv += [f"--{key}", str(value)]
    return argv


def parse_arguments(
    argv: list[str] | None = None,
    types: tuple = (ModelArguments, DataArguments, RunArguments, TrainingArguments),
    default_recipe: Path | None = DEFAULT_RECIPE,
    defaults: dict[str, Any] | None = None,
    adjust_default_recipe: bool = True,
):
    """Parse `[RECIPE.yaml|json] [--field value ...]` into the dataclasses `types`.

    Values come, weakest first, from `defaults` (TRAINING_DEFAULTS), the recipe (or `default_recipe` when
    no recipe file is named: options alone adjust it, `train_clm.py --max_steps 100`), then the command line.
    Returns the dataclass instances and the recipe path (or None).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    recipe_path = None
    if argv and not argv[0].startswith("-"):
        recipe_path = Path(argv.pop(0))
    elif default_recipe is not None and (not argv or adjust_default_recipe):
        recipe_path = default_recipe
    recipe = load_recipe(recipe_path) if recipe_path else {}
    if recipe_path is default_recipe and argv:
        recipe = _without_replaced_keys(recipe, argv)

    known = _dataclass_fields(types)
    unknown = sorted(set(recipe) - known)
    if unknown:
        raise ArgumentsError(f"recipe {recipe_path} has unknown keys {unknown}: see `python train_clm.py --help`")
    merged = {**(TRAINING_DEFAULTS if defaults is None else defaults), **recipe}
    merged = {k: v for k, v in merged.items() if k in known}
    words = adapt_to_cpu(dict_to_argv(merged) + argv)
    parser = HfArgumentParser(types)
    try:
        parsed = parser.parse_args_into_dataclasses(args=words, return_remaining_strings=True, look_for_args_file=False)
    except ValueError as e:  # TrainingArguments' own checks (e.g. save_steps vs eval_steps): a multi-line message
        raise ArgumentsError(" ".join(str(e).split())) from None
    *instances, remaining = parsed
    data_args = next((i for i in instances if isinstance(i, DataArguments)), None)
    if remaining and data_args is not None and not any(w.startswith("-") for w in remaining):
        # `--source text PATH...` as with `python -m corpora`: bare words are the inputs.
        data_args.inputs = list(data_args.inputs) + remaining
    elif remaining:
        raise ArgumentsError(f"unknown arguments {remaining}: see `python train_clm.py --help`")
    return (*instances, recipe_path)


# A choice made on the command line that makes some of the default recipe's keys meaningless: another model
# type has no `tiny` preset, and a dataset folder of your own replaces the recipe's download.
_REPLACES = {
    "model_type": ("preset", "config_overrides"),
    "dataset_dir": ("source", "inputs", "base_url"),
    "source": ("inputs", "base_url", "dataset_dir"),
}


def _without_replaced_keys(recipe: dict[str, Any], argv: list[str]) -> dict[str, Any]:
    """The default recipe without the keys that options given alone replace (see `_REPLACES`)."""
    given = {word[2:].split("=", 1)[0] for word in argv if word.startswith("--")}
    dropped = {key for flag, keys in _REPLACES.items() if flag in given for key in keys}
    return {k: v for k, v in recipe.items() if k not in dropped}


def _flag_value(words: list[str], flag: str) -> bool:
    """The value the last `--flag [value]` in `words` gives a boolean argument (argparse's reading)."""
    value = False
    for i, word in enumerate(words):
        if word == f"--{flag}":
            nxt = words[i + 1] if i + 1 < len(words) else None
            value = True if nxt is None or nxt.startswith("--") else nxt.lower() in {"true", "1", "yes", "y"}
    return value


def adapt_to_cpu(words: list[str]) -> list[str]:
    """`words` adjusted for a machine without a GPU: fp16/bf16 off (with a warning), CPU ranks joined, no pinning.

    Trainer silently trains in float32 when --fp16 is given on a CPU, and refuses --bf16 there with an
    error that names neither the flag's origin nor a fix. Turning them off here, loudly, lets
    one recipe serve a laptop check and the GPU run it was written for. And under `accelerate launch` with
    several CPU processes, Trainer only joins them into one gloo world when told `use_cpu`; without it each
    process would silently train alone on all the data.
    """
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        return words
    # Pinned memory only speeds up copies to a GPU; without one every DataLoader warns about it.
    words = words + ["--dataloader_pin_memory", "false"]
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        words = words + ["--use_cpu", "true"]
    for flag in ("fp16", "bf16"):
        if _flag_value(words, flag):
            warnings.warn(
                f"--{flag} needs a GPU and this machine has none: training in float32 instead "
                f"(drop --{flag}, or run on a GPU with an accelerate config)",
                stacklevel=3,
            )
            words = words + [f"--{flag}", "false"]
    return words


def parse_config_overrides(text: str | None) -> dict[str, Any]:
    """'a=1,b=true,c=gelu' -> {'a': 1, 'b': True, 'c': 'gelu'} (numbers, booleans, None; else strings)."""
    if not text:
        return {}
    out: dict[str, Any] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        if "=" not in item:
            raise ArgumentsError(f"--config_overrides item {item!r} is not key=value (e.g. 'num_hidden_layers=4')")
        key, raw = (s.strip() for s in item.split("=", 1))
        lowered = raw.lower()
        if lowered in {"true", "false"}:
            value: Any = lowered == "true"
        elif lowered in {"none", "null"}:
            value = None
        else:
            try:
                value = int(raw)
            except ValueError:
                try:
                    value = float(raw)
                except ValueError:
                    value = raw
        out[key] = value
    return out


# model types whose attention ignores packed position_ids (GPT-2's learned positions, the LSTM)
NO_PACKED_POSITIONS = ("gpt2", "lstm_lm")


def validate_arguments(data_args: DataArguments, training_args: TrainingArguments,
                       run_args: RunArguments | None = None, model_type: str | None = None) -> None:  # fmt: skip
    """One-line errors for arguments that would fail (or waste hours) later; reads files, writes nothing.

    Called before any work starts (corpus, tokenizer, model), so a typo costs a second, not a trained tokenizer.
    """
    if run_args is not None:
        validate_run_arguments(run_args, model_type)
    t = training_args
    if t.max_steps == 0 or t.max_steps < -1:
        raise ArgumentsError(
            f"--max_steps {t.max_steps}: give a positive number of steps (or -1 to train --num_train_epochs epochs)"
        )
    if t.max_steps == -1 and t.num_train_epochs <= 0:
        raise ArgumentsError(f"--num_train_epochs {t.num_train_epochs}: give a positive number (or --max_steps N)")
    if not t.learning_rate > 0:
        raise ArgumentsError(f"--learning_rate {t.learning_rate}: give a positive learning rate, e.g. 3e-4")
    for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
        if getattr(t, name) < 1:
            raise ArgumentsError(f"--{name} {getattr(t, name)}: give at least 1")
    decay = (t.lr_scheduler_kwargs or {}).get("num_decay_steps")
    if t.lr_scheduler_type == "warmup_stable_decay" and (isinstance(decay, bool) or not isinstance(decay, (int, float))
                                                          or decay <= 0):  # fmt: skip
        raise ArgumentsError(
            f"--lr_scheduler_type warmup_stable_decay needs a positive num_decay_steps in --lr_scheduler_kwargs "
            f"(got {decay!r}): e.g. '{{\"num_decay_steps\": 0.4}}', a share of the run below 1 or a step count"
        )
    if data_args.block_size < 2:
        raise ArgumentsError(f"--block_size {data_args.block_size}: give at least 2 tokens (a token and its next)")
    if not data_args.tokenizer_dir and data_args.vocab_size < 1:
        raise ArgumentsError(f"--vocab_size {data_args.vocab_size}: give a positive vocabulary size, e.g. 8192")
    if data_args.source and not 0 < data_args.validation_split < 1:
        raise ArgumentsError(
            f"--validation_split {data_args.validation_split}: give a share between 0 and 1, e.g. 0.05"
        )
    if data_args.dataset_dir and not Path(data_args.dataset_dir).is_dir():
        raise ArgumentsError(
            f"--dataset_dir {data_args.dataset_dir} does not exist: prepare it with "
            f"`python -m corpora ... --output_dir {data_args.dataset_dir}`"
        )
    if t.resume_from_checkpoint and t.resume_from_checkpoint != "auto":
        if not is_complete_checkpoint(Path(t.resume_from_checkpoint)):
            raise ArgumentsError(
                f"--resume_from_checkpoint {t.resume_from_checkpoint} is not a complete checkpoint folder: "
                "use 'auto' or another checkpoint"
            )
    if data_args.tokenizer_dir:
        load_tokenizer_dir(data_args.tokenizer_dir)


def validate_run_arguments(run_args: RunArguments, model_type: str | None) -> None:
    """The optimizer's rates and --document_masking against the model type (None: not known yet)."""
    for name in ("muon_learning_rate", "embedding_learning_rate", "head_learning_rate"):
        value = getattr(run_args, name)
        if value is not None and not value > 0:
            raise ArgumentsError(f"--{name} {value}: give a positive learning rate, or leave it out")
    if not 0 <= run_args.muon_momentum < 1:
        raise ArgumentsError(f"--muon_momentum {run_args.muon_momentum}: give a momentum in [0, 1), e.g. 0.9")
    if run_args.document_masking and model_type in NO_PACKED_POSITIONS:
        raise ArgumentsError(
            f"--document_masking needs a model whose attention reads packed position_ids (ropegpt, llama, ...); "
            f"{model_type} does not: drop --document_masking"
        )


def load_tokenizer_dir(path: str):
    """The tokenizer saved in `path`, or a one-line error when the folder holds none."""
    folder = Path(path)
    if not folder.is_dir():
        raise ArgumentsError(f"--tokenizer_dir {path} does not exist: give a folder written by save_pretrained")
    if not any((folder / n).is_file() for n in ("tokenizer.json", "tokenizer_config.json", "vocab.json")):
        raise ArgumentsError(
            f"--tokenizer_dir {path} holds no tokenizer (no tokenizer.json): give a folder written by "
            "save_pretrained, or leave it out to train one"
        )
    try:
        return AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError, TypeError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ArgumentsError(f"--tokenizer_dir {path} could not be loaded ({first})") from None


def describe_args(*instances) -> dict:
    """All resolved arguments as one JSON-able dict, per dataclass (what run_args.json holds)."""
    out = {}
    for inst in instances:
        out[type(inst).__name__] = inst.to_dict() if hasattr(inst, "to_dict") else dataclasses.asdict(inst)
    return out
