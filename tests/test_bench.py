"""The benchmarks run (tiny sizes, figures meaningless) and print their tables against the named peers, so a
rare quiet machine or GPU session is not lost to a broken script; and bench_gpu's FLOP count is checked
against the models' real matmul weights.

    .venv/bin/python -m pytest tests/test_bench.py -q
"""

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from corpora import read_text_file
from modeling import RopeGPTConfig, RopeGPTForCausalLM
from tokenizer_training import train_tokenizer
from training.arguments import parse_arguments

ROOT = Path(__file__).resolve().parents[1]


def load_bench(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
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
def test_bench_gpu_code_path_on_cpu(tmp_path):
    lines = run_bench("bench/bench_gpu.py", "--device", "cpu", "--preset", "tiny", "--block_size", "64",
                      "--batch_size", "2", "--steps", "2", "--json", str(tmp_path / "gpu.json"))  # fmt: skip
    rows = [line.split("|")[1].strip() for line in lines[2:]]
    assert rows == ["RopeGPT", "Llama (transformers)"]
    rows = json.loads((tmp_path / "gpu.json").read_text())
    assert [r["name"] for r in rows] == ["RopeGPT", "Llama (transformers)"]
    assert all(r["tok_s"] > 0 and math.isfinite(r["mfu"]) and r["device"] == "cpu" for r in rows)


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
    assert [row["model"] for row in rows] == ["ropegpt", "ropegpt-llama-arch", "llama", "ropegpt-recipe",
                                              "llama-matched"]  # fmt: skip
    assert rows[0]["gen_tok_s_static_compiled"] > 0
    # the recipe's model and a Llama of its size, both under Muon + AdamW
    recipe, matched = rows[3:]
    assert recipe["optimizer"] == matched["optimizer"] == "muon" and recipe["train_tok_s"] > 0
    assert abs(matched["params"] - recipe["params"]) / recipe["params"] < 0.01


@pytest.mark.slow
def test_bench_train_prints_trainer_beside_a_bare_loop(corpora_dir, tmp_path):
    lines = run_bench("bench/bench_train.py", "--steps", "3", "--warmup", "1", "--reps", "1",
                      "--json", str(tmp_path / "train.json"))
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["train_clm.py (Trainer)", "bare PyTorch loop"]
    rows = json.loads((tmp_path / "train.json").read_text())
    assert [r["name"] for r in rows] == ["train_clm.py (Trainer)", "bare PyTorch loop"]
    assert rows[1]["ratio_median"] == 1.0 and all(r["median_tok_s"] > 0 for r in rows)


@pytest.mark.slow
def test_bench_pipeline_prints_ours_beside_run_clm(corpora_dir, tmp_path):
    lines = run_bench("bench/bench_pipeline.py", "--quick", "--json", str(tmp_path / "pipeline.json"))
    tokenize = next(line for line in lines if line.startswith("| tokenize |"))
    assert tokenize.count("|") == 7 and tokenize.rstrip(" |").endswith("x")  # ours and run_clm's, and the ratio
    rows = {r["name"]: r for r in json.loads((tmp_path / "pipeline.json").read_text())}
    assert rows["tokenize"]["ours_s"] > 0 and rows["tokenize"]["run_clm_s"] > 0 and rows["total"]["run_clm_s"] is None


# ------------------------------------------------------------------ bench_quality: the fair peers (fast)


def test_llama_same_takes_every_argument_of_our_recipe_but_the_model(tmp_path):
    bench_quality = load_bench("bench_quality")
    recipe = tmp_path / "ours.yaml"  # as the lead may make it: other optimizer, RopeGPT-only fields
    recipe.write_text(
        bench_quality.OURS_RECIPE.read_text(encoding="utf-8")
        + "optim: adafactor\nconfig_overrides: mlp_type=swiglu\nwarmup_steps: 7\n", encoding="utf-8")
    extra = "--learning_rate 1e-3 --config_overrides=norm_type=rmsnorm --preset small"
    ours = parse_arguments(bench_quality.model_words("ours", extra, recipe), default_recipe=None)
    same = parse_arguments(bench_quality.model_words("llama_same", extra, recipe), default_recipe=None)
    (ours_model, ours_data, _, ours_train, _), (same_model, same_data, _, same_train, _) = ours, same
    assert same_train.to_dict() == ours_train.to_dict()  # optimizer, schedule, batch, everything
    assert same_train.optim == "adafactor" and same_train.learning_rate == 1e-3 and same_train.warmup_steps == 7
    assert same_data == ours_data
    assert (ours_model.model_type, ours_model.preset) == ("ropegpt", "small")
    assert same_model.model_type == "llama" and same_model.preset is None
    assert "mlp_type" not in same_model.config_overrides and "norm_type" not in same_model.config_overrides


def test_plain_peers_use_our_tokenizer_and_the_plain_adamw_recipe():
    bench_quality = load_bench("bench_quality")
    ours = parse_arguments(bench_quality.model_words("ours"), default_recipe=None)
    for name, model_type in (("llama_bpe", "llama"), ("gpt2_bpe", "gpt2")):
        model_args, data_args, _, training_args, _ = parse_arguments(bench_quality.model_words(name),
                                                                     default_recipe=None)
        assert model_args.model_type == model_type
        assert (data_args.tokenizer_kind, data_args.vocab_size) == (ours[1].tokenizer_kind, ours[1].vocab_size)
        assert training_args.optim.startswith("adamw") and training_args.learning_rate == 3e-3
        assert training_args.lr_scheduler_kwargs == {"min_lr_rate": 0.5} and training_args.adam_beta2 == 0.99


def test_peers_are_matched_to_our_parameter_count(corpora_dir):
    bench_quality = load_bench("bench_quality")
    text = read_text_file(corpora_dir / "tolstoy" / "txt" / "posle_bala_after_the_ball.utf8bom.txt")
    tokenizer = train_tokenizer([text], kind="bpe", vocab_size=1024, model_max_length=128)
    ours_model, ours_data, *_ = parse_arguments(bench_quality.model_words("ours"), default_recipe=None)
    target = bench_quality.count_params(ours_model, tokenizer, ours_data.block_size)
    for name, field in bench_quality.MATCHED.items():
        model_args = parse_arguments(bench_quality.model_words(name), default_recipe=None)[0]
        width = bench_quality.matched_width(model_args, field, target, tokenizer, 128)
        matched = bench_quality.with_overrides(model_args, f"{field}={width}")
        params = bench_quality.count_params(matched, tokenizer, 128)
        assert abs(params - target) / target < 0.002, (name, params, target)


def test_seeds_differences_and_targets_from_rows():
    bench_quality = load_bench("bench_quality")
    assert bench_quality.parse_seeds("0,1,2") == [0, 1, 2]
    rows = [dict(name=n, model=n, tokenizer="bpe 4096", params=1e6, steps=10, seconds=1.0, tokens=100, seed=s,
                 val=v, unseen=v + 0.3) for n, s, v in
            [("ours", 0, 1.10), ("ours", 1, 1.12), ("llama_bpe", 0, 1.16), ("llama_bpe", 1, 1.15),
             ("llama_same", 0, 1.11), ("llama_same", 1, 1.11)]]
    assert bench_quality.differences(rows, "llama_bpe", "val") == pytest.approx([0.06, 0.03])
    lines = bench_quality.table(rows, "3 steps").splitlines()
    llama = next(line for line in lines if line.startswith("| llama_bpe"))
    assert "1.155 (1.150–1.160)" in llama and "+0.045" in llama
    met = {goal.split(" below ")[1].split(" ")[0]: ok for goal, _, ok in bench_quality.targets(rows, "ru")
           if " below " in goal}
    assert met == {"llama_bpe": False, "llama_same": False}  # 0.03 < 0.04 at seed 1; 1.12 > 1.11 at seed 1


def test_bench_schedule_follows_the_recipe_on_the_bench_clock():
    """Cosine to the recipe's floor, or warm-up/stable/decay with the decay share and floor the recipe gives."""
    bench_quality = load_bench("bench_quality")
    progress = lambda step: step / 1000  # noqa: E731

    def recipe(kind, **kwargs):
        return parse_arguments(["--lr_scheduler_type", kind, "--lr_scheduler_kwargs", json.dumps(kwargs),
                                "--max_steps", "500"], default_recipe=None)[3]  # fmt: skip

    cosine = bench_quality.schedule(recipe("cosine_with_min_lr", min_lr_rate=0.5), 10, progress, 500)
    assert cosine(4) == pytest.approx(0.5, abs=1e-4) and cosine(500) == pytest.approx(0.75) and cosine(1000) == pytest.approx(0.5)
    wsd = bench_quality.schedule(recipe("warmup_stable_decay", num_decay_steps=0.4, decay_type="linear"), 10,
                                 progress, 500)  # fmt: skip
    assert [wsd(s) for s in (100, 600, 800)] == pytest.approx([1.0, 1.0, 0.5]) and wsd(1000) == pytest.approx(0.0)
    steps = bench_quality.schedule(recipe("warmup_stable_decay", num_decay_steps=100, min_lr_ratio=0.2,
                                          decay_type="linear"), 10, progress, 500)  # fmt: skip
    assert steps(800) == pytest.approx(1.0) and steps(900) == pytest.approx(0.6)  # 100 of 500 steps: the last 20%


@pytest.mark.parametrize("bad,says", [(["--seeds", "0,x"], "--seeds"), (["--seeds", "1,1"], "different seeds"),
                                      (["--json", "."], "is a folder"), (["--lang", "xx"], "--lang"),
                                      (["--ours-args", "--lr_scheduler_kwargs {}"], "num_decay_steps"),
                                      (["--only", "llama_same", "--ours-args", "--learning_rate 0"], "--learning_rate")])
def test_bench_quality_bad_arguments_are_one_line_errors_before_any_training(bad, says, monkeypatch, capsys):
    bench_quality = load_bench("bench_quality")
    monkeypatch.setattr(sys, "argv", ["bench_quality.py", *bad])
    with pytest.raises(SystemExit) as exit_info:
        bench_quality.main()
    out = capsys.readouterr()
    assert exit_info.value.code == 2 and out.out == ""
    last = out.err.strip().splitlines()[-1]
    assert last.startswith("bench_quality.py: error: ") and says in last


def test_json_rows_replace_the_file_whole_and_turn_non_finite_into_null(tmp_path):
    jsonrows = load_bench("jsonrows")
    path = tmp_path / "sub" / "rows.json"
    assert jsonrows.json_path_problem(path) is None
    jsonrows.write_rows(path, [{"name": "a", "val": 1.5}])
    jsonrows.write_rows(path, [{"name": "a", "val": float("nan")}, {"name": "b", "val": float("inf")}])
    assert json.loads(path.read_text()) == [{"name": "a", "val": None}, {"name": "b", "val": None}]
    assert [p.name for p in path.parent.iterdir()] == ["rows.json"]  # no temporary file left behind
    assert "is a folder" in jsonrows.json_path_problem(tmp_path)
    with pytest.raises(TypeError):  # an unserialisable row: the file keeps its last good content
        jsonrows.write_rows(path, [{"name": object()}])
    assert len(json.loads(path.read_text())) == 2 and len(list(path.parent.iterdir())) == 1


# ------------------------------------------------------------------ bench_quality: smoke runs (slow)

QUALITY_KEYS = {"name", "tokenizer", "val", "unseen", "steps", "seconds", "seed", "params", "lang"}


def quality_rows(path: Path) -> list[dict]:
    rows = json.loads(path.read_text())
    for row in rows:
        assert QUALITY_KEYS <= set(row)
        assert all(math.isfinite(row[k]) for k in ("val", "unseen", "seconds")) and 0 < row["val"] < 10
    return rows


@pytest.mark.slow
def test_bench_quality_runs_every_model_for_every_seed(corpora_dir, tmp_path):
    lines = run_bench("bench/bench_quality.py", "--max-steps", "2", "--seeds", "0,1", "--eval-blocks", "4",
                      "--json", str(tmp_path / "q.json"))  # fmt: skip
    table = lines[2 : lines.index(next(line for line in lines if line.startswith("| target")))]
    assert [line.split("|")[1].strip() for line in table] == [
        "RopeGPT (bench_best recipe)", "LlamaForCausalLM (our recipe)", "LlamaForCausalLM (plain AdamW)",
        "GPT2LMHeadModel (plain AdamW)", "LlamaForCausalLM (nanoGPT CPU)", "GPT2LMHeadModel (nanoGPT CPU)",
        "char LSTM (char_lstm recipe)"]  # fmt: skip
    assert table[0].split("|")[7].strip() == "—" and all(line.split("|")[7].strip()[0] in "+-" for line in table[1:])
    rows = quality_rows(tmp_path / "q.json")
    assert [(r["name"], r["seed"]) for r in rows] == [(n, s) for s in (0, 1) for n in (
        "ours", "llama_same", "llama_bpe", "gpt2_bpe", "llama", "gpt2", "lstm")]  # fmt: skip
    assert all(r["steps"] == 2 and r["lang"] == "ru" for r in rows)
    params = {r["name"]: r["params"] for r in rows}
    for name in ("llama_same", "llama_bpe", "gpt2_bpe"):
        assert abs(params[name] - params["ours"]) / params["ours"] < 0.002, name
    bpe = {r["tokenizer"] for r in rows if r["name"] in ("ours", "llama_same", "llama_bpe", "gpt2_bpe")}
    assert len(bpe) == 1 and bpe.pop().startswith("bpe")


@pytest.mark.slow
def test_bench_quality_tatar_rows(corpora_dir, tmp_path):
    proc_lines = run_bench("bench/bench_quality.py", "--lang", "tt", "--only", "ours", "--only", "llama_bpe",
                           "--max-steps", "2", "--seed", "3", "--eval-blocks", "4", "--json", str(tmp_path / "t.json"))
    assert "Rahim Gali" in proc_lines[0]  # the table names the language's unseen text
    rows = quality_rows(tmp_path / "t.json")
    assert [(r["name"], r["seed"], r["lang"]) for r in rows] == [("ours", 3, "tt"), ("llama_bpe", 3, "tt")]


def test_tatar_split_holds_out_a_whole_book_and_the_tail_of_every_other(corpora_dir):
    bench_quality = load_bench("bench_quality")
    corpus = bench_quality.LANGS["tt"]
    assert len(corpus.split_files) == 4 and corpus.unseen not in corpus.split_files
    splits = bench_quality.text_splits(corpus)
    train, validation, unseen = ("\n".join(splits[s]["text"]) for s in ("train", "validation", "unseen"))
    assert 0.08 < len(validation) / (len(train) + len(validation)) < 0.12
    probe = unseen[5000:5200]  # a passage of the unseen book is nowhere in the training text
    assert probe not in train and probe not in validation


@pytest.mark.slow
def test_bench_pipeline_scale_runs_10_mb_through_the_streaming_pipeline(corpora_dir, tmp_path):
    """CI runs the --scale path at 10 MB only; 100 MB and 1 GB are for a quiet machine (bench/RESULTS.md)."""
    lines = run_bench("bench/bench_pipeline.py", "--scale", "10MB", "--vocab_size", "1024",
                      "--json", str(tmp_path / "scale.json"), timeout=600)  # fmt: skip
    rows = [line for line in lines if line.startswith("| 10 MB |")]  # time, memory, memory per stage
    times, memory, _ = ([c.strip() for c in line.strip("|").split("|")] for line in rows)
    assert len(times) == 9 and len(memory) == 6
    wall_cpu = [[float(x) for x in cell.replace("(", "").replace(")", "").split()] for cell in times[1:6]]
    assert all(wall > 0 and cpu > 0 for wall, cpu in wall_cpu[:3])  # corpus, tokenizer, tokenize (group may be 0.0)
    assert float(times[6]) > 0  # CPU seconds per 100 MB, the linear-time measure
    assert all(float(c) > 0 for c in memory[1:])
    rss_all, pss_all, anon_all = (float(c) for c in memory[1:4])
    assert anon_all <= pss_all <= rss_all  # RSS counts shared pages in every process, PSS once, anonymous less files
    assert rss_all < 3.0  # GB: imports and a 10 MB corpus, far from the 3 GB allowed at 1 GB
    [scale] = json.loads((tmp_path / "scale.json").read_text())
    stages = {"corpus", "tokenizer", "tokenize", "group"}
    assert scale["size"] == 10**7 and set(scale["times"]) == set(scale["cpu_times"]) == stages
    assert scale["total_cpu_s"] == pytest.approx(sum(scale["cpu_times"].values()))
    assert scale["bytes"] > 9e6 and scale["tokens"] > 0 and scale["blocks"] >= scale["tokens"] // 256


def test_scale_cpu_seconds_count_children_that_ended():
    """The --scale CPU seconds are the whole process tree's, workers that have ended included."""
    import psutil

    bench = load_bench("bench_pipeline")
    before = bench.tree_cpu_seconds(psutil.Process())
    burn = "import time; end = time.process_time() + 0.5\nwhile time.process_time() < end: pass"
    subprocess.run([sys.executable, "-c", burn], check=True)
    # not >= 0.5: /proc counts user and system in clock ticks, each rounded down, and the float difference of
    # two sums can land just under a tick (CI read 150.68 - 150.18 = 0.49999...)
    assert bench.tree_cpu_seconds(psutil.Process()) - before >= 0.4  # without the ended child: about 0


def test_scale_peak_memory_counts_the_worker_processes():
    """The --scale peak is the whole process tree's: a child holding 300 MB is in it (num_proc workers are)."""
    bench = load_bench("bench_pipeline")
    rss = bench.TreeRSS(interval=0.05)
    rss.enter("work")
    subprocess.run([sys.executable, "-c", "import time; held = b'x' * 300_000_000; time.sleep(1.0)"], check=True)
    peaks_rss, peaks_pss, peaks_anon = rss.close()
    assert peaks_rss["work"] > 300e6 and peaks_pss["work"] > 300e6 and peaks_anon["work"] > 300e6


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
    assert [bench.size_label(n) for n in (10**9, 10**8, 2_500_000)] == ["1 GB", "100 MB", "2.5 MB"]
