"""The benchmarks run (tiny sizes, figures meaningless) and print their tables against the named peers, so a
rare quiet machine or GPU session is not lost to a broken script; and bench_gpu's FLOP count is checked
against the models' real matmul weights.

    .venv/bin/python -m pytest tests/test_bench.py -q
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from modeling import RopeGPTConfig, RopeGPTForCausalLM

ROOT = Path(__file__).resolve().parents[1]


def load_bench(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_bench(*args: str, timeout: int = 300) -> list[str]:
    """The table lines a benchmark prints (it must exit 0)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [line for line in proc.stdout.splitlines() if line.startswith("|")]


@pytest.mark.parametrize("preset,mlp_type", [("tiny", "gelu"), ("base", "gelu"), ("small", "swiglu")])
def test_gpu_flops_per_token_counts_every_matmul_weight(preset, mlp_type):
    bench_gpu = load_bench("bench_gpu")
    config = RopeGPTConfig.from_preset(preset, mlp_type=mlp_type)
    block = 256
    attention = 12 * config.num_hidden_layers * config.hidden_size * block
    with torch.device("meta"):
        ours, twin = RopeGPTForCausalLM(config), bench_gpu.llama_twin(config)
    for model, gated in ((ours, None), (twin, True)):
        matmul_weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
        assert bench_gpu.flops_per_token(config, block, gated_mlp=gated) == 6 * matmul_weights + attention


@pytest.mark.slow
def test_bench_gpu_code_path_on_cpu():
    lines = run_bench("bench/bench_gpu.py", "--device", "cpu", "--preset", "tiny", "--block_size", "64",
                      "--batch_size", "2", "--steps", "2")  # fmt: skip
    rows = [line.split("|")[1].strip() for line in lines[2:]]
    assert rows == ["RopeGPT", "Llama (transformers)"]


@pytest.mark.slow
def test_bench_model_prints_ours_beside_llama(tmp_path):
    lines = run_bench("bench/bench_model.py", "--preset", "tiny", "--batch", "2", "--block", "64", "--steps", "2",
                      "--reps", "1", "--new-tokens", "8", "--prompt", "8", "--json", str(tmp_path / "rows.json"))  # fmt: skip
    models = [line.split("|")[1].strip() for line in lines]
    assert {"ropegpt", "ropegpt-llama-arch", "llama"} <= set(models)
    assert any(line.startswith("| training throughput >= Llama's") for line in lines)
    # static cache + torch.compile(fullgraph=True): both models compile and give the dynamic cache's greedy tokens
    static = [line for line in lines if line.count("|") == 7 and line.rstrip(" |").endswith(("yes", "NO"))]
    assert [line.split("|")[1].strip() for line in static] == ["ropegpt", "llama"]
    assert all(line.rstrip(" |").endswith("yes") for line in static)
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert [row["model"] for row in rows] == ["ropegpt", "ropegpt-llama-arch", "llama"]
    assert rows[0]["gen_tok_s_static_compiled"] > 0


@pytest.mark.slow
def test_bench_train_prints_trainer_beside_a_bare_loop(corpora_dir):
    lines = run_bench("bench/bench_train.py", "--steps", "3", "--warmup", "1", "--reps", "1")
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["train_clm.py (Trainer)", "bare PyTorch loop"]


@pytest.mark.slow
def test_bench_pipeline_prints_ours_beside_run_clm(corpora_dir):
    lines = run_bench("bench/bench_pipeline.py", "--quick")
    tokenize = next(line for line in lines if line.startswith("| tokenize |"))
    assert tokenize.count("|") == 7 and tokenize.rstrip(" |").endswith("x")  # ours and run_clm's, and the ratio


@pytest.mark.slow
def test_bench_quality_prints_all_four_models(corpora_dir):
    lines = run_bench("bench/bench_quality.py", "--max-steps", "3")
    models = [line.split("|")[1].strip() for line in lines[2:]]
    assert models == ["RopeGPT (bench_best recipe)", "char LSTM (char_lstm recipe)", "GPT2LMHeadModel (nanoGPT CPU)",
                      "LlamaForCausalLM (nanoGPT CPU)"]  # fmt: skip
    assert all(0 < float(line.split("|")[6]) < 10 for line in lines[2:])  # finite bits per byte for each


@pytest.mark.slow
def test_bench_pipeline_scale_runs_10_mb_through_the_streaming_pipeline(corpora_dir):
    """CI runs the --scale path at 10 MB only; 100 MB and 1 GB are for a quiet machine (bench/RESULTS.md)."""
    lines = run_bench("bench/bench_pipeline.py", "--scale", "10MB", "--vocab_size", "1024", timeout=600)
    row = next(line for line in lines if line.startswith("| 10 MB |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == 8 and all(float(c) > 0 for c in cells[1:])
    assert float(cells[6]) < 2.0  # peak RSS of the main process, GB: imports and a 10 MB corpus, not more


def test_markov_corpus_has_the_size_asked_in_files_of_a_fixed_size(tmp_path, corpora_dir, monkeypatch):
    bench = load_bench("bench_pipeline")
    monkeypatch.setattr(bench, "SCALE_FILE_BYTES", 100_000)  # 10 MB files at full scale
    out = bench.markov_corpus(tmp_path / "txt", 250_000, seed=1)
    files = sorted(out.iterdir())
    sizes = [f.stat().st_size for f in files]
    assert len(files) == 3 and 250_000 <= sum(sizes) < 255_000 and sizes[0] < 102_000
    text = files[1].read_text(encoding="utf-8")
    assert "ә" in text or "ү" in text or "җ" in text  # Tatar words beside the Russian ones
    assert bench.parse_size("1GB") == 10**9 and bench.parse_size("100MB") == 10**8
