"""Data preparation, corpus -> BPE tokenizer -> 256-token blocks, beside transformers' run_clm.py way.

    .venv/bin/python bench/bench_pipeline.py            # all of ../shared/corpora/tolstoy/txt, then War and Peace alone
    .venv/bin/python bench/bench_pipeline.py --quick    # one small file, a smoke run of a few seconds
    .venv/bin/python bench/bench_pipeline.py --json bench/out/pipeline.json   # also the stage rows as JSON

Stages (ours): `corpus` (corpora.prepare_corpus writes the DatasetDict, then it is loaded back, as the
CLI chain does), `tokenizer` (train_tokenizer, byte-level BPE), `tokenize` (training.blocks.tokenize_dataset)
and `group` (training.blocks.group_blocks). The peer is run_clm.py's preprocessing, written out below as
it is there: `map(tokenizer(examples["text"]))` then `map(group_texts)`, both batched with datasets'
default batch size of 1000, on the same DatasetDict and the same tokenizer. The corpus and tokenizer
stages have no peer (run_clm starts from a loaded dataset and a pretrained tokenizer).

Every measurement runs on a fresh copy of the corpus in a fresh temporary folder, so datasets' cache
files are written, never read; tokenize and group are repeated `--repeats` times alternating ours and
the peer, and the median is shown. MB/s is UTF-8 megabytes (10^6) of corpus text per second.
Targets (2 CPU cores): the complete War and Peace prepared in under 30 s, and our tokenization no
slower than run_clm's.

    .venv/bin/python bench/bench_pipeline.py --scale 10MB 100MB 1GB   # corpora of a gigabyte (a quiet machine)

`--scale` generates corpora of the given sizes on the fly into a temporary folder (never committed):
word-level Markov text (word bigrams) from the shared Tolstoy and Tatar books, in files of 10 MB. Each size
runs in a fresh child process, as a user would: `python -m corpora --source text --streaming true` (documents
streamed through cleaning into Arrow files on disk), a BPE tokenizer trained on a seeded sample
(`--tokenizer_sample_bytes`, default 50 MB, read in contiguous runs), then tokenization with `num_proc` =
CPUs and grouping into blocks. It prints wall and CPU seconds per stage (CPU: user + system of the child and
all its descendants, see `tree_cpu_seconds`), CPU seconds per 100 MB, and memory: the peaks over the run of the summed
RSS, PSS and anonymous PSS of the child and all its descendants (the `num_proc` workers), sampled every
0.1 s and also shown per stage (see `TreeRSS`; the RSS sum counts pages shared after the fork once per
process, an upper bound; PSS shares them out; its anonymous part leaves out the memory-mapped Arrow
files, page cache the kernel can drop). Beside them the exact per-process peaks (`ru_maxrss`) of the main process and
of the largest worker, and the 1-minute load average before and after each size. `--json` writes the rows.
Targets: time linear in size (CPU seconds per MB of the largest within 1.5x of the smallest's: wall seconds
on shared cores measure the load beside the run as much as the run) and the summed RSS <= 3 GB at 1 GB.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from itertools import chain
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TXT = ROOT.parent / "shared" / "corpora" / "tolstoy" / "txt"
WAR_AND_PEACE = TXT / "war_and_peace_full.libru_txt.cp1251.txt"
QUICK_FILE = TXT / "posle_bala_after_the_ball.utf8bom.txt"

_TMP = tempfile.mkdtemp(prefix="ropegpt-bench-pipeline-")
# datasets must not find caches from an earlier run: its home goes into this run's temporary folder.
os.environ["HF_HOME"] = os.path.join(_TMP, "hf")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import datasets  # noqa: E402
import transformers  # noqa: E402
from datasets import load_from_disk  # noqa: E402

from bench.jsonrows import json_path_problem, write_rows  # noqa: E402
from corpora import CorpusArguments, prepare_corpus  # noqa: E402
from tokenizer_training import train_tokenizer  # noqa: E402
from training.blocks import group_blocks, tokenize_dataset  # noqa: E402


def run_clm_tokenize(dd, tokenizer):
    """run_clm.py's tokenize_function and map (its default: batched, batch_size 1000, original columns removed)."""
    column_names = list(dd["train"].features)

    def tokenize_function(examples):
        return tokenizer(examples["text"])

    return dd.map(tokenize_function, batched=True, remove_columns=column_names, desc="run_clm tokenize")


def run_clm_group(tokenized, block_size: int):
    """run_clm.py's group_texts map: the remainder of every 1000-row batch is dropped."""

    def group_texts(examples):
        concatenated_examples = {k: list(chain(*examples[k])) for k in examples.keys()}
        total_length = len(concatenated_examples[list(examples.keys())[0]])
        if total_length >= block_size:
            total_length = (total_length // block_size) * block_size
        result = {
            k: [t[i : i + block_size] for i in range(0, total_length, block_size)]
            for k, t in concatenated_examples.items()
        }
        result["labels"] = result["input_ids"].copy()
        return result

    return tokenized.map(group_texts, batched=True, desc=f"run_clm group_texts {block_size}")


def timed(fn, *args, **kwargs):
    """(result, seconds) of one call."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def fresh_copy(dd, tag: str):
    """The DatasetDict saved into a new folder and loaded back: on disk (so maps are cached) and cache-free."""
    path = tempfile.mkdtemp(prefix=f"{tag}-", dir=_TMP)
    dd.save_to_disk(path)
    return load_from_disk(path)


def text_bytes(dd) -> int:
    return sum(len(t.encode("utf-8")) for split in dd.values() for t in split["text"])


def build(inputs: list[Path], tag: str, max_doc_chars: int = 20000):
    """Corpus stage: prepare_corpus into a fresh folder, then load it. Returns (DatasetDict, seconds)."""
    out = Path(_TMP) / f"corpus-{tag}"
    args = CorpusArguments(source="text", inputs=[str(p) for p in inputs], output_dir=str(out),
                           validation_split=0.05, seed=0, max_doc_chars=max_doc_chars)
    start = time.perf_counter()
    dd = load_from_disk(str(prepare_corpus(args)))
    return dd, time.perf_counter() - start


def ours_blocks(dd, tokenizer, block_size: int):
    """(tokenize seconds, group seconds, blocks) of our pipeline on a fresh copy of dd."""
    dd = fresh_copy(dd, "ours")
    tokenized, t_tok = timed(tokenize_dataset, dd, tokenizer)
    blocks, t_group = timed(group_blocks, tokenized, block_size, pad_token_id=tokenizer.pad_token_id)
    return t_tok, t_group, blocks


def peer_blocks(dd, tokenizer, block_size: int):
    """(tokenize seconds, group seconds, blocks) of run_clm's way on a fresh copy of dd."""
    dd = fresh_copy(dd, "peer")
    tokenized, t_tok = timed(run_clm_tokenize, dd, tokenizer)
    blocks, t_group = timed(run_clm_group, tokenized, block_size)
    return t_tok, t_group, blocks


def full_preparation(inputs: list[Path], vocab_size: int, block_size: int) -> tuple[float, int]:
    """Seconds and UTF-8 bytes for corpus -> tokenizer -> blocks, ours only, from nothing."""
    start = time.perf_counter()
    dd, _ = build(inputs, "target")
    tokenizer = train_tokenizer(dd["train"]["text"], "bpe", vocab_size)
    dd = fresh_copy(dd, "target")
    group_blocks(tokenize_dataset(dd, tokenizer), block_size, pad_token_id=tokenizer.pad_token_id)
    return time.perf_counter() - start, text_bytes(dd)


# ---------------------------------------------------------------- --scale: corpora of a gigabyte

SCALE_SOURCES = [TXT, ROOT.parent / "shared" / "corpora" / "tatar" / "books"]
SCALE_FILE_BYTES = 10_000_000


def size_label(n_bytes: int) -> str:
    """10**9 -> '1 GB', 10**8 -> '100 MB', 2_500_000 -> '2.5 MB' (decimal units, as parse_size reads them)."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:g} {unit}"
    return f"{n_bytes} B"


def parse_size(text: str) -> int:
    """'10MB' -> 10_000_000, '1GB' -> 10**9 (decimal units, as MB/s is)."""
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9}
    number, unit = text[:-2], text[-2:].upper()
    if unit not in units or not number.replace(".", "", 1).isdigit():
        raise argparse.ArgumentTypeError(f"size {text!r}: give e.g. 10MB, 100MB or 1GB")
    return int(float(number) * units[unit])


def markov_corpus(out_dir: Path, n_bytes: int, seed: int = 0) -> Path:
    """Write about `n_bytes` of word-bigram Markov text learnt from the shared books into `out_dir` (files of 10 MB).

    Realistic for the pipeline: Russian and Tatar words and punctuation in their real frequencies,
    paragraphs of 40-200 words, documents that never repeat, so de-duplication and BPE see real work.
    Thousands of paragraphs are walked at once, one numpy step advancing every chain by a word: a gigabyte
    takes a minute or two, where a Python loop over words took half an hour.
    """
    import numpy as np

    from corpora import find_text_files, read_text_file

    ids: dict[str, int] = {}
    pairs = []  # (word, next word) id pairs within each book
    for path in find_text_files([p for p in SCALE_SOURCES if p.exists()]):
        text_ids = np.array([ids.setdefault(w, len(ids)) for w in read_text_file(path).split()])
        pairs.append(np.stack([text_ids[:-1], text_ids[1:]], axis=1))
    pairs = np.concatenate(pairs)
    pairs = pairs[np.argsort(pairs[:, 0], kind="stable")]
    followers = pairs[:, 1]  # those of word w: followers[first[w] : first[w] + count[w]], repeats kept (frequencies)
    count = np.bincount(pairs[:, 0], minlength=len(ids))
    first = np.cumsum(count) - count
    words = np.array(list(ids), dtype=object)
    starts = np.array([i for w, i in ids.items() if w[:1].isupper()])
    rng = np.random.default_rng(seed)

    def paragraphs(k: int) -> list[str]:
        chains = np.empty((k, 201), dtype=np.int64)
        chains[:, 0] = rng.choice(starts, k)
        for step in range(1, 201):
            word, c = chains[:, step - 1], count[chains[:, step - 1]]
            picked = followers[np.minimum(first[word] + (rng.random(k) * c).astype(np.int64), len(followers) - 1)]
            chains[:, step] = np.where(c > 0, picked, rng.choice(starts, k))  # a book's last word: start anew
        lengths = rng.integers(41, 202, k)
        return [" ".join(row[:n]) for row, n in zip(words[chains], lengths)]

    out_dir.mkdir(parents=True, exist_ok=True)
    written, index = 0, 0
    while written < n_bytes:
        size, lines = 0, []
        target = min(SCALE_FILE_BYTES, n_bytes - written)
        while size < target:
            for line in paragraphs(2000):
                lines.append(line)
                size += len(line.encode("utf-8")) + 1
                if size >= target:
                    break
        (out_dir / f"markov_{index:04d}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        written, index = written + size, index + 1
    return out_dir


class TreeRSS:
    """Peak resident memory of this process and all its descendants together (the `num_proc` workers).

    A thread lists the process tree (psutil, which accelerate installs) every `interval` seconds, reads
    each process's /proc/PID/smaps_rollup and keeps the peaks per stage of three sums: RSS, which counts a
    page shared by several processes (copy-on-write after the fork, memory-mapped Arrow files read by
    several workers) once per process and so errs on the high side; PSS, which shares such a page out
    among them; and the anonymous part of PSS (the heap: what the kernel cannot drop and read again). PSS
    less its anonymous part is mostly the memory-mapped Arrow files, page cache that the kernel reclaims
    under pressure. `ru_maxrss` gives exact but per-process peaks (RUSAGE_CHILDREN: the largest single
    worker that has ended).
    """

    def __init__(self, interval: float = 0.1):
        import threading

        import psutil

        self.process, self.interval, self.stage = psutil.Process(), interval, None
        self.rss, self.pss, self.anon = {}, {}, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample(self) -> None:
        rss = pss = anon = 0
        for proc in [self.process, *self.process.children(recursive=True)]:
            try:  # a fraction of a millisecond
                rollup = Path(f"/proc/{proc.pid}/smaps_rollup").read_text().splitlines()[1:]
            except OSError:  # a worker that ended between the listing and the read
                continue
            kib = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in rollup}
            rss, pss, anon = rss + kib["Rss"], pss + kib["Pss"], anon + kib["Pss_Anon"]
        if self.stage is not None:
            for peaks, value in ((self.rss, rss), (self.pss, pss), (self.anon, anon)):
                peaks[self.stage] = max(peaks.get(self.stage, 0), value)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def enter(self, stage: str) -> None:
        self.sample()
        self.stage = stage
        self.sample()

    def close(self) -> tuple[dict, dict, dict]:
        self.sample()
        self._stop.set()
        self._thread.join()
        return self.rss, self.pss, self.anon


def tree_cpu_seconds(process) -> float:
    """User + system CPU seconds of a `psutil.Process` and all its descendants so far, ended ones included.

    Children that ended and were waited for are in their parent's `children_*` times (the `num_proc`
    workers once datasets' pool is closed); live ones are read one by one. Unlike wall seconds, the sum
    barely moves with the load other programs put on the cores, so linear time is judged on it.
    """
    import psutil

    total = 0.0
    for proc in [process, *process.children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:  # ended between the listing and the read (its parent counts it)
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def scale_child(inputs: Path, work: Path, vocab_size: int, block_size: int, sample_bytes: int) -> dict:
    """One size, in this (fresh) process: corpus, tokenizer, tokenize, group; seconds and peak memory per stage."""
    import json
    import resource

    import pyarrow.compute as pc

    from corpora import load_corpus
    from tokenizer_training import dataset_texts

    def maxrss() -> dict:
        kib = 1024  # ru_maxrss is in KiB on Linux
        now = rss.process.memory_info()
        return {"main": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kib,
                "worker": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * kib,
                "main_now": now.rss, "main_now_file": now.shared}

    rss = TreeRSS()
    times, cpu, maxrss_after = {}, {}, {}

    def stage(name: str, fn):
        rss.enter(name)
        start, start_cpu = time.perf_counter(), tree_cpu_seconds(rss.process)
        result = fn()
        times[name] = time.perf_counter() - start
        cpu[name] = tree_cpu_seconds(rss.process) - start_cpu
        rss.sample()
        maxrss_after[name] = maxrss()
        with open(work / "stages.jsonl", "a") as progress:  # a long run's progress, to read while it runs
            print(json.dumps({"stage": name, "seconds": times[name], "cpu_seconds": cpu[name], "rss": rss.rss, "pss": rss.pss,
                              "anon": rss.anon, "maxrss": maxrss_after[name]}), file=progress, flush=True)
        return result

    args = CorpusArguments(source="text", inputs=[str(inputs)], output_dir=str(work / "corpus"), streaming=True)
    dd = stage("corpus", lambda: load_corpus(prepare_corpus(args)))
    tokenizer = stage("tokenizer", lambda: train_tokenizer(dataset_texts(dd["train"], max_bytes=sample_bytes),
                                                           "bpe", vocab_size))
    tokenized = stage("tokenize", lambda: tokenize_dataset(dd, tokenizer, num_proc=os.cpu_count()))
    blocks = stage("group", lambda: group_blocks(tokenized, block_size, pad_token_id=tokenizer.pad_token_id))
    rss_peaks, pss_peaks, anon_peaks = rss.close()
    arrow = {name: split.with_format("arrow") for name, split in tokenized.items()}
    return {"times": times, "cpu_times": cpu, "rss_tree": rss_peaks, "pss_tree": pss_peaks, "anon_tree": anon_peaks,
            "maxrss_after": maxrss_after,
            "rss_main": maxrss_after["group"]["main"], "rss_workers": maxrss_after["group"]["worker"],
            "bytes": sum(int(pc.sum(t["num_bytes"]).as_py() or 0) for t in arrow.values()),
            "tokens": sum(int(pc.sum(pc.list_value_length(t["input_ids"])).as_py() or 0) for t in arrow.values()),
            "documents": sum(len(t) for t in arrow.values()), "blocks": sum(len(b) for b in blocks.values())}


def cpu_model() -> str:
    """The processor's model name (lscpu's "Model name"), or the machine type where /proc/cpuinfo has none."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def run_scale(sizes: list[int], vocab_size: int, block_size: int, sample_bytes: int) -> list[dict]:
    """Generate each size, measure it in a child process, print the tables; returns the rows."""
    import json
    import subprocess

    rows = []
    for n_bytes in sizes:
        work = Path(tempfile.mkdtemp(prefix=f"scale-{n_bytes}-", dir=_TMP))
        start = time.perf_counter()
        inputs = markov_corpus(work / "txt", n_bytes)
        generated = time.perf_counter() - start
        load_before = os.getloadavg()[0]
        child = subprocess.run(
            [sys.executable, __file__, "--_scale_child", str(inputs), str(work), "--vocab_size", str(vocab_size),
             "--block_size", str(block_size), "--tokenizer_sample_bytes", str(sample_bytes)],
            capture_output=True, text=True, env={**os.environ, "HF_HOME": os.path.join(_TMP, "hf")},
        )  # fmt: skip
        if child.returncode != 0:
            sys.exit(f"error: the {n_bytes / 1e6:.0f} MB run failed: {child.stderr.strip().splitlines()[-1:]}")
        row = json.loads(child.stdout.strip().splitlines()[-1])
        t = row["times"]
        row.update(name=size_label(n_bytes), size=n_bytes, generated_s=generated, total_s=sum(t.values()),
                   total_cpu_s=sum(row["cpu_times"].values()), rss_peak=max(row["rss_tree"].values()),
                   pss_peak=max(row["pss_tree"].values()), anon_peak=max(row["anon_tree"].values()),
                   load_before=load_before, load_after=os.getloadavg()[0])
        rows.append(row)
        print(f"{row['name']}: {row['total_s']:.1f} s, {row['total_cpu_s']:.1f} CPU s "
              f"({', '.join(f'{k} {v:.1f}' for k, v in t.items())}), "
              f"peak RSS {row['rss_peak'] / 1e9:.2f} GB (PSS {row['pss_peak'] / 1e9:.2f}, "
              f"anonymous {row['anon_peak'] / 1e9:.2f}), "
              f"load {load_before:.2f} -> {row['load_after']:.2f}", flush=True)
        shutil.rmtree(work, ignore_errors=True)
    stages = list(rows[0]["times"])
    print(f"\n{os.cpu_count()} CPUs ({cpu_model()}), word-bigram Markov text from "
          f"{', '.join(p.name for p in SCALE_SOURCES)}; BPE {vocab_size} on a {sample_bytes / 1e6:.0f} MB sample, "
          f"block {block_size}, tokenize num_proc {os.cpu_count()}; wall and CPU seconds (user + system of the "
          f"process and all its descendants) per stage; load average (1 min) before -> after each size")
    print("\n| corpus | " + " | ".join(f"{s} s (CPU s)" for s in stages) + " | total s (CPU s) | CPU s per 100 MB "
          "| tokenize MB/s (per CPU s) | load |")
    print("|---|" + "---|" * (len(stages) + 4))
    for row in rows:
        t, c = row["times"], row["cpu_times"]
        print(f"| {row['name']} | " + " | ".join(f"{t[s]:.1f} ({c[s]:.1f})" for s in stages)
              + f" | {row['total_s']:.1f} ({row['total_cpu_s']:.1f}) | {row['total_cpu_s'] / row['size'] * 1e8:.1f} "
              f"| {row['bytes'] / 1e6 / t['tokenize']:.2f} ({row['bytes'] / 1e6 / c['tokenize']:.2f}) "
              f"| {row['load_before']:.2f} -> {row['load_after']:.2f} |")
    print("\n| corpus | peak RSS all processes GB | peak PSS GB | peak anonymous PSS GB | peak RSS main GB "
          "| peak RSS largest worker GB |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['name']} | {row['rss_peak'] / 1e9:.2f} | {row['pss_peak'] / 1e9:.2f} | {row['anon_peak'] / 1e9:.2f} "
              f"| {row['rss_main'] / 1e9:.2f} | {row['rss_workers'] / 1e9:.2f} |")
    print("\n| corpus | " + " | ".join(f"{s}: peak RSS / PSS / anonymous, all processes, GB" for s in stages) + " |")
    print("|---|" + "---|" * len(stages))
    for row in rows:
        cells = (" / ".join(f"{row[k].get(s, 0) / 1e9:.2f}" for k in ("rss_tree", "pss_tree", "anon_tree"))
                 for s in stages)
        print(f"| {row['name']} | " + " | ".join(cells) + " |")
    print("\n| target | measured | met |")
    print("|---|---|---|")
    if len(rows) > 1:
        # CPU seconds, not wall: on shared cores the wall seconds are the load's as much as the pipeline's.
        ratio = (rows[-1]["total_cpu_s"] / rows[-1]["size"]) / (rows[0]["total_cpu_s"] / rows[0]["size"])
        wall = (rows[-1]["total_s"] / rows[-1]["size"]) / (rows[0]["total_s"] / rows[0]["size"])
        print(f"| time linear: CPU s/MB at {rows[-1]['name']} within 1.5x of {rows[0]['name']} "
              f"| {ratio:.2f}x (wall s/MB {wall:.2f}x) | {'yes' if ratio <= 1.5 else 'NO'} |")
    big = [r for r in rows if r["size"] >= 10**9]
    if big:
        peak = big[0]["rss_peak"] / 1e9
        print(f"| peak RSS (all processes) <= 3 GB at 1 GB | {peak:.2f} GB | {'yes' if peak <= 3 else 'NO'} |")
    else:
        print("| peak RSS (all processes) <= 3 GB at 1 GB | not measured (no 1GB size given) | - |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inputs", nargs="+", type=Path, default=[TXT],
                        help="Text files or folders (default: tolstoy/txt).")
    parser.add_argument("--vocab_size", type=int, default=8192, help="BPE vocabulary size.")
    parser.add_argument("--block_size", type=int, default=256, help="Tokens per training block.")
    parser.add_argument("--repeats", type=int, default=3, help="Repetitions of tokenize and group (median shown).")
    parser.add_argument("--quick", action="store_true", help="One small file, one repetition, no War and Peace run.")
    parser.add_argument("--scale", nargs="+", type=parse_size, default=None, metavar="SIZE",
                        help="Generated corpora of these sizes (10MB 100MB 1GB) through the streaming pipeline.")
    parser.add_argument("--tokenizer_sample_bytes", type=int, default=50_000_000,
                        help="--scale: train the tokenizer on a seeded sample of this many bytes.")
    parser.add_argument("--_scale_child", nargs=2, type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", help="Also write the stage rows (seconds, ours and run_clm's) to this JSON file.")
    args = parser.parse_args()
    if args.json and (problem := json_path_problem(args.json)):
        parser.error(problem)
    if args._scale_child:
        import json

        datasets.disable_progress_bars()
        transformers.logging.set_verbosity_error()
        try:
            result = scale_child(*args._scale_child, args.vocab_size, args.block_size, args.tokenizer_sample_bytes)
        finally:
            shutil.rmtree(_TMP, ignore_errors=True)  # this child's own temporary folder (made at import)
        print(json.dumps(result))
        return
    if args.scale:
        try:
            rows = run_scale(args.scale, args.vocab_size, args.block_size, args.tokenizer_sample_bytes)
            if args.json:
                write_rows(args.json, [{**row, "cpu": cpu_model(), "date": time.strftime("%Y-%m-%d")} for row in rows])
        finally:
            shutil.rmtree(_TMP, ignore_errors=True)
        return
    if args.quick:
        args.inputs, args.repeats = [QUICK_FILE], 1
    for path in args.inputs:
        if not path.exists():
            sys.exit(f"error: {path} does not exist (the bench reads ../shared/corpora from the repository root)")
    datasets.disable_progress_bars()
    # run_clm.py captures the "sequence longer than model_max_length" warning for whole documents: so do we.
    transformers.logging.set_verbosity_error()

    try:
        # The quick file is one 20,000-character document; shorter documents give validation a few.
        dd, t_corpus = build(args.inputs, "main", 2000 if args.quick else 20000)
        mb = text_bytes(dd) / 1e6
        tokenizer, t_train = timed(train_tokenizer, dd["train"]["text"], "bpe", args.vocab_size)
        tokenizer(dd["train"][0]["text"][:1000])  # warm-up: the first call compiles the pre-tokenizer regex
        ours, peer = [], []
        for _ in range(args.repeats):
            *times, ours_out = ours_blocks(dd, tokenizer, args.block_size)
            ours.append(times)
            *times, peer_out = peer_blocks(dd, tokenizer, args.block_size)
            peer.append(times)
        o_tok, o_group = (statistics.median(t[i] for t in ours) for i in (0, 1))
        p_tok, p_group = (statistics.median(t[i] for t in peer) for i in (0, 1))

        print(f"\ninputs: {', '.join(str(p) for p in args.inputs)}")
        print(f"{os.cpu_count()} CPUs, corpus {mb:.2f} MB of UTF-8 text in "
              f"{len(dd['train'])} + {len(dd['validation'])} documents, BPE {len(tokenizer)}, block {args.block_size}, "
              f"median of {args.repeats}")
        print("\n| stage | ours s | ours MB/s | run_clm s | run_clm MB/s | speed-up (run_clm s / ours s) |")
        print("|---|---|---|---|---|---|")

        rows = []

        def row(stage, ours_s, peer_s=None):
            rows.append({"name": stage, "ours_s": ours_s, "run_clm_s": peer_s, "mb": mb})
            peer = f"{peer_s:.3f} | {mb / peer_s:.2f} | {peer_s / ours_s:.2f}x" if peer_s else "- | - | -"
            print(f"| {stage} | {ours_s:.3f} | {mb / ours_s:.2f} | {peer} |")

        row("corpus (build + save + load)", t_corpus)
        row(f"tokenizer (BPE {args.vocab_size})", t_train)
        row("tokenize", o_tok, p_tok)
        row(f"group into {args.block_size}", o_group, p_group)
        row("tokenize + group", o_tok + o_group, p_tok + p_group)
        row("total", t_corpus + t_train + o_tok + o_group)

        tokens = {n: sum(len(x) for x in ours_out[n].with_format("arrow")["input_ids"].to_pylist()) for n in ours_out}
        real = {n: sum(sum(m) for m in ours_out[n]["attention_mask"]) for n in ours_out}
        peer_tokens = {n: sum(len(x) for x in peer_out[n]["input_ids"]) for n in peer_out}
        print("\n| split | ours: blocks, real tokens (incl. one <eos> per document) | run_clm: blocks, tokens kept |")
        print("|---|---|---|")
        for n in ours_out:
            print(f"| {n} | {len(ours_out[n])}, {real[n]} of {tokens[n]} slots "
                  f"| {len(peer_out[n])}, {peer_tokens[n]} |")

        print("\n| target | measured | met |")
        print("|---|---|---|")
        if args.quick:
            print("| War and Peace prepared in < 30 s | not measured (--quick) | - |")
        else:
            seconds, nbytes = full_preparation([WAR_AND_PEACE], args.vocab_size, args.block_size)
            rows.append({"name": "War and Peace prepared", "ours_s": seconds, "run_clm_s": None, "mb": nbytes / 1e6})
            print(f"| War and Peace ({nbytes / 1e6:.2f} MB) prepared in < 30 s | {seconds:.1f} s | "
                  f"{'yes' if seconds < 30 else 'NO'} |")
        print(f"| tokenization no slower than run_clm | {o_tok:.2f} s vs {p_tok:.2f} s | "
              f"{'yes' if o_tok <= p_tok else 'NO'} |")
        if args.json:
            write_rows(args.json, rows)
    finally:
        shutil.rmtree(_TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
