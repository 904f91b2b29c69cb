"""Training throughput through train_clm.py's Trainer path beside a bare PyTorch loop, measured in the same run.

    .venv/bin/python bench/bench_train.py                  # tiny preset, blocks of 128, ~2 minutes on 2 CPU cores
    .venv/bin/python bench/bench_train.py --reps 5 --steps 60 --threads 1
    .venv/bin/python bench/bench_train.py --json bench/out/train.json   # also the table's rows as JSON

Target (the issue): training throughput through `train_clm.py` within 5% of a bare PyTorch loop over the
same model and batches.

Both sides train the same model (recipes/tolstoy_tiny.yaml's: RopeGPT `tiny`, byte-level BPE 4096, blocks of
128; batch 16, AdamW and cosine rather than the recipe's Muon and warm-up/stable/decay, so that the bare loop can
rebuild Trainer's own optimizer; clip 1.0) from the same initial weights, on the same batches: the bare loop
replays the batches that the Trainer's own train dataloader yields (collected once, untimed), so the
comparison isolates what Trainer adds per step, data loading and collation included. The Trainer side is
built exactly as train_clm.main builds it (training.arguments.parse_arguments → training.models.build_config/
build_model → training.trainer.build_trainer, i.e. CLMTrainer with our callbacks), with evaluation, saving and
reporting off and logging_steps large; dataloader_num_workers 0. The bare loop uses the optimizer class and
arguments Trainer picks (Trainer.get_optimizer_cls_and_kwargs), the same weight-decay groups, the same
scheduler and gradient clipping.

Steady-state tokens/s: each repetition is a fresh run of `--warmup + --steps` optimizer steps; the clock
covers the last `--steps` of them (timestamps at the end of each step, so data loading counts on both
sides). Repetitions alternate Trainer, bare, Trainer, bare ... so that load changes hit both; the table
shows the median and the best repetition per side, and the ratio of the medians (the best on a shared
machine is the least disturbed estimate and is shown too).
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.preamble import scratch_dir  # noqa: E402  (sets the environment before the libraries load)

import torch  # noqa: E402
import transformers  # noqa: E402
from datasets import Dataset, DatasetDict  # noqa: E402
from transformers import PrinterCallback, Trainer, TrainerCallback, get_scheduler, set_seed  # noqa: E402

from bench.jsonrows import json_path_problem, write_rows  # noqa: E402
from corpora import read_text_file  # noqa: E402
from tokenizer_training import train_tokenizer  # noqa: E402
from training.arguments import parse_arguments  # noqa: E402
from training.blocks import prepare_blocks  # noqa: E402
from training.models import build_config, build_model  # noqa: E402
from training.trainer import build_trainer  # noqa: E402

TEXT = ROOT.parent / "shared" / "corpora" / "tolstoy" / "txt" / "war_and_peace_book1_vol1-2.utf8.txt"
RECIPE = ROOT / "recipes" / "tolstoy_tiny.yaml"
TARGET = 0.95  # Trainer tokens/s at least 95% of the bare loop's


class StepClock(TrainerCallback):
    """perf_counter() at the end of every optimizer step."""

    def __init__(self):
        self.stamps: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.stamps.append(time.perf_counter())


def setup(args):
    """Arguments parsed as train_clm does, the tokenizer, the blocks, and the initial weights."""
    words = [str(RECIPE), "--output_dir", scratch_dir("ropegpt-bench-train-"),
             "--max_steps", str(args.warmup + args.steps),
             "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false",
             "--report_to", "none", "--logging_steps", "100000", "--disable_tqdm", "true",
             "--dataloader_num_workers", "0", "--block_size", str(args.block),
             "--per_device_train_batch_size", str(args.batch),
             # the bare loop rebuilds Trainer's own optimizer and schedule: AdamW and cosine, not the recipe's Muon
             "--optimizer", "adamw", "--lr_scheduler_type", "cosine", "--lr_scheduler_kwargs", "{}"]
    model_args, data_args, run_args, training_args, _ = parse_arguments(words)
    run_args.sample_prompts = []
    text = read_text_file(TEXT)
    docs = [text[i : i + 100_000] for i in range(0, len(text), 100_000)]
    dd = DatasetDict({"train": Dataset.from_dict({"text": docs}), "validation": Dataset.from_dict({"text": docs[:1]})})
    tokenizer = train_tokenizer(dd["train"]["text"], kind=data_args.tokenizer_kind, vocab_size=data_args.vocab_size,
                                model_max_length=data_args.block_size)
    blocks, _ = prepare_blocks(dd, tokenizer, data_args.block_size)
    set_seed(training_args.seed)
    model = build_model(build_config(model_args, tokenizer, data_args.block_size))
    return model_args, run_args, training_args, tokenizer, blocks, copy.deepcopy(model.state_dict()), model


def trainer_run(model, init, tokenizer, blocks, training_args, run_args):
    """One Trainer run from `init`; returns the step timestamps and the batches its dataloader yielded."""
    model.load_state_dict(init)
    set_seed(training_args.seed)
    trainer = build_trainer(model, tokenizer, blocks, training_args, run_args)
    trainer.remove_callback(PrinterCallback)
    clock = StepClock()
    trainer.add_callback(clock)
    trainer.train()
    return clock.stamps, trainer


def trainer_batches(trainer, n: int) -> list[dict]:
    """The first `n` batches of the Trainer's own train dataloader (same seed, same order, same collator)."""
    set_seed(trainer.args.seed)
    out = []
    for batch in trainer.get_train_dataloader():
        out.append({k: v.clone() for k, v in batch.items()})
        if len(out) == n:
            break
    return out


def bare_run(model, init, batches, training_args):
    """The same steps in a plain loop: forward, backward, clip, AdamW, scheduler; returns step timestamps."""
    model.load_state_dict(init)
    model.train()
    optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(training_args, model)
    decay = set(Trainer.get_decay_parameter_names(None, model))
    groups = [
        {"params": [p for n, p in model.named_parameters() if n in decay], "weight_decay": training_args.weight_decay},
        {"params": [p for n, p in model.named_parameters() if n not in decay], "weight_decay": 0.0},
    ]
    optimizer = optimizer_cls(groups, **optimizer_kwargs)
    steps = len(batches)
    scheduler = get_scheduler(training_args.lr_scheduler_type, optimizer,
                              num_warmup_steps=training_args.get_warmup_steps(steps), num_training_steps=steps)
    stamps = []
    for batch in batches:
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), training_args.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        stamps.append(time.perf_counter())
    return stamps


def steady_tps(stamps: list[float], warmup: int, tokens_per_step: int) -> float:
    """Tokens per second over the steps after the first `warmup` (from the end of step `warmup`)."""
    timed = stamps[warmup:]
    return tokens_per_step * (len(stamps) - warmup) / (timed[-1] - stamps[warmup - 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="timed optimizer steps per repetition")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps at the start of each repetition")
    parser.add_argument("--reps", type=int, default=4, help="alternating repetitions per side")
    parser.add_argument("--block", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write the table's rows to this JSON file")
    args = parser.parse_args()
    if args.json and (problem := json_path_problem(args.json)):
        parser.error(problem)
    torch.set_num_threads(args.threads)
    transformers.utils.logging.set_verbosity_error()
    warnings.filterwarnings("ignore")

    model_args, run_args, training_args, tokenizer, blocks, init, model = setup(args)
    tokens_per_step = args.batch * args.block
    n_steps = args.warmup + args.steps
    print(f"{model_args.model_type} {model_args.preset}, {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M "
          f"params, {tokenizer.__class__.__name__} {len(tokenizer)}, batch {args.batch} x block {args.block}, "
          f"{torch.get_num_threads()} threads, optimizer {training_args.optim}; load average "
          f"{os.getloadavg()[0]:.2f} at start", flush=True)
    results = {"train_clm.py (Trainer)": [], "bare PyTorch loop": []}
    batches = None
    for rep in range(args.reps):
        stamps, trainer = trainer_run(model, init, tokenizer, blocks, training_args, run_args)
        assert len(stamps) == n_steps, len(stamps)
        results["train_clm.py (Trainer)"].append(steady_tps(stamps, args.warmup, tokens_per_step))
        if batches is None:
            batches = trainer_batches(trainer, n_steps)
        results["bare PyTorch loop"].append(steady_tps(bare_run(model, init, batches, training_args), args.warmup,
                                                       tokens_per_step))
        print(f"rep {rep + 1}: Trainer {results['train_clm.py (Trainer)'][-1]:.0f} tok/s, "
              f"bare {results['bare PyTorch loop'][-1]:.0f} tok/s", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at end\n")

    med = {k: statistics.median(v) for k, v in results.items()}
    best = {k: max(v) for k, v in results.items()}
    bare = "bare PyTorch loop"
    rows = []
    print("| path | median tokens/s | best tokens/s | ratio to bare (median) | ratio to bare (best) | target met (≥ 0.95) |")
    print("|---|---:|---:|---:|---:|---|")
    for name in results:
        ratio, ratio_best = med[name] / med[bare], best[name] / best[bare]
        met = "" if name == bare else ("yes" if ratio >= TARGET else "no")
        print(f"| {name} | {med[name]:.0f} | {best[name]:.0f} | {ratio:.3f} | {ratio_best:.3f} | {met} |")
        rows.append({"name": name, "median_tok_s": med[name], "best_tok_s": best[name], "ratio_median": ratio,
                     "ratio_best": ratio_best, "reps": results[name], "batch": args.batch, "block": args.block,
                     "threads": torch.get_num_threads()})
    if args.json:
        write_rows(args.json, rows)


if __name__ == "__main__":
    main()
