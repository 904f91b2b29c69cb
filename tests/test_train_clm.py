"""train_clm.py: arguments and recipes, bad input, and end-to-end runs on real Tolstoy text.

    .venv/bin/python -m pytest tests/test_train_clm.py -q

The end-to-end runs share one small prepared corpus (two of Tolstoy's stories) and one BPE tokenizer, and
train a 2-layer, 64-wide RoPE GPT: seconds per run on 2 CPU cores.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import ROOT
from training.arguments import (
    DEFAULT_RECIPE,
    RECIPES_DIR,
    ArgumentsError,
    DataArguments,
    ModelArguments,
    RunArguments,
    parse_arguments,
    parse_config_overrides,
)
from training.checkpoints import find_resumable_checkpoint, is_complete_checkpoint

TINY_MODEL = "hidden_size=64,num_hidden_layers=2,num_attention_heads=2,intermediate_size=256"
STORIES = ("dyavol_the_devil.utf8bom.txt", "smert_ivana_ilicha.utf8bom.txt")


# ---------------------------------------------------------------- arguments and recipes (fast)


def test_recipe_then_command_line_override(tmp_path):
    model_args, data_args, run_args, training_args, recipe = parse_arguments(
        [str(DEFAULT_RECIPE), "--max_steps", "7", "--vocab_size", "1000", "--output_dir", str(tmp_path)]
    )
    assert recipe == DEFAULT_RECIPE
    assert training_args.max_steps == 7 and data_args.vocab_size == 1000
    assert model_args.preset == "tiny" and data_args.source == "tolstoy"  # from the recipe
    assert training_args.lr_scheduler_type == "warmup_stable_decay"  # the recipe's, over the project's cosine
    assert training_args.lr_scheduler_kwargs["num_decay_steps"] == 0.4
    assert training_args.max_grad_norm == 1.0  # project default under the recipe
    assert training_args.output_dir == str(tmp_path)


def test_bare_words_are_inputs_as_with_python_m_corpora():
    _, data_args, *_ = parse_arguments(["--source", "text", "a.txt", "b/", "--max_steps", "3"])
    assert data_args.inputs == ["a.txt", "b/"]
    with pytest.raises(ArgumentsError, match="unknown arguments"):
        parse_arguments(["--lerning_rate", "0.1"])


def test_no_arguments_means_the_default_recipe():
    *_, training_args, recipe = parse_arguments([])
    assert recipe == DEFAULT_RECIPE and training_args.output_dir == "runs/tolstoy_tiny"


def test_options_alone_adjust_the_default_recipe():
    model_args, data_args, _, training_args, recipe = parse_arguments(["--max_steps", "100"])
    assert recipe == DEFAULT_RECIPE and training_args.max_steps == 100
    assert data_args.source == "tolstoy" and model_args.preset == "tiny" and data_args.block_size == 128
    # a data source or model type of your own replaces the recipe's, the rest of the recipe stays
    model_args, data_args, *_ = parse_arguments(["--dataset_dir", "d", "--model_type", "lstm_lm"])
    assert data_args.source is None and model_args.preset is None and data_args.vocab_size == 4096
    _, data_args, *_ = parse_arguments(["--source", "text", "a.txt"])
    assert data_args.inputs == ["a.txt"] and data_args.dataset_dir is None


@pytest.mark.parametrize("recipe", sorted(p.name for p in RECIPES_DIR.glob("*.yaml")))
def test_every_recipe_parses(recipe):
    if recipe.startswith("finetune"):
        from finetune import FINETUNE_DEFAULTS, FinetuneArguments
        from transformers import TrainingArguments

        types = (ModelArguments, DataArguments, RunArguments, FinetuneArguments, TrainingArguments)
        parsed = parse_arguments([str(RECIPES_DIR / recipe)], types=types, defaults=FINETUNE_DEFAULTS)
    else:
        parsed = parse_arguments([str(RECIPES_DIR / recipe)])
    training_args = parsed[-2]
    assert training_args.output_dir.startswith("runs/")
    assert training_args.save_steps % training_args.eval_steps == 0  # best-model tracking needs aligned saves


def test_recipe_with_unknown_key_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rat: 0.1\n")
    with pytest.raises(ArgumentsError) as e:
        parse_arguments([str(bad)])
    assert "learning_rat" in str(e.value) and str(bad) in str(e.value) and "\n" not in str(e.value)


def test_config_overrides_are_typed():
    assert parse_config_overrides("a=1,b=true,c=gelu,d=0.5,e=none") == {
        "a": 1, "b": True, "c": "gelu", "d": 0.5, "e": None
    }
    with pytest.raises(ArgumentsError):
        parse_config_overrides("num_hidden_layers")


def test_incomplete_checkpoints_are_never_picked(tmp_path):
    good = tmp_path / "checkpoint-10"
    good.mkdir()
    for name in ("optimizer.pt", "scheduler.pt", "model.safetensors"):
        (good / name).write_bytes(b"x")
    (good / "trainer_state.json").write_text(json.dumps({"global_step": 10}))
    cut = tmp_path / "checkpoint-20"  # killed while writing: weights and a truncated state
    cut.mkdir()
    (cut / "model.safetensors").write_bytes(b"x")
    (cut / "optimizer.pt").write_bytes(b"x")
    (cut / "scheduler.pt").write_bytes(b"x")
    (cut / "trainer_state.json").write_text('{"global_st')
    assert is_complete_checkpoint(good) and not is_complete_checkpoint(cut)
    assert find_resumable_checkpoint(tmp_path) == good


# ---------------------------------------------------------------- end to end on real text


@pytest.fixture(scope="module")
def prepared(corpora_dir, tmp_path_factory):
    """A small real corpus (two stories) and a 512-token BPE tokenizer, shared by the runs below."""
    from corpora import CorpusArguments, prepare_corpus
    from corpora import load_corpus
    from tokenizer_training import train_tokenizer

    root = tmp_path_factory.mktemp("prepared")
    inputs = [str(corpora_dir / "tolstoy" / "txt" / name) for name in STORIES]
    data = prepare_corpus(
        CorpusArguments(
            source="text", inputs=inputs, output_dir=str(root / "data"), validation_split=0.1, max_doc_chars=4000
        )
    )
    tokenizer = train_tokenizer(load_corpus(data)["train"]["text"], kind="bpe", vocab_size=512, model_max_length=64)
    tokenizer.save_pretrained(root / "tokenizer")
    return data, root / "tokenizer"


def run_args(prepared, output_dir, *extra) -> list[str]:
    data, tokenizer = prepared
    return [
        "--dataset_dir", str(data), "--tokenizer_dir", str(tokenizer), "--output_dir", str(output_dir),
        "--model_type", "ropegpt", "--preset", "tiny", "--config_overrides", TINY_MODEL,
        "--block_size", "64", "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "32",
        "--learning_rate", "3e-3", "--max_steps", "60", "--eval_steps", "30", "--save_steps", "30",
        "--logging_steps", "10", "--report_to", "none", "--sample_max_new_tokens", "8", "--seed", "0",
        "--dataloader_num_workers", "0", *extra,
    ]  # fmt: skip


def train(args: list[str], cwd=ROOT, env=None, launcher=(sys.executable,)) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env or {})}
    return subprocess.run([*launcher, str(ROOT / "train_clm.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def history(output_dir: Path) -> list[dict]:
    return json.loads((output_dir / "trainer_state.json").read_text())["log_history"]


@pytest.mark.slow
def test_end_to_end_learns_and_loads_in_a_fresh_process(prepared, tmp_path):
    out = tmp_path / "run"
    result = train(run_args(prepared, out, "--max_steps", "120", "--eval_steps", "40", "--save_steps", "40"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "bits per byte" in result.stdout

    # the loss falls
    losses = [h["loss"] for h in history(out) if "loss" in h]
    assert losses[-1] < losses[0] - 1.0, losses

    # validation bits per byte below a unigram model of the same text and tokens
    metrics = json.loads((out / "metrics.json").read_text())
    from corpora import load_corpus
    from transformers import AutoTokenizer

    from training.evaluation import load_metric, token_byte_lengths

    tokenizer = AutoTokenizer.from_pretrained(prepared[1])
    corpus = load_corpus(prepared[0])
    ids = {s: np.concatenate([tokenizer(t).input_ids for t in corpus[s]["text"]]) for s in ("train", "validation")}
    lengths = token_byte_lengths(tokenizer)
    unigram = load_metric("bits_per_byte").unigram_bits_per_byte(
        ids["train"], ids["validation"], int(lengths[ids["validation"]].sum()), len(tokenizer)
    )
    assert metrics["eval_bits_per_byte"] < unigram, (metrics["eval_bits_per_byte"], unigram)
    assert math.isclose(metrics["eval_perplexity"], math.exp(metrics["eval_loss"]), rel_tol=1e-3)

    # the folder has what a user needs, and samples were written at each evaluation
    for name in ("model.safetensors", "config.json", "modeling_ropegpt.py", "configuration_ropegpt.py",
                 "tokenizer.json", "metrics.json", "samples.txt", "run_args.json"):  # fmt: skip
        assert (out / name).is_file(), name
    assert (out / "samples.txt").read_text().count("=== step") >= 3
    assert json.loads((out / "config.json").read_text())["auto_map"]["AutoModelForCausalLM"]

    # a fresh process, outside the repository (no `modeling` importable), loads it through pipeline
    code = (
        "import sys; from transformers import pipeline\n"
        "p = pipeline('text-generation', model=sys.argv[1], trust_remote_code=True)\n"
        "print(p('Иван Ильич', max_new_tokens=10, do_sample=False)[0]['generated_text'])\n"
    )
    fresh = subprocess.run([sys.executable, "-c", code, str(out)], cwd=tmp_path, capture_output=True, text=True,
                           env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}, timeout=300)  # fmt: skip
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert fresh.stdout.startswith("Иван Ильич") and len(fresh.stdout.strip()) > len("Иван Ильич")


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_two_processes_match_one_with_the_same_global_batch(prepared, tmp_path, optimizer):
    """accelerate launch with 2 CPU processes (gloo): world size 2, different batches per rank, same weights."""
    probe = ROOT / "tests" / "_train_probe.py"
    common = ["--max_steps", "12", "--eval_steps", "12", "--save_steps", "12", "--learning_rate", "1e-3",
              "--optimizer", optimizer]  # fmt: skip
    single = tmp_path / "single"
    one = train(run_args(prepared, single, *common, "--per_device_train_batch_size", "8"),
                env={"PROBE_BATCHES": str(tmp_path / "single_batches")}, launcher=(sys.executable, str(probe)))  # fmt: skip
    assert one.returncode == 0, one.stderr[-3000:]

    double = tmp_path / "double"
    port = str(29500 + os.getpid() % 1000)
    launcher = (sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                str(ROOT / "accelerate_configs" / "cpu_2proc.yaml"), "--main_process_port", port, str(probe))  # fmt: skip
    two = train(run_args(prepared, double, *common, "--per_device_train_batch_size", "4"),
                env={"PROBE_BATCHES": str(tmp_path / "double_batches")}, launcher=launcher)  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]

    assert json.loads((double / "metrics.json").read_text())["world_size"] == 2
    assert json.loads((single / "metrics.json").read_text())["world_size"] == 1
    rank0 = json.loads((tmp_path / "double_batches" / "rank0.json").read_text())
    rank1 = json.loads((tmp_path / "double_batches" / "rank1.json").read_text())
    assert rank0 and rank1 and all(a != b for a, b in zip(rank0, rank1))  # each step: different blocks per rank
    whole = json.loads((tmp_path / "single_batches" / "rank0.json").read_text())
    # the single process's global batch of 8 is the union of the two ranks' halves, step by step
    for step, batch in enumerate(whole):
        assert sorted(batch) == sorted(rank0[step] + rank1[step])

    a, b = load_file(single / "model.safetensors"), load_file(double / "model.safetensors")
    # float32 sums in a different order (gloo all-reduce vs one batch) differ by ~1e-7 per step; Adam's
    # normalisation keeps updates near lr-sized, so after 12 steps the weights agree to well under 1e-4. Muon's
    # Newton-Schulz iteration amplifies those differences in the gradient's weakest directions (measured 1.8e-4);
    # ranks that did not share gradients would differ by a whole update (~1e-3 a step, 1e-2 in all).
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < (1e-4 if optimizer == "adamw" else 1e-3), worst


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_resume_after_sigkill_matches_an_uninterrupted_run(prepared, tmp_path, optimizer):
    args = ["--max_steps", "40", "--eval_steps", "10", "--save_steps", "10", "--save_total_limit", "10",
            "--optimizer", optimizer]  # fmt: skip
    straight = tmp_path / "straight"
    assert train(run_args(prepared, straight, *args)).returncode == 0

    killed = tmp_path / "killed"
    cmd = [sys.executable, str(ROOT / "train_clm.py"), *run_args(prepared, killed, *args)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not is_complete_checkpoint(killed / "checkpoint-20"):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert is_complete_checkpoint(killed / "checkpoint-20")
    assert not (killed / "metrics.json").exists(), "the run finished before it could be killed"
    # a checkpoint cut short by a kill while saving: newer, but must not be picked
    partial = killed / "checkpoint-35"
    partial.mkdir(exist_ok=True)
    (partial / "model.safetensors").write_bytes(b"truncated")

    resumed = train(run_args(prepared, killed, *args, "--resume_from_checkpoint", "auto"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "checkpoint-35" not in [l for l in resumed.stdout.splitlines() if "Continuing" in l]
    m_straight = json.loads((straight / "metrics.json").read_text())
    m_resumed = json.loads((killed / "metrics.json").read_text())
    assert m_resumed["global_step"] == m_straight["global_step"] == 40
    final = [h["loss"] for h in history(straight) if "loss" in h][-1]
    final_resumed = [h["loss"] for h in history(killed) if "loss" in h][-1]
    assert final_resumed == pytest.approx(final, rel=1e-4)
    assert m_resumed["eval_loss"] == pytest.approx(m_straight["eval_loss"], rel=1e-4)


# ---------------------------------------------------------------- bad input: one line, exit code 2


def one_line_error(args: list[str], capsys) -> str:
    """Run train_clm.main in-process (imports are already paid for) and return its one error line."""
    import train_clm

    assert train_clm.main(args) == 2
    err = capsys.readouterr().err
    lines = [l for l in err.strip().splitlines() if l.startswith("train_clm.py: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    return lines[0]


def test_missing_dataset_dir(tmp_path, capsys):
    err = one_line_error(["--dataset_dir", str(tmp_path / "nope"), "--output_dir", str(tmp_path / "o")], capsys)
    assert "nope" in err and "python -m corpora" in err


def test_empty_validation_split(tmp_path, capsys):
    import datasets

    data = tmp_path / "data"
    empty = datasets.Dataset.from_dict({"text": [], "source": []})
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": ["а б в"] * 3, "source": ["x"] * 3}),
                          "validation": empty}).save_to_disk(str(data))  # fmt: skip
    err = one_line_error(["--dataset_dir", str(data), "--output_dir", str(tmp_path / "o")], capsys)
    assert str(data) in err and "empty" in err


def test_block_size_larger_than_context(prepared, tmp_path, capsys):
    args = run_args(prepared, tmp_path / "o", "--config_overrides", TINY_MODEL + ",max_position_embeddings=32")
    err = one_line_error(args, capsys)
    assert "--block_size 64" in err and "32" in err


def test_tokenizer_larger_than_model_vocabulary(prepared, tmp_path, capsys):
    err = one_line_error(run_args(prepared, tmp_path / "o", "--config_overrides", TINY_MODEL + ",vocab_size=100"), capsys)
    assert "512" in err and "vocab_size" in err


def test_vocabulary_smaller_than_the_alphabet(prepared, tmp_path, capsys):
    data, _ = prepared
    err = one_line_error(["--dataset_dir", str(data), "--vocab_size", "100", "--output_dir", str(tmp_path / "o")], capsys)
    assert "vocab_size" in err


@pytest.mark.parametrize("flag", ["fp16", "bf16"])
def test_mixed_precision_on_cpu_warns_and_trains_in_float32(flag):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.warns(UserWarning, match=f"--{flag} needs a GPU"):
        *_, training_args, _ = parse_arguments([str(DEFAULT_RECIPE), f"--{flag}", "true"])
    assert getattr(training_args, flag) is False


# ---------------------------------------------------------------- --push_to_hub at the end of training

from tests.hub_double import hub_double  # noqa: E402,F401  (the fixture)


@pytest.mark.slow
def test_push_to_hub_at_the_end_uploads_the_model_with_its_card(prepared, tmp_path, hub_double):
    out = tmp_path / "run"
    args = run_args(prepared, out, "--max_steps", "10", "--eval_steps", "10", "--save_steps", "10",
                    "--push_to_hub", "true", "--hub_model_id", "user/tolstoy-tiny")  # fmt: skip
    result = train(args, env=hub_double.env(tmp_path / "hf_home"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "pushed to" in result.stdout and "user/tolstoy-tiny" in result.stdout
    files = hub_double.files("user/tolstoy-tiny")
    assert {"model.safetensors", "config.json", "modeling_ropegpt.py", "README.md", "tokenizer.json"} <= set(files)
    assert not [f for f in files if f.endswith((".bin", ".pt")) or f.startswith("checkpoint-")], files
    card = hub_double.file("user/tolstoy-tiny", "README.md").decode()
    assert "pipeline_tag: text-generation" in card and "trust_remote_code=True" in card


def test_push_to_hub_needs_a_repository_name(prepared, tmp_path, capsys):
    err = one_line_error(run_args(prepared, tmp_path / "o", "--push_to_hub", "true"), capsys)
    assert "--hub_model_id" in err


def test_unreachable_corpus_source_says_how_to_use_local_files(tmp_path, capsys):
    args = ["--source", "tolstoy", "--base_url", "http://127.0.0.1:9/", "--corpus_cache_dir", str(tmp_path / "cache"),
            "--output_dir", str(tmp_path / "o"), "--snapshot_fallback", "false"]  # fmt: skip
    err = one_line_error(args, capsys)
    assert "127.0.0.1:9" in err and "--source text" in err
    assert not (tmp_path / "o" / "corpus").exists()  # nothing half-made left behind


def test_a_diverging_loss_stops_the_run_naming_the_step(prepared, tmp_path, capsys):
    args = run_args(prepared, tmp_path / "o", "--learning_rate", "1e6", "--max_grad_norm", "0", "--warmup_steps", "0",
                    "--max_steps", "30", "--eval_steps", "30", "--save_steps", "30")  # fmt: skip
    err = one_line_error(args, capsys)
    assert "the loss became" in err and "at step" in err


@pytest.mark.slow
def test_activation_checkpointing_and_tensorboard_logs(prepared, tmp_path):
    import train_clm

    out = tmp_path / "o"
    args = run_args(prepared, out, "--max_steps", "10", "--eval_steps", "5", "--save_steps", "5",
                    "--gradient_checkpointing", "true", "--report_to", "tensorboard")  # fmt: skip
    assert train_clm.main(args) == 0
    events = list((out / "runs").rglob("events.out.tfevents.*"))
    assert events and sum(e.stat().st_size for e in events) > 0
    assert json.loads((out / "metrics.json").read_text())["global_step"] == 10


@pytest.mark.slow
def test_document_masking_run_trains_and_evaluates(prepared, tmp_path):
    out = tmp_path / "run"
    result = train(run_args(prepared, out, "--max_steps", "20", "--eval_steps", "20", "--save_steps", "20",
                            "--document_masking", "true", "--optimizer", "muon"))  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert math.isfinite(metrics["eval_bits_per_byte"]) and metrics["global_step"] == 20
    assert json.loads((out / "run_args.json").read_text())["RunArguments"]["document_masking"] is True


def test_document_masking_refuses_a_model_that_ignores_position_ids(prepared, tmp_path, capsys):
    err = one_line_error(run_args(prepared, tmp_path / "o", "--model_type", "gpt2", "--preset", "",
                                  "--config_overrides", "n_layer=1,n_head=2,n_embd=32", "--document_masking", "true"),
                         capsys)  # fmt: skip
    assert "--document_masking" in err and "gpt2" in err
