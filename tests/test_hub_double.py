"""The Hub test double (tests/hub_double.py) against the real clients: huggingface_hub 2.4 and transformers 5.23
upload to it and download from it, each in a fresh subprocess with its own empty HF_HOME.

Run: .venv/bin/python -m pytest tests/test_hub_double.py -q   (about 30 s: each transformers import is ~4 s)
"""

import json
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request

from tests.hub_double import git_blob_oid, hub_double  # noqa: F401  (hub_double is the fixture)

TINY_MODEL = "GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=50, bos_token_id=0, eos_token_id=0))"


def _run(hub, code: str, hf_home, token: bool = True) -> dict:
    """Run `code` in a fresh interpreter pointed at the double; it prints one JSON line last, returned here."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=hub.env(hf_home, token=token),
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, f"client failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_upload_folder_then_from_pretrained_in_a_fresh_process(hub_double, tmp_path):
    local = tmp_path / "tiny"
    _run(hub_double, f"""
        import json, torch
        from huggingface_hub import HfApi
        from transformers import GPT2Config, GPT2LMHeadModel
        api = HfApi()
        urls = [api.create_repo("user/tiny", exist_ok=True) for _ in range(2)]  # the second one answers 409
        torch.manual_seed(0)
        {TINY_MODEL}.save_pretrained({str(local)!r})
        info = api.upload_folder(repo_id="user/tiny", folder_path={str(local)!r})
        print(json.dumps({{"urls": urls, "oid": info.oid}}))
    """, tmp_path / "home-up")  # fmt: skip
    expected = [".gitattributes", "config.json", "generation_config.json", "model.safetensors"]
    assert hub_double.files("user/tiny") == expected
    assert hub_double.file("user/tiny", "model.safetensors") == (local / "model.safetensors").read_bytes()

    home = tmp_path / "home-down"
    out = _run(hub_double, f"""
        import json, torch
        from transformers import AutoModelForCausalLM
        hub = AutoModelForCausalLM.from_pretrained("user/tiny")
        ref = AutoModelForCausalLM.from_pretrained({str(local)!r})
        ids = torch.arange(12).view(2, 6)
        print(json.dumps({{"equal": torch.equal(hub(ids).logits, ref(ids).logits), "type": type(hub).__name__}}))
    """, home)  # fmt: skip
    assert out == {"equal": True, "type": "GPT2LMHeadModel"}
    assert list(home.glob("hub/models--user--tiny/snapshots/*/model.safetensors")), "not downloaded into HF_HOME"
    assert ("GET", "/api/models/user/tiny") in hub_double.requests


def test_push_to_hub_creates_repo_card_and_branch(hub_double, tmp_path):
    _run(hub_double, f"""
        import json, torch
        from transformers import GPT2Config, GPT2LMHeadModel
        model = {TINY_MODEL}
        model.push_to_hub("tiny2")  # no namespace: the token's user
        model.config.n_positions = 512  # a change, so that the branch gets a commit of its own
        model.push_to_hub("user/tiny2", revision="dev")
        print(json.dumps({{}}))
    """, tmp_path / "home")  # fmt: skip
    assert {"README.md", "config.json", "model.safetensors"} <= set(hub_double.files("user/tiny2"))
    assert json.loads(hub_double.file("user/tiny2", "config.json", revision="dev"))["n_positions"] == 512
    assert json.loads(hub_double.file("user/tiny2", "config.json"))["n_positions"] == 1024
    assert ("POST", "/api/models/user/tiny2/branch/dev") in hub_double.requests
    assert ("POST", "/api/validate-yaml") in hub_double.requests  # README.md is checked before the commit


def test_failed_commit_raises_and_retry_succeeds(hub_double, tmp_path):
    hub_double.fail_next_commits(1)
    out = _run(hub_double, """
        import json
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError
        api = HfApi()
        api.create_repo("user/flaky")
        try:
            api.upload_file(path_or_fileobj=b"v1", path_in_repo="weights.txt", repo_id="user/flaky")
            first = None
        except HfHubHTTPError as error:
            first = error.response.status_code
        files_after_failure = api.list_repo_files("user/flaky")
        api.upload_file(path_or_fileobj=b"v1", path_in_repo="weights.txt", repo_id="user/flaky")
        print(json.dumps({"first": first, "after_failure": files_after_failure}))
    """, tmp_path / "home")  # fmt: skip
    assert out == {"first": 500, "after_failure": [".gitattributes"]}
    assert hub_double.file("user/flaky", "weights.txt") == b"v1"
    assert hub_double.requests.count(("POST", "/api/models/user/flaky/commit/main")) == 2

    # upload_folder (hf_xet installed) commits through http_backoff: one 500 is retried without the caller seeing it.
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "a.txt").write_text("a")
    hub_double.fail_next_commits(1)
    _run(hub_double, f"""
        from huggingface_hub import HfApi
        HfApi().upload_folder(repo_id="user/flaky", folder_path={str(tmp_path / "folder")!r})
        print("{{}}")
    """, tmp_path / "home")  # fmt: skip
    assert hub_double.file("user/flaky", "a.txt") == b"a"
    assert hub_double.requests.count(("POST", "/api/models/user/flaky/commit/main")) == 4


def test_without_a_valid_token_whoami_fails_and_private_repos_are_hidden(hub_double, tmp_path):
    _run(hub_double, """
        from huggingface_hub import HfApi
        api = HfApi()
        api.create_repo("user/secret", private=True)
        api.upload_file(path_or_fileobj=b"s", path_in_repo="s.txt", repo_id="user/secret")
        print("{}")
    """, tmp_path / "home-owner")  # fmt: skip
    assert hub_double.is_private("user/secret")
    out = _run(hub_double, """
        import json
        from huggingface_hub import HfApi, hf_hub_download
        from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError, RepositoryNotFoundError
        api, seen = HfApi(), {}
        try:
            api.whoami()  # no token at all: refused before any request
        except LocalTokenNotFoundError as error:
            seen["whoami_no_token"] = type(error).__name__
        try:
            api.whoami(token="hf_not_the_token")
        except HfHubHTTPError as error:
            seen["whoami"] = [error.response.status_code, str(error).splitlines()[0]]
        try:
            hf_hub_download("user/secret", "s.txt")
        except RepositoryNotFoundError as error:
            seen["download"] = error.response.status_code
        try:
            api.create_repo("user/anonymous")
        except HfHubHTTPError as error:
            seen["create"] = error.response.status_code
        print(json.dumps(seen))
    """, tmp_path / "home-anonymous", token=False)  # fmt: skip
    assert out == {"whoami_no_token": "LocalTokenNotFoundError", "whoami": [401, "Invalid user token."],
                   "download": 401, "create": 401}  # fmt: skip
    assert ("GET", "/api/whoami-v2") in hub_double.requests


def test_real_gpt2_checkpoint_round_trip(hub_double, tmp_path, checkpoints_dir):
    source = checkpoints_dir / "tiny-gpt2"
    _run(hub_double, f"""
        from huggingface_hub import HfApi
        HfApi().create_repo("user/tiny-gpt2")
        HfApi().upload_folder(repo_id="user/tiny-gpt2", folder_path={str(source)!r})
        print("{{}}")
    """, tmp_path / "home-up")  # fmt: skip
    out = _run(hub_double, f"""
        import json, torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        tokenizer = AutoTokenizer.from_pretrained("user/tiny-gpt2")
        local_tokenizer = AutoTokenizer.from_pretrained({str(source)!r})
        text = "Hello, Hub double: привет"
        ids = tokenizer(text, return_tensors="pt").input_ids
        hub = AutoModelForCausalLM.from_pretrained("user/tiny-gpt2")
        ref = AutoModelForCausalLM.from_pretrained({str(source)!r})
        print(json.dumps({{"same_ids": ids.tolist() == local_tokenizer(text, return_tensors="pt").input_ids.tolist(),
                           "round_trip": tokenizer.decode(ids[0]) == text,
                           "same_logits": torch.equal(hub(ids).logits, ref(ids).logits)}}))
    """, tmp_path / "home-down")  # fmt: skip
    assert out == {"same_ids": True, "round_trip": True, "same_logits": True}
    # transformers asks for optional files; the EntryNotFound answers must not have broken the load.
    assert any(path.endswith("/added_tokens.json") for _, path in hub_double.requests)


def test_resolve_headers_and_missing_entries(hub_double):
    """The wire format itself, without a client: what hf_hub_download reads from HEAD and what 404s carry."""

    def call(method, path, body=None, token=hub_double.token, content_type="application/json"):
        request = urllib.request.Request(hub_double.endpoint + path, data=body, method=method)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read()

    assert call("POST", "/api/repos/create", json.dumps({"name": "wire", "organization": "user"}).encode())[0] == 200
    commit = b"\n".join(json.dumps(line).encode() for line in [
        {"key": "header", "value": {"summary": "add", "description": ""}},
        {"key": "file", "value": {"path": "dir/x.bin", "content": "aGVsbG8=", "encoding": "base64"}},
    ])  # fmt: skip
    status, _, body = call("POST", "/api/models/user/wire/commit/main", commit, content_type="application/x-ndjson")
    assert status == 200
    sha = json.loads(body)["commitOid"]

    status, headers, body = call("HEAD", "/user/wire/resolve/main/dir/x.bin")
    assert (status, body) == (200, b"")
    assert headers["X-Repo-Commit"] == sha and headers["ETag"] == f'"{git_blob_oid(b"hello")}"'
    assert headers["Content-Length"] == "5"
    assert call("GET", f"/user/wire/resolve/{sha}/dir/x.bin")[2] == b"hello"

    status, headers, _ = call("HEAD", "/user/wire/resolve/main/missing.json")
    assert (status, headers["X-Error-Code"]) == (404, "EntryNotFound")
    status, headers, _ = call("HEAD", "/user/wire/resolve/nobranch/dir/x.bin")
    assert (status, headers["X-Error-Code"]) == (404, "RevisionNotFound")
    assert call("GET", "/api/whoami-v2", token=None)[0] == 401

    tree = json.loads(call("GET", "/api/models/user/wire/tree/main")[2])
    assert {(e["type"], e["path"]) for e in tree} == {("file", ".gitattributes"), ("directory", "dir")}
    tree = json.loads(call("GET", "/api/models/user/wire/tree/main?recursive=true")[2])
    assert ("file", "dir/x.bin") in {(e["type"], e["path"]) for e in tree}
