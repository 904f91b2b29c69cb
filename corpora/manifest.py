"""The records a corpus manifest is made of: each source file with its checksum, each split's size.

The in-memory builder (builder.py) and the streaming one (stream.py) write the same manifest from these.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow.compute as pc


def sha256_file(path: Path) -> str:
    """The file's SHA-256, read in 1 MiB pieces (a Leipzig archive can be larger than memory)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_record(name: str, location: str, path: Path, **extra) -> dict:
    """A manifest's `sources` entry for a local file: its name, where it came from, checksum and size."""
    return {"source": name, "location": location, "sha256": sha256_file(path), "bytes": path.stat().st_size, **extra}


def split_stats_arrow(split) -> dict:
    """`split_stats` of a `datasets.Dataset`, read in Arrow batches (the split may be larger than memory)."""
    characters = utf8_bytes = 0
    for batch in split.with_format("arrow").select_columns(["text"]).iter(batch_size=1000):  # tens of MB, not the split
        characters += pc.sum(pc.utf8_length(batch["text"])).as_py() or 0
        utf8_bytes += pc.sum(pc.binary_length(batch["text"])).as_py() or 0
    return {"documents": len(split), "characters": characters, "utf8_bytes": utf8_bytes}


def split_stats(rows: list[dict]) -> dict:
    """Documents, characters and UTF-8 bytes of a split held in memory as rows {"text", ...}."""
    return {"documents": len(rows), "characters": sum(len(r["text"]) for r in rows),
            "utf8_bytes": sum(len(r["text"].encode("utf-8")) for r in rows)}
