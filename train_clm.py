"""Train a causal language model from scratch: corpus → tokenizer → blocks → Trainer → a model folder.

    accelerate launch train_clm.py                                   # recipes/tolstoy_tiny.yaml (downloads Tolstoy)
    accelerate launch train_clm.py recipes/tolstoy_tiny.yaml --source text --inputs ../shared/corpora/tolstoy/txt
    accelerate launch --config_file accelerate_configs/v100_fp16.yaml train_clm.py recipes/tolstoy_small_v100.yaml
    python train_clm.py --help                                       # every argument, with help

The output folder loads anywhere with
    pipeline("text-generation", model=OUTPUT_DIR, trust_remote_code=True)
"""

from __future__ import annotations

import logging
import sys

from training.arguments import parse_arguments, validate_arguments
from training.data import load_or_train_tokenizer, load_text, make_blocks
from training.models import build_config, build_model, check_model_arguments
from training.script import ParsedRun, run_script

logger = logging.getLogger("train_clm")


def parse(argv: list[str]) -> ParsedRun:
    """The run's arguments from a recipe and/or the command line, every one checked before any work."""
    model_args, data_args, run_args, training_args, recipe = parse_arguments(argv)
    validate_arguments(data_args, training_args, run_args, model_args.model_type)
    check_model_arguments(model_args, data_args.block_size)
    return ParsedRun((model_args, data_args, run_args, training_args), recipe)


def prepare(run: ParsedRun) -> tuple:
    """A new model, with a tokenizer trained on the corpus (or --tokenizer_dir's), and the corpus's blocks."""
    model_args, data_args, _, training_args = run.groups
    logger.info("recipe: %s", run.recipe or "(none: command line only)")
    dataset = load_text(data_args, training_args)
    tokenizer = load_or_train_tokenizer(data_args, dataset, training_args)
    model = build_model(build_config(model_args, tokenizer, data_args.block_size))
    blocks = make_blocks(dataset, tokenizer, data_args, training_args)
    return model, tokenizer, blocks


def main(argv: list[str] | None = None) -> int:
    """Run one training from a recipe and/or command-line arguments; returns the process exit code."""
    return run_script("train_clm.py", list(sys.argv[1:] if argv is None else argv), parse, prepare)


if __name__ == "__main__":
    sys.exit(main())
