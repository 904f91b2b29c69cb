"""GPU training throughput and model FLOPs utilisation (MFU) of the `base` RoPE GPT in bf16 with SDPA.

    python bench/bench_gpu.py                       # base preset, block 1024, batch 16
    python bench/bench_gpu.py --preset small --block_size 256 --batch_size 64
    python bench/bench_gpu.py --json bench/out/gpu.json   # also the table's rows as JSON

MFU = achieved model FLOPs per second / the GPU's own bf16 matmul peak, measured in the same run with a
large square matmul (not the datasheet figure). Model FLOPs per token follow the PaLM appendix: 6N for the
weights plus 12 * layers * width * sequence for attention (forward + backward). The peer is the same
model in transformers' LlamaForCausalLM of equal shape. Target: MFU >= 40%. Record the command, the GPU's
name and the table in bench/RESULTS.md whenever this is run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.jsonrows import json_path_problem, write_rows  # noqa: E402
from modeling import RopeGPTConfig, RopeGPTForCausalLM  # noqa: E402


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def matmul_peak_tflops(device: str = "cuda", n: int = 8192, iters: int = 50) -> float:
    """The device's sustained bf16 matmul rate on an n x n x n product, in TFLOP/s."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(5):
        a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(iters):
        a @ b
    synchronize(device)
    return 2 * n**3 * iters / (time.perf_counter() - start) / 1e12


def flops_per_token(config, block_size: int, gated_mlp: bool | None = None) -> float:
    """Training FLOPs per token: 6 x the matmul weights (attention, MLP, output head) + attention's 12 * L * d * T.

    `gated_mlp` (three MLP matrices, SwiGLU) defaults to what a RopeGPTConfig says; pass True for Llama.
    """
    d, layers, vocab = config.hidden_size, config.num_hidden_layers, config.vocab_size
    if gated_mlp is None:
        gated_mlp = getattr(config, "mlp_type", "gelu") == "swiglu"
    per_layer = 4 * d * d + (3 if gated_mlp else 2) * d * config.intermediate_size
    weights = layers * per_layer + vocab * d  # the output head is a matmul even when tied
    return 6 * weights + 12 * layers * d * block_size


def llama_twin(config):
    from transformers import LlamaConfig, LlamaForCausalLM

    twin = LlamaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        max_position_embeddings=config.max_position_embeddings,
        tie_word_embeddings=True,
    )
    twin._attn_implementation = "sdpa"
    return LlamaForCausalLM(twin)


def train_tokens_per_second(
    model, config, batch_size: int, block_size: int, steps: int, compile_model: bool, device: str = "cuda"
) -> float:
    """Steady-state training tokens/s (AdamW, bf16 autocast, SDPA) after warm-up steps."""
    model = model.to(device).train()
    if compile_model:
        model = torch.compile(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, fused=device == "cuda")
    ids = torch.randint(0, config.vocab_size, (batch_size, block_size), device=device)

    def step():
        with torch.autocast(device, dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(5):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return batch_size * block_size * steps / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="base")
    parser.add_argument("--block_size", type=int, default=1024)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                        help="cpu: a smoke run of this script's code path (its figures mean nothing)")
    parser.add_argument("--json", help="also write the table's rows to this JSON file (nothing without a GPU)")
    args = parser.parse_args()
    if args.json and (problem := json_path_problem(args.json)):
        parser.error(problem)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_gpu.py: no CUDA GPU here; run it where one is (results go to bench/RESULTS.md)")
        return 0
    config = RopeGPTConfig.from_preset(args.preset, max_position_embeddings=max(args.block_size, 256))
    config._attn_implementation = "sdpa"
    on_gpu = args.device == "cuda"
    peak = matmul_peak_tflops(args.device, n=8192 if on_gpu else 256, iters=50 if on_gpu else 3)
    peers = (
        ("RopeGPT", lambda: RopeGPTForCausalLM(config), flops_per_token(config, args.block_size)),
        ("Llama (transformers)", lambda: llama_twin(config), flops_per_token(config, args.block_size, gated_mlp=True)),
    )
    rows = []
    for name, build, fpt in peers:
        for compiled in (False, True) if args.compile else (False,):
            torch.manual_seed(0)
            tps = train_tokens_per_second(
                build(), config, args.batch_size, args.block_size, args.steps, compiled, args.device
            )
            rows.append((name + (" + compile" if compiled else ""), tps, tps * fpt / 1e12 / peak))
            if on_gpu:
                torch.cuda.empty_cache()
    fpt = peers[0][2]
    name = torch.cuda.get_device_name() if on_gpu else "CPU (smoke run)"
    print(f"device: {name} | bf16 matmul peak measured: {peak:.2f} TFLOP/s")
    print(f"preset {args.preset}, block {args.block_size}, batch {args.batch_size}, {fpt / 1e9:.2f} GFLOP/token\n")
    print("| model | tokens/s | MFU | target MFU >= 40% |")
    print("|---|---:|---:|---|")
    for name, tps, mfu in rows:
        print(f"| {name} | {tps:,.0f} | {100 * mfu:.1f}% | {'met' if mfu >= 0.40 else 'missed'} |")
    if args.json:
        device = torch.cuda.get_device_name() if on_gpu else "cpu"
        write_rows(args.json, [{"name": n, "tok_s": tps, "mfu": mfu, "device": device, "peak_tflops": peak,
                                "preset": args.preset, "block": args.block_size, "batch": args.batch_size,
                                "gflop_per_token": fpt / 1e9} for n, tps, mfu in rows])
    return 0


if __name__ == "__main__":
    sys.exit(main())
