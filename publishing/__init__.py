"""Publishing a trained model folder to the Hugging Face Hub: model card, export, load check, upload.

    from publishing import export_model, push_model, verify_export
    export_model("runs/tolstoy_tiny", "/tmp/export", "user/tolstoy-ropegpt-tiny")   # what would go up
    push_model("runs/tolstoy_tiny", "user/tolstoy-ropegpt-tiny")                      # -> the repository URL

What goes up is an allowlist, written first into an export folder (`export_model`): weights (safetensors
only), config.json, generation_config.json, the model's remote code, tokenizer files, metrics.json,
samples.txt, the corpus manifest as corpus_manifest.json, the resolved arguments as training_args.json
(tokens redacted) and README.md (the model card, `build_model_card`). Never pickles (training_args.bin),
checkpoints, optimizer states, TensorBoard logs or the corpus itself. A LoRA adapter folder (finetune.py
--lora_r N) goes up as a PEFT repository: adapter_config.json (naming `base_model` when given) and
adapter_model.safetensors instead of the model, with `library_name: peft` and `base_model` in the card.

`verify_export` loads an export with `pipeline("text-generation", trust_remote_code=True)` in a fresh
offline process whose working directory and import path exclude this project (`load_check.py`), so the
shipped remote code is what runs. `python push_to_hub.py` is the command line over these functions.
"""

from .card import DEFAULT_LICENSE, build_model_card, write_model_card
from .errors import PushError, UploadError
from .export import export_model, verify_export, verify_prompt
from .folder import check_inputs, detect_languages, is_adapter, redact, remote_code_files
from .upload import push_model, resolve_token

__all__ = [
    "DEFAULT_LICENSE", "PushError", "UploadError", "build_model_card", "check_inputs", "detect_languages",
    "export_model", "is_adapter", "push_model", "redact", "remote_code_files", "resolve_token", "verify_export",
    "verify_prompt", "write_model_card",
]
