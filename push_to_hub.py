"""Publish a trained model folder to the Hugging Face Hub with a model card, or export it and check it loads.

    python push_to_hub.py --model_dir runs/tolstoy_tiny --repo_id user/tolstoy-ropegpt-tiny
    python push_to_hub.py --model_dir runs/tolstoy_tiny --repo_id user/tolstoy-ropegpt-tiny --private --revision v1
    python push_to_hub.py --model_dir runs/tolstoy_tiny --repo_id user/tolstoy-ropegpt-tiny --dry_run /tmp/export

The token comes from `HF_TOKEN` or the login cache (`hf auth login`); it is never printed. Afterwards anyone runs

    from transformers import pipeline
    pipeline("text-generation", model="user/tolstoy-ropegpt-tiny", trust_remote_code=True)

What goes up (an allowlist: safetensors weights, config, remote code, tokenizer, card, metrics, samples), the
card and the load check are the `publishing` package's; this file is its command line. `--dry_run EXPORT_DIR`
writes the export and loads it with the pipeline above in a fresh offline process.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from transformers import HfArgumentParser

from publishing import DEFAULT_LICENSE, PushError, UploadError, export_model, push_model, verify_export, verify_prompt


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
            result = verify_export(export_dir, verify_prompt(Path(args.model_dir)))
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
