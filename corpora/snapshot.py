"""The offline snapshot of the default Tolstoy corpus, shipped in the repository, and the script that builds it.

    python -m corpora.snapshot ../shared/corpora/tolstoy/txt          # rebuilds corpora/snapshot/tolstoy.jsonl.xz

`--source tolstoy` (the default recipe) downloads the catalogue from az.lib.ru; when the site cannot be
reached it says so in one line and reads this snapshot instead, so the Quickstart trains on any machine.
The snapshot holds the public-domain works in `../shared/corpora/tolstoy/txt`, each read and cleaned as
`--source text` would (layout, footnote markers, lib.ru's ё and accents), one JSON line per work
(`source`, `title`, `sha256` of the file it was built from, `text`), compressed with xz (about 1.1 MB).
The modern edition of War and Peace vols 1-2 is left out: it is a second edition of text lib.ru's complete
War and Peace already holds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import os
import sys
import tempfile
from pathlib import Path

from .cleaning import clean_text, repair_libru_quirks
from .errors import CorpusError
from .text_files import read_text_file

SNAPSHOT_PATH = Path(__file__).resolve().parent / "snapshot" / "tolstoy.jsonl.xz"

# File in ../shared/corpora/tolstoy/txt -> title; the order is the snapshot's.
SNAPSHOT_WORKS: dict[str, str] = {
    "war_and_peace_full.libru_txt.cp1251.txt": "Война и мир (lib.ru, полный текст)",
    "detstvo_childhood.utf8bom.txt": "Детство",
    "smert_ivana_ilicha.utf8bom.txt": "Смерть Ивана Ильича",
    "dyavol_the_devil.utf8bom.txt": "Дьявол",
    "tri_smerti_three_deaths.utf8bom.txt": "Три смерти",
    "posle_bala_after_the_ball.utf8bom.txt": "После бала",
}


def build_snapshot(txt_dir: str | os.PathLike, output: str | os.PathLike = SNAPSHOT_PATH) -> Path:
    """Write the snapshot of the works in `txt_dir` (see `SNAPSHOT_WORKS`) to `output`, atomically.

    The output is byte-for-byte reproducible: same files in, same bytes out (xz preset 9, no timestamps).
    """
    txt_dir, output = Path(txt_dir), Path(output)
    missing = [name for name in SNAPSHOT_WORKS if not (txt_dir / name).is_file()]
    if missing:
        raise CorpusError(f"{txt_dir} lacks {', '.join(missing)}; give the folder ../shared/corpora/tolstoy/txt")
    lines = []
    for name, title in SNAPSHOT_WORKS.items():
        path = txt_dir / name
        text, _ = repair_libru_quirks(clean_text(read_text_file(path)))
        sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(json.dumps({"source": name, "title": title, "sha256": sha256, "text": text}, ensure_ascii=False))
    data = lzma.compress(("\n".join(lines) + "\n").encode("utf-8"), preset=9)
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, output)
    return output


def read_snapshot(path: str | os.PathLike = SNAPSHOT_PATH) -> tuple[list[dict], list[dict]]:
    """(rows {"text", "source"}, source records) of the snapshot, in the shape `load_source_rows` returns."""
    path = Path(path)
    try:
        lines = lzma.decompress(path.read_bytes()).decode("utf-8").splitlines()
    except (OSError, lzma.LZMAError, UnicodeDecodeError) as error:
        raise CorpusError(f"the offline snapshot {path} cannot be read ({error}); restore it with git checkout, "
                          "or use local files instead (--source text PATH)") from error
    rows, records = [], []
    for line in lines:
        work = json.loads(line)
        rows.append({"text": work["text"], "source": work["source"]})
        records.append({"source": work["source"], "location": f"{path.parent.name}/{path.name}", "title": work["title"],
                        "built_from_sha256": work["sha256"], "characters": len(work["text"])})
    return rows, records


def main(argv: list[str] | None = None) -> int:
    """`python -m corpora.snapshot TXT_DIR [--output PATH]`: 0 on success, 2 with one line on bad input."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("txt_dir", help="the folder ../shared/corpora/tolstoy/txt")
    parser.add_argument("--output", default=str(SNAPSHOT_PATH), help="where to write the snapshot")
    args = parser.parse_args(argv)
    try:
        path = build_snapshot(args.txt_dir, args.output)
    except CorpusError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{path}: {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
