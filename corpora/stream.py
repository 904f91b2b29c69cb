"""Corpora larger than memory: documents streamed from the files through cleaning into Arrow files on disk.

    python -m corpora --source text BIG_FOLDER/ --output_dir data/big --streaming true

`build_corpus_streaming(args)` gives what `build_corpus_with_manifest` gives (the same splits, columns and
manifest) without ever holding the corpus in memory: one file is read at a time, its documents are cleaned,
cut and de-duplicated (by 16-byte digests, not by text) and written by `datasets.Dataset.from_generator` into
Arrow files, which are memory-mapped from then on. The near-duplicate check keeps a sparser sample of word
8-grams (one in 64) so that its memory stays a small fraction of the text. Only `--source text` streams.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import random
import shutil
import tempfile
import time
import weakref
from collections import Counter
from pathlib import Path

import datasets

from .cleaning import chunk_paragraphs, clean_text, repair_libru_quirks, _shingles
from .errors import CorpusError
from .manifest import source_record, split_stats_arrow
from .text_files import find_text_files, read_text_file

logger = logging.getLogger(__name__)

# One word 8-gram in this many is kept for the near-duplicate check when streaming (4 in memory: see cleaning.py).
STREAM_SHINGLE_SAMPLE = 64


def stream_documents(files: list[Path], *, min_chars: int, max_doc_chars: int, state: dict):
    """Cleaned, cut, de-duplicated rows {"text", "source"} of `files`, one file in memory at a time.

    Counts go into `state["stats"]`; each kept document's sampled 8-gram hashes are appended to
    `state["shingles"]` (one dict, not two lists: datasets would take every list argument for a list of shards).
    """
    stats, shingles = state["stats"], state["shingles"]
    seen: set[bytes] = set()
    for path in files:
        stats["rows_read"] += 1
        text, repairs = repair_libru_quirks(clean_text(read_text_file(path)))
        for key, count in repairs.items():
            stats["libru_repairs"][key] += count
        for document in chunk_paragraphs(text, max_doc_chars):
            digest = hashlib.blake2b(document.encode("utf-8"), digest_size=16).digest()
            if len(document) < min_chars:
                stats["too_short_dropped"] += 1
            elif digest in seen:
                stats["duplicates_removed"] += 1
            else:
                seen.add(digest)
                stats["documents_per_source"][path.name] = stats["documents_per_source"].get(path.name, 0) + 1
                shingles.append(_shingles(document, 8, STREAM_SHINGLE_SAMPLE))
                yield {"text": document, "source": path.name}


def _overlapping(shingles: list[set[int]], min_share: float) -> set[int]:
    """Indices of documents sharing `min_share` of their sampled 8-grams with another (cleaning.overlapping_documents)."""
    seen_in = Counter(h for sample in shingles for h in sample)
    return {i for i, sample in enumerate(shingles)
            if sample and sum(seen_in[h] > 1 for h in sample) >= min_share * len(sample)}  # fmt: skip


def build_corpus_streaming(args):
    """(DatasetDict, manifest) for `--source text` with `--streaming true`; see the module docstring."""
    if args.source != "text":
        raise CorpusError(f"--streaming works with --source text (got --source {args.source}); "
                          "convert the corpus to .txt files, or drop --streaming")
    if not args.inputs:
        raise CorpusError("--source text needs at least one input; e.g. python -m corpora --source text DIR "
                          "--output_dir OUT --streaming true")
    files = find_text_files(args.inputs)
    stats = {"rows_read": 0, "duplicates_removed": 0, "too_short_dropped": 0, "documents_per_source": {},
             "libru_repairs": {"yo": 0, "french_accents": 0, "mixed_words_left": 0}}
    shingles: list[set[int]] = []
    features = datasets.Features({"text": datasets.Value("string"), "source": datasets.Value("string")})
    # Beside the output folder (the system's temporary folder may be too small for a gigabyte of Arrow).
    parent = Path(args.output_dir).absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    cache_dir = tempfile.mkdtemp(prefix=".ropegpt-stream-", dir=parent)
    # Arrow files are written in batches as the generator runs: memory holds one file's text, not the corpus.
    try:
        documents = datasets.Dataset.from_generator(
            stream_documents, features=features, cache_dir=cache_dir, keep_in_memory=False,
            gen_kwargs={"files": files, "min_chars": args.min_chars, "max_doc_chars": args.max_doc_chars,
                        "state": {"stats": stats, "shingles": shingles}},
        )  # fmt: skip
    except BaseException as error:
        shutil.rmtree(cache_dir, ignore_errors=True)
        # datasets wraps what the generator raised (a CorpusError naming a bad file) in its own error
        cause = error.__cause__ if isinstance(error.__cause__, CorpusError) else None
        if cause is not None:
            raise cause from None
        raise
    if len(documents) == 0:
        shutil.rmtree(cache_dir, ignore_errors=True)
        raise CorpusError(f"no text left after cleaning {', '.join(args.inputs)}; check the inputs")
    overlapping = set()
    if args.validation_overlap > 0 and args.validation_split > 0:
        overlapping = _overlapping(shingles, args.validation_overlap)
    del shingles
    # The same seeded choice as split_documents, made on indices: the text stays on disk.
    n = len(documents)
    n_val = round(n * args.validation_split)
    if args.validation_split > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    eligible = [i for i in range(n) if i not in overlapping]
    chosen = set(random.Random(args.seed).sample(eligible, min(n_val, len(eligible))))
    corpus = datasets.DatasetDict({
        "train": documents.select([i for i in range(n) if i not in chosen]),
        "validation": documents.select(sorted(chosen)),
    })  # fmt: skip
    manifest = {
        "format": "ropegpt-corpus/1",
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "arguments": dataclasses.asdict(args),
        "streamed": True,
        "sources": [source_record(p.name, str(p), p) for p in files],
        "skipped_sources": [],
        "snapshot_fallback": None,
        "splits": {name: split_stats_arrow(split) for name, split in corpus.items()},
        "rows_read": stats["rows_read"],
        "documents": n,
        "documents_per_source": stats["documents_per_source"],
        "duplicates_removed": stats["duplicates_removed"],
        "kept_out_of_validation_as_near_duplicates": len(overlapping),
        "malformed_lines_skipped": 0,
        "too_short_dropped": stats["too_short_dropped"],
        "empty_dropped": 0,
        "libru_repairs": stats["libru_repairs"],
        "versions": {"datasets": datasets.__version__},
    }
    # The Arrow files live until the corpus is gone (save_to_disk has copied them by then).
    weakref.finalize(corpus, shutil.rmtree, cache_dir, ignore_errors=True)
    return corpus, manifest
