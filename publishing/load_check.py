"""The program `verify_export` runs in a fresh offline process: load an export with the user's one line and
continue a prompt greedily.

    python -c "$(cat publishing/load_check.py)" EXPORT_DIR PROMPT MAX_NEW_TOKENS PROJECT_ROOT/

It is handed to `python -c` as text, never run as a file: a file's folder would lead the child's import path
into this project, whose `modeling` package registers the same model, and the check would prove nothing.
Prints one JSON line: the model class, the text, and the modules it loaded from PROJECT_ROOT (none, if sound).
"""

import json
import sys

from transformers import pipeline


def ours(name: str, module, project: str) -> bool:
    """This project's own code, not its virtual environment or the remote-code cache."""
    path = getattr(module, "__file__", None) or ""
    return (path.startswith(project) and not path.startswith((sys.prefix, sys.base_prefix))
            and not name.startswith("transformers_modules"))  # fmt: skip


def main() -> None:
    export_dir, prompt, max_new_tokens, project = sys.argv[1:5]
    generator = pipeline("text-generation", model=export_dir, trust_remote_code=True)
    out = generator(prompt, max_new_tokens=int(max_new_tokens), do_sample=False)
    from_project = sorted(name for name, module in list(sys.modules.items()) if ours(name, module, project))
    model = generator.model
    print(json.dumps({"model_class": type(model).__module__ + "." + type(model).__name__,
                      "text": out[0]["generated_text"], "from_project": from_project}, ensure_ascii=False))


if __name__ == "__main__":
    main()
