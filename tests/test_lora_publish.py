"""LoRA results are first-class outputs: the merged model and the adapter, both published through the Hub double.

    .venv/bin/python -m pytest tests/test_lora_publish.py -q

One LoRA fine-tune of ../shared/checkpoints/tiny-gpt2 (r 8, merged); the base is uploaded to the Hub double
as user/tiny-gpt2, since a published adapter must name a base that anyone can download. Both publications
are then loaded in fresh processes that have only the Hub double: they must continue a prompt identically.
"""

import json
import subprocess
import sys

import pytest
import yaml

import finetune
from tests.hub_double import hub_double  # noqa: F401  (the fixture)
from tests.test_finetune import finetune_args, story_dataset  # noqa: F401  (the fixture)
from tests.test_push_to_hub import push

BASE_REPO = "user/tiny-gpt2"
UPLOAD_BASE = """
import sys
from huggingface_hub import HfApi
api = HfApi()
api.create_repo(sys.argv[2], exist_ok=True)
api.upload_folder(repo_id=sys.argv[2], folder_path=sys.argv[1])
"""
GREEDY = """
import json, sys
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained(sys.argv[1])
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
ids = tokenizer("Иван Васильевич", return_tensors="pt").input_ids
out = model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=tokenizer.eos_token_id)
print(json.dumps({"class": type(model).__name__, "peft": bool(getattr(model, "peft_config", None)),
                  "ids": out[0].tolist()}))
"""


def front_matter(readme: str) -> dict:
    return yaml.safe_load(readme.split("---\n", 2)[1])


def fresh_greedy(hub_double, repo, tmp_path) -> dict:  # noqa: F811
    done = subprocess.run([sys.executable, "-c", GREEDY, repo], env=hub_double.env(tmp_path / f"home_{repo.replace('/', '_')}"),
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_merged_model_and_adapter_are_both_publishable(checkpoints_dir, story_dataset, hub_double, tmp_path):  # noqa: F811
    out = tmp_path / "lora"
    args = finetune_args(checkpoints_dir, story_dataset, out, "--lora_r", "8", "--lora_alpha", "16",
                         "--lora_target_modules", "c_attn", "c_proj", "c_fc", "--merge_lora", "true",
                         "--max_steps", "10", "--eval_steps", "10", "--save_steps", "10")  # fmt: skip
    assert finetune.main(args) == 0
    merged = out / "merged"
    for name in ("metrics.json", "run_args.json", "samples.txt", "corpus/manifest.json"):
        assert (merged / name).is_file(), name

    env = hub_double.env(tmp_path / "home_push")
    base = subprocess.run([sys.executable, "-c", UPLOAD_BASE, str(checkpoints_dir / "tiny-gpt2"), BASE_REPO], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=180)  # fmt: skip
    assert base.returncode == 0, base.stderr[-2000:]

    # the merged model: a full card (base model, LoRA settings, metrics)
    proc = push(env, "--model_dir", str(merged), "--repo_id", "user/tolstoy-merged", "--base_model", BASE_REPO, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    readme = hub_double.file("user/tolstoy-merged", "README.md").decode()
    meta = front_matter(readme)
    assert meta["base_model"] == BASE_REPO and meta["library_name"] == "transformers" and "lora" in meta["tags"]
    metrics = {m["type"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert metrics == {"perplexity", "bits_per_byte"}
    assert "with LoRA (rank 8, alpha 16" in readme and "merged into the base weights" in readme
    assert "No metrics.json" not in readme and "No corpus manifest" not in readme
    assert {"corpus_manifest.json", "training_args.json", "model.safetensors"} <= set(hub_double.files("user/tolstoy-merged"))

    # the adapter: a PEFT repository naming its base on the Hub
    proc = push(env, "--model_dir", str(out), "--repo_id", "user/tolstoy-lora", "--base_model", BASE_REPO, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    files = set(hub_double.files("user/tolstoy-lora"))
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "README.md", "metrics.json"} <= files
    assert "config.json" not in files and "model.safetensors" not in files
    meta = front_matter(hub_double.file("user/tolstoy-lora", "README.md").decode())
    assert meta["library_name"] == "peft" and meta["base_model"] == BASE_REPO
    adapter_config = json.loads(hub_double.file("user/tolstoy-lora", "adapter_config.json"))
    assert adapter_config["base_model_name_or_path"] == BASE_REPO and adapter_config["r"] == 8

    # anyone loads both with AutoModelForCausalLM (peft installed), and they continue a prompt identically
    from_merged = fresh_greedy(hub_double, "user/tolstoy-merged", tmp_path)
    from_adapter = fresh_greedy(hub_double, "user/tolstoy-lora", tmp_path)
    assert from_adapter["class"] == "GPT2LMHeadModel" and from_adapter["peft"]
    assert from_adapter["ids"] == from_merged["ids"]


def test_a_folder_with_neither_config_nor_adapter_is_refused(tmp_path, capsys):
    import push_to_hub

    (tmp_path / "adapter_config.json").write_text("{}")  # the weights are missing
    assert push_to_hub.main(["--model_dir", str(tmp_path), "--repo_id", "user/x", "--dry_run", str(tmp_path / "e")]) == 2
    assert "adapter_model.safetensors" in capsys.readouterr().err
