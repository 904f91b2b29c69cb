"""`--json PATH` for every bench script: the rows of its table as a JSON list, so figures are read by programs.

A benchmark can run for an hour; the file is checked before it starts (so a typo does not cost the run)
and replaced atomically after each write (so a crash or a second run never leaves half a file behind).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path


def json_path_problem(path: str | os.PathLike) -> str | None:
    """Why `path` cannot take the JSON rows (one line naming it and what to do), or None when it can."""
    path = Path(path)
    if path.is_dir():
        return f"--json {path} is a folder: give a file name, e.g. {path / 'rows.json'}"
    parent = path.parent
    while not parent.exists():  # the folders write_rows would create
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        return f"--json {path}: {parent} is not a writable folder; give a path you can write"
    return None


def _finite(value):
    # Strict JSON has no NaN/Infinity: a diverged or unmeasured figure becomes null, not an unreadable file.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_rows(path: str | os.PathLike, rows: list[dict]) -> None:
    """Write `rows` to `path` as a JSON list (folders created), replacing the file in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = [{key: _finite(value) for key, value in row.items()} for row in rows]
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(clean, f, indent=2, ensure_ascii=False, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
