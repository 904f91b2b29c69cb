"""Fine-tune a pretrained causal LM (ruGPT3-small by default) on Tolstoy or your own text, fully or with LoRA.

    accelerate launch finetune.py                                     # recipes/finetune_rugpt3_tolstoy.yaml
    accelerate launch --config_file accelerate_configs/v100_fp16.yaml finetune.py \\
        --model_name_or_path ai-forever/rugpt3small_based_on_gpt2 --source text --inputs my_texts/
    python finetune.py recipes/finetune_rugpt3_tolstoy.yaml --lora_r 8 --merge_lora true

The data, evaluation (perplexity, bits per byte), sample callback, resume and output folder are train_clm.py's
(training/): only loading a pretrained model and its tokenizer, and LoRA, are new here.
"""

from __future__ import annotations

import logging
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments

import modeling  # noqa: F401  (our ropegpt checkpoints load without trust_remote_code too)
from publishing.folder import read_json
from training.arguments import (
    RECIPES_DIR,
    TRAINING_DEFAULTS,
    ArgumentsError,
    DataArguments,
    ModelArguments,
    RunArguments,
    parse_arguments,
    validate_arguments,
)
from training.data import load_text, make_blocks
from training.models import model_context_length
from training.script import ParsedRun, run_script

logger = logging.getLogger("finetune")

DEFAULT_MODEL = "ai-forever/rugpt3small_based_on_gpt2"
FINETUNE_DEFAULTS = {
    **TRAINING_DEFAULTS,
    "model_name_or_path": DEFAULT_MODEL,
    "output_dir": "runs/finetune",
    "learning_rate": 5e-5,
    "weight_decay": 0.0,
    "block_size": 512,
}
# LoRA targets for architectures peft has no default for (ours); peft knows GPT-2's (c_attn).
LORA_TARGETS = {"ropegpt": ["qkv_proj", "o_proj", "up_proj", "down_proj"]}


@dataclass
class FinetuneArguments:
    """What is special to fine-tuning: the document wrapping convention and LoRA."""

    wrap_documents: bool = field(
        default=False,
        metadata={"help": "Wrap each document as <s>…</s> (ruGPT3's convention) using the tokenizer's bos/eos."},
    )
    lora_r: int = field(default=0, metadata={"help": "LoRA rank; 0 trains all weights."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA branch."})
    lora_target_modules: list[str] = field(
        default_factory=list,
        metadata={"help": "Module names to adapt (default: peft's choice for the architecture, or ours for ropegpt)."},
    )
    merge_lora: bool = field(
        default=False, metadata={"help": "After LoRA training, also write the merged full model to output_dir/merged."}
    )


def load_pretrained(name_or_path: str):
    """Tokenizer and float32 model of a checkpoint; a missing pad token becomes the eos token.

    float32 because transformers 5 loads the checkpoint's dtype by default and fp16 weights break the
    GradScaler of fp16 mixed precision ("Attempting to unscale FP16 gradients").
    """
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=True)
        model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=torch.float32, trust_remote_code=True)
    except OSError as e:
        raise ArgumentsError(
            f"--model_name_or_path {name_or_path} could not be loaded ({str(e).splitlines()[0]}): "
            "give a local checkpoint folder or a Hub id reachable from here"
        ) from None
    if tokenizer.pad_token is None:
        # GPT-2 tokenizers have no pad token; padding positions are masked anyway, so eos serves.
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return tokenizer, model


def capped_block_size(requested: int, model) -> int:
    """--block_size, lowered to the model's context (with a log line) when it is longer."""
    context = model_context_length(model.config)
    if context is not None and requested > context:
        logger.warning("--block_size %d is longer than the model's context; using %d", requested, context)
        return context
    return requested


def wrap_documents(dataset, tokenizer):
    """Each text as bos + text + eos (ruGPT3 was trained on documents marked this way)."""
    bos, eos = tokenizer.bos_token or "", tokenizer.eos_token or ""
    return dataset.map(lambda row: {"text": f"{bos}{row['text']}{eos}"}, desc="wrapping documents")


def apply_lora(model, args: FinetuneArguments):
    """The model wrapped with LoRA adapters (peft); logs trainable and total parameters."""
    targets = args.lora_target_modules or LORA_TARGETS.get(model.config.model_type)
    config = LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    try:
        model = get_peft_model(model, config)
    except ValueError as e:
        raise ArgumentsError(f"LoRA could not be applied ({str(e).splitlines()[0]}): set --lora_target_modules")
    trainable, total = model.get_nb_trainable_parameters()
    logger.info("LoRA: %d trainable of %d parameters (%.2f%%)", trainable, total, 100 * trainable / total)
    return model


def save_merged(model, tokenizer, output_dir: str | Path) -> Path:
    """Merge the LoRA weights into the base model and save a plain checkpoint in output_dir/merged.

    The run's metrics, arguments, samples and corpus manifest go with it, so that the merged folder is an
    output like any other (push_to_hub.py writes its full card: base model, LoRA settings, metrics).
    """
    merged = model.merge_and_unload()
    output_dir = Path(output_dir)
    path = output_dir / "merged"
    merged.save_pretrained(path)
    tokenizer.save_pretrained(path)
    for name in ("metrics.json", "run_args.json", "samples.txt"):
        if (output_dir / name).is_file():
            shutil.copy2(output_dir / name, path / name)
    dataset_dir = ((read_json(output_dir / "run_args.json") or {}).get("DataArguments") or {}).get("dataset_dir")
    manifests = [output_dir / "corpus" / "manifest.json", *([Path(dataset_dir) / "manifest.json"] if dataset_dir else [])]
    manifest = next((m for m in manifests if m.is_file()), None)
    if manifest is not None:
        (path / "corpus").mkdir(exist_ok=True)
        shutil.copy2(manifest, path / "corpus" / "manifest.json")
    return path


def parse(argv: list[str]) -> ParsedRun:
    """The run's arguments from a recipe and/or the command line, every one checked before any work."""
    model_args, data_args, run_args, ft_args, training_args, recipe = parse_arguments(
        argv,
        types=(ModelArguments, DataArguments, RunArguments, FinetuneArguments, TrainingArguments),
        default_recipe=RECIPES_DIR / "finetune_rugpt3_tolstoy.yaml",
        defaults=FINETUNE_DEFAULTS,
        adjust_default_recipe=False,  # its recipe is a GPU run (fp16, 4x accumulation): only a bare command gets it
    )
    validate_arguments(data_args, training_args, run_args)
    return ParsedRun((model_args, data_args, run_args, ft_args, training_args), recipe)


def prepare(run: ParsedRun) -> tuple:
    """The pretrained model (with LoRA adapters under --lora_r), its own tokenizer, and the corpus's blocks."""
    model_args, data_args, _, ft_args, training_args = run.groups
    tokenizer, model = load_pretrained(model_args.model_name_or_path)
    data_args.block_size = capped_block_size(data_args.block_size, model)
    dataset = load_text(data_args, training_args)
    if ft_args.wrap_documents:
        dataset = wrap_documents(dataset, tokenizer)
    blocks = make_blocks(dataset, tokenizer, data_args, training_args)
    if ft_args.lora_r > 0:
        model = apply_lora(model, ft_args)
    return model, tokenizer, blocks


def merge_after_training(run: ParsedRun, trainer) -> None:
    """--merge_lora: the trained adapters merged into the base and written to output_dir/merged."""
    ft_args = run.get(FinetuneArguments)
    if ft_args.lora_r > 0 and ft_args.merge_lora and trainer.is_world_process_zero():
        merged = save_merged(trainer.model, trainer.processing_class, trainer.args.output_dir)
        logger.info("merged model written to %s", merged)


def main(argv: list[str] | None = None) -> int:
    """Fine-tune from a recipe and/or command-line arguments; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_script("finetune.py", argv, parse, prepare, after=merge_after_training)


if __name__ == "__main__":
    sys.exit(main())
