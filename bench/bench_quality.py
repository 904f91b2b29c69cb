"""Quality in a fixed wall-clock budget: validation bits per byte after 100 s of training on 2 CPU cores.

    .venv/bin/python bench/bench_quality.py                      # all four models, 100 s each (~8 minutes)
    .venv/bin/python bench/bench_quality.py --quick              # 10 s each, a smoke run
    .venv/bin/python bench/bench_quality.py --only ours          # one model: ours | gpt2 | llama | lstm
    .venv/bin/python bench/bench_quality.py --only ours --max-steps 1500 --threads 1   # tuning at a fixed step count

Data: the text of `war_and_peace_book1_vol1-2.utf8.txt` (corpora.read_text_file), cut at 90% of its
characters: the first 90% trains, the last 10% validates; `detstvo_childhood.utf8bom.txt` is a text none
of the models ever sees. Each side is chunked into documents at paragraph boundaries and goes through the
project's `corpora.blocks.prepare_blocks` with the model's own tokenizer (trained on the train side only).

Models, all trained by the project's Trainer path (training.models.build_config/build_model,
training.run.build_trainer: CLMTrainer + TokenNLL metrics), so every number is measured the same way:
- `ours`: recipes/tolstoy_bench_best.yaml (RopeGPT, byte-level BPE);
- `lstm`: recipes/char_lstm.yaml (the char LSTM baseline, unchanged);
- `gpt2`, `llama`: transformers' GPT2LMHeadModel and LlamaForCausalLM in nanoGPT's documented CPU
  configuration (character level, 4 layers, 4 heads, width 128, block 64, batch 12, AdamW lr 1e-3 cosine
  to 1e-4, 100 warm-up steps, no dropout; nanoGPT's beta2 0.99, weight decay 0.1, clip 1.0; MLP 512).

Budget: only training counts (from Trainer's on_train_begin to the last optimizer step); tokenizer training,
tokenization and evaluation are outside it. The schedule is time-based: linear warm-up over the recipe's
warm-up steps, then cosine decay over the *elapsed fraction of the budget* down to the recipe's floor
(min_lr / min_lr_rate in lr_scheduler_kwargs, else 0), and a TrainerCallback stops training at the budget.
So the decay always completes exactly when the budget runs out, whatever the machine's load; a step-count
schedule calibrated from a few warm-up steps would stop early or mid-decay when the load changes.
`--max-steps N` instead trains a fixed number of steps with the same schedule over steps (for tuning on
a loaded machine; the wall-clock budget is then not applied).

Bits per byte = summed NLL (nats) / ln 2 / UTF-8 bytes of the predicted tokens (training.evaluation),
evaluated at each model's own block size over the whole validation text.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
_TMP = tempfile.mkdtemp(prefix="ropegpt-bench-quality-")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import transformers  # noqa: E402
from datasets import Dataset, DatasetDict  # noqa: E402
from transformers import PrinterCallback, TrainerCallback, set_seed  # noqa: E402

from corpora import read_text_file  # noqa: E402
from corpora.blocks import prepare_blocks  # noqa: E402
from tokenizer_training import train_tokenizer  # noqa: E402
from training.arguments import parse_arguments  # noqa: E402
from training.models import build_config, build_model  # noqa: E402
from training.run import build_trainer  # noqa: E402

TXT = ROOT.parent / "shared" / "corpora" / "tolstoy" / "txt"
SPLIT_FILE = TXT / "war_and_peace_book1_vol1-2.utf8.txt"
UNSEEN_FILE = TXT / "detstvo_childhood.utf8bom.txt"
TRAIN_SHARE = 0.9
TARGET_BPB = 1.15
BIG = 10**7  # max_steps when the budget, not a step count, ends training

# nanoGPT's documented CPU run (README "I only have a macbook"), shared by both peers.
NANOGPT_CPU = [
    "--tokenizer_kind", "char", "--vocab_size", "512", "--block_size", "64",
    "--per_device_train_batch_size", "12", "--learning_rate", "1e-3", "--warmup_steps", "100",
    "--lr_scheduler_type", "cosine_with_min_lr", "--lr_scheduler_kwargs", '{"min_lr": 1e-4}',
    "--weight_decay", "0.1", "--adam_beta2", "0.99", "--max_grad_norm", "1.0",
]
MODELS = {
    "ours": ["recipes/tolstoy_bench_best.yaml"],
    "gpt2": ["--model_type", "gpt2", "--config_overrides",
             "n_layer=4,n_head=4,n_embd=128,n_inner=512,n_positions=64,"
             "resid_pdrop=0,embd_pdrop=0,attn_pdrop=0", *NANOGPT_CPU],
    "llama": ["--model_type", "llama", "--config_overrides",
              "num_hidden_layers=4,num_attention_heads=4,num_key_value_heads=4,hidden_size=128,head_dim=32,"
              "intermediate_size=512,tie_word_embeddings=true,attention_dropout=0", *NANOGPT_CPU],
    "lstm": ["recipes/char_lstm.yaml"],
}
LABELS = {"ours": "RopeGPT (bench_best recipe)", "lstm": "char LSTM (char_lstm recipe)",
          "gpt2": "GPT2LMHeadModel (nanoGPT CPU)", "llama": "LlamaForCausalLM (nanoGPT CPU)"}


def split_text(path: Path = SPLIT_FILE, train_share: float = TRAIN_SHARE) -> tuple[str, str]:
    """The file's text cut at a character index: (first `train_share` of the characters, the rest)."""
    text = read_text_file(path)
    cut = int(len(text) * train_share)
    return text[:cut], text[cut:]


def documents(text: str, max_chars: int = 100_000) -> list[str]:
    """`text` in consecutive chunks of at most about `max_chars`, cut only at paragraph boundaries."""
    out, start = [], 0
    while start < len(text):
        end = len(text) if len(text) - start <= max_chars else text.rfind("\n", start, start + max_chars)
        if end <= start:
            end = min(len(text), start + max_chars)
        out.append(text[start:end])
        start = end + 1 if end < len(text) and text[end] == "\n" else end
    return out


def text_splits() -> DatasetDict:
    """train / validation (the 90/10 cut) / unseen (Detstvo) as datasets of documents."""
    train, validation = split_text()
    unseen = read_text_file(UNSEEN_FILE)
    return DatasetDict({name: Dataset.from_dict({"text": documents(t)})
                        for name, t in (("train", train), ("validation", validation), ("unseen", unseen))})


class TimeCosine:
    """LR multiplier: linear warm-up over `warmup` steps, then cosine from 1 to `floor` over `progress()`."""

    def __init__(self, warmup: int, floor: float, progress):
        self.warmup, self.floor, self.progress = warmup, floor, progress

    def __call__(self, step: int) -> float:
        warm = min(1.0, (step + 1) / self.warmup) if self.warmup > 0 else 1.0
        p = min(1.0, max(0.0, self.progress(step)))
        return warm * (self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * p)))


class WallClock(TrainerCallback):
    """Times training from on_train_begin; stops it once `budget` seconds have passed (None: never)."""

    def __init__(self, budget: float | None):
        self.budget, self.start, self.end = budget, None, None

    def elapsed(self) -> float:
        return 0.0 if self.start is None else time.perf_counter() - self.start

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.end = time.perf_counter()
        if self.budget is not None and self.end - self.start >= self.budget:
            control.should_training_stop = True


def lr_floor(training_args) -> float:
    """The decay floor as a share of the peak rate, from the scheduler's kwargs (0 for plain cosine)."""
    kwargs = training_args.lr_scheduler_kwargs or {}
    if "min_lr_rate" in kwargs:
        return float(kwargs["min_lr_rate"])
    if "min_lr" in kwargs:
        return float(kwargs["min_lr"]) / training_args.learning_rate
    return 0.0


def run_model(name: str, words: list[str], splits: DatasetDict, args, cache: dict) -> dict:
    """Train one model for the budget (or --max-steps) and evaluate it; returns a row of the table."""
    out_dir = os.path.join(_TMP, name)
    fixed = ["--output_dir", out_dir, "--eval_strategy", "no", "--save_strategy", "no",
             "--load_best_model_at_end", "false", "--report_to", "none", "--logging_steps", str(BIG),
             "--disable_tqdm", "true", "--dataloader_num_workers", "0", "--per_device_eval_batch_size", "32",
             "--seed", str(args.seed)]
    model_args, data_args, run_args, training_args, _ = parse_arguments(
        [*words, *(shlex.split(args.ours_args) if name == "ours" else []), *fixed], default_recipe=None)
    run_args.sample_prompts = []  # no sampling at evaluation: it is not what we measure
    warmup = training_args.get_warmup_steps(args.max_steps or training_args.max_steps)
    training_args.max_steps = args.max_steps or BIG
    set_seed(args.seed)

    key = (data_args.tokenizer_kind, data_args.vocab_size, data_args.block_size)
    if key not in cache:
        tokenizer = train_tokenizer(splits["train"]["text"], kind=data_args.tokenizer_kind,
                                    vocab_size=data_args.vocab_size, model_max_length=data_args.block_size)
        blocks, _ = prepare_blocks(splits, tokenizer, data_args.block_size)
        cache[key] = tokenizer, blocks
    tokenizer, blocks = cache[key]
    config = build_config(model_args, tokenizer, data_args.block_size)
    model = build_model(config)
    params = sum(p.numel() for p in model.parameters())

    clock = WallClock(None if args.max_steps else args.budget)
    trainer = build_trainer(model, tokenizer, blocks, training_args, run_args)
    trainer.add_callback(clock)
    trainer.remove_callback(PrinterCallback)  # the table is the output, not per-log dicts
    if args.max_steps:
        progress = lambda step: step / args.max_steps  # noqa: E731
    else:
        progress = lambda step: clock.elapsed() / args.budget  # noqa: E731
    # The optimizer is Trainer's own (AdamW, decay off for biases and norms); only the schedule is ours.
    trainer.create_optimizer()
    trainer.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
        trainer.optimizer, TimeCosine(warmup, lr_floor(training_args), progress))
    trainer.train()
    seconds = clock.end - clock.start
    steps = trainer.state.global_step
    batch = training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
    val = trainer.evaluate(blocks["validation"])["eval_bits_per_byte"]
    unseen = trainer.evaluate(blocks["unseen"])["eval_bits_per_byte"]
    return {
        "model": LABELS[name], "tokenizer": f"{data_args.tokenizer_kind} {len(tokenizer)}", "params": params,
        "steps": steps, "seconds": seconds, "tokens": steps * batch * data_args.block_size,
        "val": val, "unseen": unseen, "name": name,
    }


def table(rows: list[dict], budget_note: str) -> str:
    lines = [
        f"| model | tokenizer | params | steps done in {budget_note} | train tokens seen | validation bpb "
        "| detstvo bpb | target met (≤ 1.15) |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        met = ("yes" if r["val"] <= TARGET_BPB else "no") if r["name"] == "ours" else "(peer)"
        lines.append(
            f"| {r['model']} | {r['tokenizer']} | {r['params'] / 1e6:.2f}M | {r['steps']} ({r['seconds']:.0f} s) "
            f"| {r['tokens'] / 1e6:.2f}M | {r['val']:.3f} | {r['unseen']:.3f} | {met} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=100.0, help="training seconds per model")
    parser.add_argument("--quick", action="store_true", help="a 10 s budget (smoke run)")
    parser.add_argument("--only", choices=sorted(MODELS), action="append", help="run only these models")
    parser.add_argument("--max-steps", type=int, default=0, help="train this many steps instead of the budget")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (2: the benchmark's machine)")
    parser.add_argument("--ours-args", default="", help="extra arguments for our recipe, e.g. '--learning_rate 3e-3'")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.quick:
        args.budget = 10.0
    torch.set_num_threads(args.threads)
    transformers.utils.logging.set_verbosity_error()
    warnings.filterwarnings("ignore")
    names = args.only or ["ours", "lstm", "gpt2", "llama"]
    load = os.getloadavg()[0]
    print(f"{torch.get_num_threads()} torch threads, load average {load:.2f} at start; "
          f"{'%d steps' % args.max_steps if args.max_steps else '%.0f s budget' % args.budget} per model", flush=True)
    splits = text_splits()
    cache: dict = {}
    rows = []
    for name in names:
        row = run_model(name, MODELS[name], splits, args, cache)
        rows.append(row)
        print(f"{name}: {row['steps']} steps in {row['seconds']:.1f} s, {row['tokens'] / row['seconds']:.0f} tok/s, "
              f"val {row['val']:.4f}, detstvo {row['unseen']:.4f}", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at end\n")
    print(table(rows, f"{args.max_steps} steps" if args.max_steps else f"{args.budget:.0f} s"))


if __name__ == "__main__":
    main()
