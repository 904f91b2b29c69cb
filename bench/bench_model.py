"""RopeGPT beside transformers' LlamaForCausalLM of the same width, depth, heads, FFN width and vocabulary, measured
in the same run: training tokens/s and peak memory at block 256, generation tokens/s for 256 new tokens with and
without the KV cache, and generation with a static cache and the forward compiled by `torch.compile(fullgraph=True)`
(how transformers makes generation fast) against the dynamic cache. Both use SDPA; float32 on CPU, bf16 (autocast
for training) when CUDA is available.

    .venv/bin/python bench/bench_model.py                   # tiny preset, about 4 minutes on 2 CPU cores
    .venv/bin/python bench/bench_model.py --preset small --batch 4 --json bench/out/model.json

A second table times training under the bench recipe's own model and optimizer (recipes/tolstoy_bench_best.yaml:
its config_overrides, its vocabulary, Muon for the hidden matrices + AdamW for the rest, as `--optimizer muon`
builds it): `ropegpt-recipe` against `llama-matched`, LlamaForCausalLM with the SwiGLU width that gives it the
same parameter count under the same optimizer (bench_quality's `llama_same`), so the ratio is the price of
our switches per step.

Rows: `ropegpt` is the preset as configured (LayerNorm, GELU MLP, biases, tied embeddings); `ropegpt-llama-arch`
is RopeGPT switched to Llama's architecture (RMSNorm, SwiGLU, no biases), so that its ratio compares the two
implementations of the same computation. Llama is tied like the preset. Repetitions alternate between the models
after a warm-up, and each figure is the best repetition (on a shared machine other processes only ever add time,
so the fastest repetition is the least disturbed estimate). CPU peak memory is the growth of resident memory over the process's
footprint after imports (VmHWM - VmRSS, Linux), measured in a fresh subprocess per model (within one process the
first model's peak would hide the second's); on CUDA it is torch.cuda.max_memory_allocated.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transformers import CompileConfig, LlamaConfig, LlamaForCausalLM  # noqa: E402

from bench.jsonrows import json_path_problem, write_rows  # noqa: E402
from modeling import RopeGPTConfig, RopeGPTForCausalLM  # noqa: E402
from training.arguments import load_recipe  # noqa: E402
from training.models import resolve_overrides  # noqa: E402
from training.optim import MuonWithAdamW, param_groups  # noqa: E402

LLAMA_ARCH = dict(norm_type="rmsnorm", mlp_type="swiglu", bias=False)
RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "tolstoy_bench_best.yaml"


def build(name: str, preset: str, seed: int = 0) -> torch.nn.Module:
    """The named model at the preset's shape, SDPA attention: 'ropegpt', 'ropegpt-llama-arch', 'llama', or the
    bench recipe's 'ropegpt-recipe' and its parameter-matched 'llama-matched'."""
    torch.manual_seed(seed)
    if name in ("ropegpt-recipe", "llama-matched"):
        recipe = load_recipe(RECIPE)
        base = RopeGPTConfig.from_preset(preset)
        config = RopeGPTConfig.from_preset(preset, vocab_size=recipe["vocab_size"],
                                           **resolve_overrides(base, recipe.get("config_overrides")))  # fmt: skip
        ours = RopeGPTForCausalLM._from_config(config, attn_implementation="sdpa")
        if name == "ropegpt-recipe":
            return ours
        # parameters grow linearly with Llama's SwiGLU width: two probes give the width of equal size
        target, p1, p2 = count(ours), count(llama_for(config, 64)), count(llama_for(config, 128))
        torch.manual_seed(seed)
        return llama_for(config, round(64 + 64 * (target - p1) / (p2 - p1)))
    config = RopeGPTConfig.from_preset(preset, **(LLAMA_ARCH if name == "ropegpt-llama-arch" else {}))
    if name.startswith("ropegpt"):
        return RopeGPTForCausalLM._from_config(config, attn_implementation="sdpa")
    return llama_for(config, config.intermediate_size)


def llama_for(config: RopeGPTConfig, intermediate_size: int) -> LlamaForCausalLM:
    """LlamaForCausalLM of the RopeGPT config's width, depth, heads, vocabulary and tying, at this MLP width."""
    llama = LlamaConfig(
        vocab_size=config.vocab_size, hidden_size=config.hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=config.num_hidden_layers, num_attention_heads=config.num_attention_heads,
        max_position_embeddings=config.max_position_embeddings, tie_word_embeddings=config.tie_word_embeddings,
        pad_token_id=config.pad_token_id, bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id,
    )
    return LlamaForCausalLM._from_config(llama, attn_implementation="sdpa")


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def muon_optimizer(model: torch.nn.Module) -> MuonWithAdamW:
    """Muon for the hidden matrices and AdamW for the rest, grouped as `--optimizer muon` groups them."""
    decay = {name for name, p in model.named_parameters() if p.ndim >= 2}
    return MuonWithAdamW(param_groups(model, decay, 0.1, 1e-4, muon_lr=1e-4), lr=1e-4)


def train_steps(model, optimizer, ids, steps: int) -> float:
    """Run `steps` optimizer steps on `ids`; return the seconds they took."""
    autocast = torch.autocast(ids.device.type, dtype=torch.bfloat16, enabled=ids.device.type == "cuda")
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        with autocast:
            loss = model(ids, labels=ids, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    sync()
    return time.perf_counter() - start


def generate_seconds(model, prompt, new_tokens: int, use_cache: bool, **kwargs) -> tuple[float, torch.Tensor]:
    """Seconds of one greedy `generate` of exactly `new_tokens`, and the tokens it made."""
    sync()
    start = time.perf_counter()
    out = model.generate(prompt, max_new_tokens=new_tokens, do_sample=False, use_cache=use_cache, **kwargs)
    sync()
    assert out.shape[1] == prompt.shape[1] + new_tokens
    return time.perf_counter() - start, out


def static_compiled_generation(model, prompt, args) -> dict:
    """Generation tokens/s with a static cache and the decoding step compiled by `generate` itself (transformers'
    CompileConfig; fullgraph, so a graph break or a host sync is an error; the prefill runs uncompiled, as
    transformers does it); the first call's seconds (it compiles); and whether the greedy tokens equal the dynamic
    cache's. CUDA graphs ("reduce-overhead") on GPUs, where launch overhead dominates small models; on CPU
    `_compile_all_devices` is CompileConfig's own switch for compiling there too."""
    config = CompileConfig(fullgraph=True, mode="reduce-overhead" if model.device.type == "cuda" else "default")
    config._compile_all_devices = True
    static = dict(cache_implementation="static", compile_config=config)
    first_s, first = generate_seconds(model, prompt, args.new_tokens, True, **static)
    _, reference = generate_seconds(model, prompt, args.new_tokens, True)
    reps = max(2, args.reps // 2)
    best = min(generate_seconds(model, prompt, args.new_tokens, True, **static)[0] for _ in range(reps))
    return {"tok_s": args.new_tokens / best, "first_call_s": first_s, "same_tokens": torch.equal(first, reference)}


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def peak_memory_mb(name: str, args) -> float:
    """Peak training memory of one model: CUDA allocator peak, or resident-memory growth in a fresh subprocess on CPU."""
    if torch.cuda.is_available():
        model = build(name, args.preset).cuda().train()
        ids = batch_of_ids(model, args)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        train_steps(model, torch.optim.AdamW(model.parameters(), lr=1e-4), ids, 2)
        return torch.cuda.max_memory_allocated() / 2**20
    command = [sys.executable, __file__, "--memory-child", name, "--preset", args.preset,
               "--batch", str(args.batch), "--block", str(args.block)]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)["peak_mb"]


def memory_child(name: str, args) -> None:
    """Print the resident-memory peak (MiB) of building one model and training it for 2 steps, as JSON, counted
    from the footprint after imports. Linux: the high-water mark is reset first (/proc/self/clear_refs), because
    importing transformers can peak above what a tiny model's training ever reaches."""
    Path("/proc/self/clear_refs").write_text("5")
    before = proc_status_kib("VmRSS")
    model = build(name, args.preset).train()
    train_steps(model, torch.optim.AdamW(model.parameters(), lr=1e-4), batch_of_ids(model, args), 2)
    print(json.dumps({"peak_mb": (proc_status_kib("VmHWM") - before) / 1024}))


def proc_status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def batch_of_ids(model, args) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(4, model.config.vocab_size, (args.batch, args.block), generator=generator)
    return ids.to(model.device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--block", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3, help="training steps per timed repetition")
    parser.add_argument("--reps", type=int, default=5, help="alternating repetitions per measurement")
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--prompt", type=int, default=16, help="prompt length for generation")
    parser.add_argument("--json", help="also write every row (model, metric, value) to this JSON file")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        return memory_child(args.memory_child, args)
    if args.json and (problem := json_path_problem(args.json)):
        parser.error(problem)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    names = ["ropegpt", "ropegpt-llama-arch", "llama"]
    models = {name: build(name, args.preset).to(device).train() for name in names}
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-4) for name, m in models.items()}
    ids = batch_of_ids(models["llama"], args)
    tokens = args.batch * args.block
    print(f"preset {args.preset}, batch {args.batch} x block {args.block}, {torch.get_num_threads()} threads, "
          f"{device.type}, {'bf16 autocast' if device.type == 'cuda' else 'float32'}, "
          f"load average {os.getloadavg()[0]:.1f} at start", flush=True)

    train = {name: [] for name in names}
    for name in names:  # warm-up: allocator, kernels, optimizer state
        train_steps(models[name], optimizers[name], ids, 1)
    for _ in range(args.reps):
        for name in names:
            train[name].append(tokens * args.steps / train_steps(models[name], optimizers[name], ids, args.steps))
    train_tps = {name: max(v) for name, v in train.items()}

    gen = {(name, cache): [] for name in names for cache in (True, False)}
    prompt = ids[:1, : args.prompt]
    for name, model in models.items():
        model.eval()
        model.generation_config.eos_token_id = None  # always generate exactly --new-tokens
        if device.type == "cuda":
            model.to(torch.bfloat16)
        generate_seconds(model, prompt, 8, use_cache=True)
    for _ in range(max(2, args.reps // 2)):
        for name in names:
            for cache in (True, False):
                seconds, _ = generate_seconds(models[name], prompt, args.new_tokens, cache)
                gen[name, cache].append(args.new_tokens / seconds)
    gen_tps = {key: max(v) for key, v in gen.items()}

    compiled = {name: static_compiled_generation(models[name], prompt, args) for name in ("ropegpt", "llama")}

    recipe_names = ["ropegpt-recipe", "llama-matched"]
    recipe_models = {name: build(name, args.preset).to(device).train() for name in recipe_names}
    recipe_optimizers = {name: muon_optimizer(m) for name, m in recipe_models.items()}
    recipe_ids = batch_of_ids(recipe_models["ropegpt-recipe"], args)
    muon = {name: [] for name in recipe_names}
    for name in recipe_names:
        train_steps(recipe_models[name], recipe_optimizers[name], recipe_ids, 1)
    for _ in range(args.reps):
        for name in recipe_names:
            seconds = train_steps(recipe_models[name], recipe_optimizers[name], recipe_ids, args.steps)
            muon[name].append(tokens * args.steps / seconds)
    muon_tps = {name: max(v) for name, v in muon.items()}

    peak = {name: peak_memory_mb(name, args) for name in names}
    params = {name: count(m) for name, m in models.items()}

    print("\n| model | params | train tok/s | train ratio vs llama | peak train MiB | memory ratio vs llama "
          "| gen tok/s cache | gen tok/s no cache | cache speed-up |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        speedup = gen_tps[name, True] / gen_tps[name, False]
        print(f"| {name} | {params[name] / 1e6:.2f}M | {train_tps[name]:,.0f} | "
              f"{train_tps[name] / train_tps['llama']:.2f} | {peak[name]:,.0f} | {peak[name] / peak['llama']:.2f} | "
              f"{gen_tps[name, True]:,.0f} | {gen_tps[name, False]:,.0f} | {speedup:.1f}x |")

    print(f"\n| model | gen tok/s dynamic cache | gen tok/s static cache + torch.compile(fullgraph) | speed-up "
          f"| first call (compiles) s | same tokens as dynamic |")
    print("|---|---|---|---|---|---|")
    for name, c in compiled.items():
        print(f"| {name} | {gen_tps[name, True]:,.0f} | {c['tok_s']:,.0f} | {c['tok_s'] / gen_tps[name, True]:.2f}x "
              f"| {c['first_call_s']:.1f} | {'yes' if c['same_tokens'] else 'NO'} |")

    print(f"\n| model, the bench recipe ({RECIPE.name}) under Muon + AdamW | params | train tok/s "
          f"| train ratio vs llama-matched |")
    print("|---|---|---|---|")
    for name in recipe_names:
        print(f"| {name} | {count(recipe_models[name]) / 1e6:.2f}M | {muon_tps[name]:,.0f} "
              f"| {muon_tps[name] / muon_tps['llama-matched']:.2f} |")

    if args.json:
        rows = [dict(model=name, params=params[name], train_tok_s=train_tps[name], peak_train_mib=peak[name],
                     gen_tok_s_cache=gen_tps[name, True], gen_tok_s_no_cache=gen_tps[name, False],
                     gen_tok_s_static_compiled=compiled.get(name, {}).get("tok_s"), device=device.type, preset=args.preset)
                for name in names]
        rows += [dict(model=name, params=count(recipe_models[name]), train_tok_s=muon_tps[name], optimizer="muon",
                      device=device.type, preset=args.preset) for name in recipe_names]  # fmt: skip
        write_rows(args.json, rows)

    ratio = train_tps["ropegpt"] / train_tps["llama"]
    memory = peak["ropegpt"] / peak["llama"]
    speedup = gen_tps["ropegpt", True] / gen_tps["ropegpt", False]
    load = os.getloadavg()[0]
    contended = " (above the core count: timings are contended)" if load > (os.cpu_count() or 1) else ""
    print(f"\nload average {load:.1f} at the end{contended}")
    print("\n| target (ropegpt preset row) | measured | met |")
    print("|---|---|---|")
    print(f"| training throughput >= Llama's | {ratio:.2f}x | {'yes' if ratio >= 1.0 else 'NO'} |")
    print(f"| peak training memory <= Llama's | {memory:.2f}x | {'yes' if memory <= 1.0 else 'NO'} |")
    print(f"| cache >= 3x faster than recomputation at {args.new_tokens} new tokens | {speedup:.1f}x | "
          f"{'yes' if speedup >= 3.0 else 'NO'} |")


if __name__ == "__main__":
    main()
