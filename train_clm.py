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

from transformers import set_seed

from training.arguments import parse_arguments, validate_arguments
from training.models import build_config, build_model, check_model_arguments
from training.outputs import claimed_output_dir, disk_full_message
from training.run import (
    USER_ERRORS,
    RunInterrupted,
    build_trainer,
    describe_args,
    error_line,
    interrupted_lines,
    load_or_train_tokenizer,
    load_text,
    make_blocks,
    push_at_end,
    report_end,
    setup_process,
    take_over_hub_push,
    train_and_save,
)

logger = logging.getLogger("train_clm")


def main(argv: list[str] | None = None) -> int:
    """Run one training from a recipe and/or command-line arguments; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    training_args = None
    try:
        model_args, data_args, run_args, training_args, recipe = parse_arguments(argv)
        # every argument before any work: nothing written yet
        validate_arguments(data_args, training_args, run_args, model_args.model_type)
        check_model_arguments(model_args, data_args.block_size)
        setup_process(training_args)
        hub_target = take_over_hub_push(training_args)
        with claimed_output_dir(training_args, run_args.overwrite_output_dir) as finished:
            if finished is not None:
                print(f"already complete at step {finished}: model in {training_args.output_dir} (nothing changed)")
                return 0
            logger.info("recipe: %s", recipe or "(none: command line only)")
            set_seed(training_args.seed)
            dataset = load_text(data_args, training_args)
            tokenizer = load_or_train_tokenizer(data_args, dataset, training_args)
            config = build_config(model_args, tokenizer, data_args.block_size)
            model = build_model(config)
            blocks = make_blocks(dataset, tokenizer, data_args, training_args)
            trainer = build_trainer(model, tokenizer, blocks, training_args, run_args)
            arguments = describe_args(model_args, data_args, run_args, training_args)
            arguments["recipe"] = str(recipe) if recipe else None
            metrics = train_and_save(trainer, training_args.resume_from_checkpoint, arguments)
            url = push_at_end(trainer, hub_target)
    except USER_ERRORS as e:
        print(error_line("train_clm.py", e), file=sys.stderr)
        return 2
    except RunInterrupted as e:
        print(interrupted_lines("train_clm.py", e, argv), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:  # a second Ctrl-C, or one before training started: stop now, say so
        print(f"\ntrain_clm.py: interrupted; the newest complete checkpoint (if any) resumes with "
              "--resume_from_checkpoint auto", file=sys.stderr)
        return 130
    except Exception as e:
        line = disk_full_message(e, training_args.output_dir) if training_args is not None else None
        if line is None:
            raise
        print(f"\ntrain_clm.py: error: {line}", file=sys.stderr)
        return 2
    report_end(trainer, metrics, url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
