"""The export: exactly the files to upload, written into a folder, and the check that it loads elsewhere."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .card import DEFAULT_LICENSE, write_model_card
from .errors import PushError
from .folder import (
    ADAPTER_FILES,
    MODEL_FILES,
    REPORT_FILES,
    TOKENIZER_FILES,
    check_inputs,
    find_manifest,
    is_adapter,
    read_json,
    redact,
    remote_code_files,
    tokenizer_dir,
)

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
    run_args = read_json(model_dir / "run_args.json")

    adapter = is_adapter(model_dir)
    if adapter:
        files = [model_dir / n for n in ADAPTER_FILES[1:] + REPORT_FILES]
        adapter_config = read_json(model_dir / "adapter_config.json")
        if base_model:
            adapter_config["base_model_name_or_path"] = base_model
        (export_dir / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2) + "\n", encoding="utf-8")
    else:
        files = [*model_dir.glob("*.safetensors"), *(model_dir / n for n in MODEL_FILES + REPORT_FILES)]
        files += remote_code_files(model_dir)
    tokenizer_folder = tokenizer_dir(model_dir)
    files += [tokenizer_folder / n for n in TOKENIZER_FILES]
    for src in files:
        if src.is_file():
            _place(src, export_dir / src.name, link)
    manifest = find_manifest(model_dir, run_args)
    # Both hold arguments as given (a Hub dataset's token may be among them): redacted like the recipe.
    manifest_data = read_json(manifest) if manifest else None
    for data, name in ((manifest_data, "corpus_manifest.json"), (run_args, "training_args.json")):
        if data is not None:
            text = json.dumps(redact(data), indent=2, ensure_ascii=False) + "\n"
            (export_dir / name).write_text(text, encoding="utf-8")
    write_model_card(model_dir, repo_id, export_dir / "README.md", languages=languages, license=license,
                     base_model=base_model)
    return export_dir


PROJECT_ROOT = Path(__file__).resolve().parents[1]
LOAD_CHECK = Path(__file__).with_name("load_check.py")


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
            [sys.executable, "-c", LOAD_CHECK.read_text(encoding="utf-8"), str(export_dir), prompt,
             str(max_new_tokens), str(PROJECT_ROOT) + os.sep],
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


def verify_prompt(model_dir: Path) -> str:
    """A prompt in the model's language: the first training sample prompt, else a Russian one."""
    run_args = read_json(model_dir / "run_args.json") or {}
    return next(iter((run_args.get("RunArguments") or {}).get("sample_prompts") or []), "Однажды")


