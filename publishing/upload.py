"""The upload: the export of a model folder sent to a Hub repository in one commit."""

from __future__ import annotations

import tempfile
from pathlib import Path

from huggingface_hub import HfApi, get_token

# huggingface_hub's HTTP client raises its own base error (httpx2.HTTPError in 2.4) for transport
# failures; taken from huggingface_hub.errors so we don't name the client package ourselves.
from huggingface_hub.errors import HfHubHTTPError, HTTPError

from .card import DEFAULT_LICENSE
from .errors import PushError, UploadError
from .export import export_model
from .folder import check_inputs

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

