"""push_to_hub.py against a real HTTP test double of the Hub (tests/hub_double.py), and its offline export.

    .venv/bin/python -m pytest tests/test_push_to_hub.py -q

The pushes run as subprocesses because huggingface_hub reads HF_ENDPOINT when it is imported; the
downloads run in a fresh process with an empty HF_HOME whose working directory is not this project, so the
model is served by the uploaded remote code only.
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import publishing
import push_to_hub
from generate import generate_texts, load_model
from tests.hub_double import hub_double  # noqa: F401  (the fixture)
from tests.test_generate import PROMPT, build_run_dir

ROOT = Path(__file__).resolve().parents[1]
REPO = "user/tiny-ropegpt"
EXPECTED_FILES = [
    "README.md", "config.json", "configuration_ropegpt.py", "corpus_manifest.json", "generation_config.json",
    "metrics.json", "model.safetensors", "modeling_ropegpt.py", "samples.txt", "tokenizer.json",
    "tokenizer_config.json", "training_args.json",
]  # fmt: skip
MAX_NEW_TOKENS = 12

DOWNLOAD_AND_GENERATE = """
import json, sys
from transformers import pipeline
kwargs = {"revision": sys.argv[2]} if len(sys.argv) > 2 else {}
generator = pipeline("text-generation", model=sys.argv[1], trust_remote_code=True, **kwargs)
out = generator(%r, max_new_tokens=%d, do_sample=False)
print(json.dumps({"module": type(generator.model).__module__, "text": out[0]["generated_text"]}, ensure_ascii=False))
""" % (PROMPT, MAX_NEW_TOKENS)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, corpora_dir):
    return build_run_dir(tmp_path_factory.mktemp("run"), corpora_dir)


@pytest.fixture(scope="module")
def local_greedy(run_dir):
    model, tokenizer = load_model(str(run_dir), device="cpu")
    return generate_texts(model, tokenizer, [PROMPT], greedy=True, max_new_tokens=MAX_NEW_TOKENS)[0]


def push(env, *args, cwd):
    return subprocess.run(
        [sys.executable, str(ROOT / "push_to_hub.py"), *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=180,
    )


def front_matter(readme: str) -> dict:
    assert readme.startswith("---\n")
    return yaml.safe_load(readme.split("---\n", 2)[1])


def test_export_is_the_allowlist_with_a_card(run_dir, tmp_path):
    export = publishing.export_model(run_dir, tmp_path / "export", REPO)
    assert sorted(p.name for p in export.iterdir()) == EXPECTED_FILES
    assert "hf_SECRET" not in (export / "training_args.json").read_text()
    assert json.loads((export / "training_args.json").read_text())["TrainingArguments"]["hub_token"] == "<redacted>"
    assert json.loads((export / "corpus_manifest.json").read_text())["format"] == "ropegpt-corpus/1"
    readme = (export / "README.md").read_text(encoding="utf-8")
    meta = front_matter(readme)
    assert meta["language"] == ["ru"] and meta["library_name"] == "transformers"
    assert meta["pipeline_tag"] == "text-generation" and {"ropegpt", "causal-lm", "russian"} <= set(meta["tags"])
    assert "base_model" not in meta  # trained from scratch
    metrics = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert metrics == {"perplexity": 334.5678, "bits_per_byte": 2.4567}
    assert f'pipeline("text-generation", model="{REPO}", trust_remote_code=True)' in readme
    assert f"{PROMPT} умер" in readme and "smert_ivana_ilicha" in readme  # samples and manifest summary
    with pytest.raises(publishing.PushError, match="not empty"):
        publishing.export_model(run_dir, export, REPO)


def test_card_metadata_for_a_tatar_fine_tune(run_dir, tmp_path):
    run_args = json.loads((run_dir / "run_args.json").read_text())
    run_args["ModelArguments"]["model_name_or_path"] = "ai-forever/rugpt3small_based_on_gpt2"
    archive = "../shared/corpora/tatar/leipzig/tat_books_2024_10K.tar.gz"
    run_args["DataArguments"] = {"source": "leipzig", "inputs": [archive]}
    folder = tmp_path / "ft"
    folder.mkdir()
    for name in ("config.json", "model.safetensors", "metrics.json"):
        (folder / name).write_bytes((run_dir / name).read_bytes())
    (folder / "run_args.json").write_text(json.dumps(run_args))
    meta = publishing.build_model_card(folder, REPO).data.to_dict()
    assert meta["language"] == ["tt"] and "tatar" in meta["tags"]
    assert meta["base_model"] == "ai-forever/rugpt3small_based_on_gpt2"
    assert publishing.detect_languages(folder, {"RunArguments": {"sample_prompts": ["Казан шәһәре"]}}, None) == ["tt"]


def test_bad_inputs_are_one_line_errors(run_dir, tmp_path, capsys):
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text("{}")
    cases = [
        ([str(tmp_path / "missing"), REPO], "does not exist"),
        ([str(no_weights), REPO], "no model weights"),
        ([str(run_dir), "no-owner"], "owner/name"),
        ([str(run_dir), "a/b/c"], "bad --repo_id"),
    ]
    for (model_dir, repo_id), message in cases:
        assert push_to_hub.main(["--model_dir", model_dir, "--repo_id", repo_id, "--dry_run", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err


@pytest.mark.slow
def test_push_then_anyone_loads_it_with_pipeline(hub_double, run_dir, local_greedy, tmp_path):  # noqa: F811
    proc = push(hub_double.env(tmp_path / "hf_home_push"), "--model_dir", str(run_dir), "--repo_id", REPO, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == f"{hub_double.endpoint}/{REPO}"
    assert hub_double.files(REPO) == sorted([".gitattributes", *EXPECTED_FILES])
    meta = front_matter(hub_double.file(REPO, "README.md").decode())
    metrics = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert metrics == {"perplexity": 334.5678, "bits_per_byte": 2.4567}
    assert hub_double.token not in proc.stdout + proc.stderr

    fresh = subprocess.run(
        [sys.executable, "-c", DOWNLOAD_AND_GENERATE, REPO], env=hub_double.env(tmp_path / "hf_home_user"),
        cwd=tmp_path, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert fresh.returncode == 0, fresh.stderr
    result = json.loads(fresh.stdout.strip().splitlines()[-1])
    assert result["module"].startswith("transformers_modules.")  # the uploaded code, not this project's
    assert result["text"] == local_greedy
    assert any(m == "GET" and p.startswith(f"/{REPO}/resolve/") and p.endswith("/modeling_ropegpt.py")
               for m, p in hub_double.requests)  # fmt: skip


@pytest.mark.slow
def test_failed_commit_is_reported_and_a_retry_succeeds(hub_double, run_dir, tmp_path):  # noqa: F811
    env = hub_double.env(tmp_path / "hf_home")
    # huggingface_hub itself retries a 500 five times (1+2+4+8+8 s of back-off): fail them all.
    hub_double.fail_next_commits(6)
    proc = push(env, "--model_dir", str(run_dir), "--repo_id", REPO, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    # The client's own "Retrying in Ns" warnings come first; our error is the last line, and one line.
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith("push_to_hub.py: error: upload to user/tiny-ropegpt failed (HTTP 500"), proc.stderr
    assert "running the same command again is safe" in error
    assert hub_double.files(REPO) == [".gitattributes"]  # nothing half-uploaded
    proc = push(env, "--model_dir", str(run_dir), "--repo_id", REPO, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert hub_double.files(REPO) == sorted([".gitattributes", *EXPECTED_FILES])


def test_missing_token_fails_before_any_request(hub_double, run_dir, tmp_path):  # noqa: F811
    env = hub_double.env(tmp_path / "hf_home", token=False)
    proc = push(env, "--model_dir", str(run_dir), "--repo_id", REPO, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "no Hugging Face token" in proc.stderr, proc.stderr
    assert not [r for r in hub_double.requests if r[0] == "POST"]


def test_push_to_a_new_branch(hub_double, run_dir, tmp_path):  # noqa: F811
    env = hub_double.env(tmp_path / "hf_home")
    proc = push(env, "--model_dir", str(run_dir), "--repo_id", REPO, "--revision", "v1", "--private", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == f"{hub_double.endpoint}/{REPO}/tree/v1"
    assert hub_double.files(REPO, revision="v1") == sorted([".gitattributes", *EXPECTED_FILES])
    assert hub_double.files(REPO) == [".gitattributes"]  # main untouched
    assert hub_double.is_private(REPO)
    assert ("POST", f"/api/models/{REPO}/branch/v1") in hub_double.requests


@pytest.mark.slow
def test_dry_run_export_loads_in_a_fresh_offline_process(run_dir, tmp_path, capsys):
    export = tmp_path / "export"
    assert push_to_hub.main(["--model_dir", str(run_dir), "--repo_id", REPO, "--dry_run", str(export)]) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in export.iterdir()) == EXPECTED_FILES
    assert "dry run OK: loaded transformers_modules." in out  # the exported code, in a fresh offline process
    model, tokenizer = load_model(str(run_dir), device="cpu")
    (expected,) = generate_texts(model, tokenizer, [PROMPT], greedy=True, max_new_tokens=8)  # verify_export's length
    assert ast.literal_eval(out.split("greedy sample: ", 1)[1].strip()) == expected
    # copies, not hard links: editing the export must never edit the trained model
    for name in ("model.safetensors", "config.json"):
        assert not (export / name).samefile(run_dir / name)
    (export / "config.json").write_text("{}")
    assert json.loads((run_dir / "config.json").read_text())["model_type"] == "ropegpt"


def test_a_model_folder_cut_short_is_refused(run_dir, tmp_path, capsys):
    import shutil

    cut = tmp_path / "cut"
    shutil.copytree(run_dir, cut)
    (cut / "configuration_ropegpt.py").write_text("")
    assert push_to_hub.main(["--model_dir", str(cut), "--repo_id", REPO, "--dry_run", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "incomplete" in err and "configuration_ropegpt.py" in err, err
    assert not (tmp_path / "x").exists()


def test_no_write_access_is_a_one_line_error(hub_double, run_dir, tmp_path):  # noqa: F811
    proc = push(hub_double.env(tmp_path / "hf_home"), "--model_dir", str(run_dir), "--repo_id", "other/tiny", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "HTTP 403" in proc.stderr and "write access" in proc.stderr, proc.stderr
    assert not [r for r in hub_double.requests if "/commit/" in r[1]]
