"""Sources -> clean -> split -> a `DatasetDict` on disk with a manifest; the `python -m corpora` CLI.

    python -m corpora --source tolstoy --output_dir data/tolstoy
    python -m corpora --source libru http://az.lib.ru/t/tolstoj_lew_nikolaewich/text_1860_dekabristy.shtml --output_dir data/dek
    python -m corpora --source text ../shared/corpora/tolstoy/txt --output_dir data/tolstoy_txt
    python -m corpora --source leipzig ../shared/corpora/tatar/leipzig/tat_books_2024_10K.tar.gz --output_dir data/tat10k
    python -m corpora --source hub some/dataset --text_column text --output_dir data/hub

The output folder holds `DatasetDict.save_to_disk` (splits `train` and `validation`, columns `text`
and `source`) and `manifest.json`. It is built in a temporary folder beside the target and renamed
into place only after everything succeeded, so a failed run leaves nothing half-made and never
touches an existing folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .cleaning import clean_documents, overlapping_documents, split_documents
from .errors import CorpusError
from .fetch import FetchError, fetch
from .leipzig import leipzig_local_path, read_leipzig
from .libru import TOLSTOY_CATALOGUE, decode_html, extract_libru_html, tolstoy_urls
from .snapshot import SNAPSHOT_PATH, read_snapshot
from .text_files import find_text_files, read_text_file

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
# The finest a short text is cut to give both splits text (a few sentences of prose).
MIN_DOC_CHARS = 200


@dataclass
class CorpusArguments:
    """Arguments of `python -m corpora` (parsed by transformers.HfArgumentParser)."""

    source: Literal["tolstoy", "libru", "leipzig", "text", "hub"] = field(
        metadata={"help": "Kind of input: 'tolstoy' (built-in az.lib.ru catalogue, no inputs needed), 'libru' "
                          "(page URLs), 'leipzig' (archives, folders, URLs or corpus names), 'text' (.txt files or "
                          "folders), 'hub' (datasets.load_dataset names or local paths)."})
    output_dir: str = field(metadata={"help": "Folder to write the DatasetDict and manifest.json into."})
    inputs: list[str] = field(default_factory=list, metadata={
        "help": "Inputs for the source; they may also be given positionally after the options."})
    validation_split: float = field(default=0.05, metadata={"help": "Fraction of documents (Leipzig: sentences) for validation."})
    seed: int = field(default=0, metadata={"help": "Seed of the train/validation split."})
    cache_dir: str | None = field(default=None, metadata={
        "help": "Download cache (default ~/.cache/ropegpt/corpora, or $ROPEGPT_CACHE/corpora)."})
    min_chars: int = field(default=20, metadata={"help": "Drop documents/sentences shorter than this many characters after cleaning."})
    max_doc_chars: int = field(default=20000, metadata={
        "help": "Cut long works into documents of at most this many characters at paragraph boundaries (0: never cut)."})
    validation_overlap: float = field(default=0.5, metadata={
        "help": "Keep out of validation every document sharing at least this share of its word 8-grams with another "
                "document (a second edition of a work would otherwise be scored on text seen in training); 0: off."})
    overwrite: bool = field(default=False, metadata={"help": "Replace a non-empty output_dir (only after the new one is complete)."})
    text_column: str = field(default="text", metadata={"help": "Column holding the text, for --source hub."})
    hub_config: str | None = field(default=None, metadata={"help": "Configuration name, for --source hub."})
    hub_split: str | None = field(default=None, metadata={"help": "Split to read for --source hub (default: all splits)."})
    base_url: str | None = field(default=None, metadata={
        "help": "Base URL of the Tolstoy catalogue pages (default http://az.lib.ru/t/tolstoj_lew_nikolaewich/)."})
    delay: float = field(default=1.0, metadata={"help": "Seconds between two requests to the same host."})
    timeout: float = field(default=30.0, metadata={"help": "Seconds before a connection or read gives up."})
    retries: int = field(default=3, metadata={"help": "Retries (with backoff) of read errors and 429/5xx answers."})
    streaming: bool = field(default=False, metadata={
        "help": "For --source text: stream the files through cleaning into Arrow files on disk, never holding the "
                "corpus in memory (corpora of gigabytes; see corpora/stream.py)."})
    snapshot_fallback: bool = field(default=True, metadata={
        "help": "For --source tolstoy: when the catalogue cannot be downloaded, say so in one line and use the "
                "snapshot shipped in corpora/snapshot/ (false: an error instead)."})

    def __post_init__(self):
        self.inputs = list(self.inputs or [])
        if not 0 <= self.validation_split < 1:
            raise CorpusError(f"--validation_split {self.validation_split} is outside [0, 1); give e.g. 0.05")
        if self.min_chars < 0 or self.max_doc_chars < 0:
            raise CorpusError("--min_chars and --max_doc_chars must not be negative")
        if not 0 <= self.validation_overlap <= 1:
            raise CorpusError(f"--validation_overlap {self.validation_overlap} is outside [0, 1]; give e.g. 0.5 (0: off)")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _source_record(name: str, location: str, path: Path, **extra) -> dict:
    return {"source": name, "location": location, "sha256": _sha256_file(path), "bytes": path.stat().st_size, **extra}


def _fetch_kwargs(args: CorpusArguments) -> dict:
    return {"delay": args.delay, "timeout": args.timeout, "retries": args.retries}


def _page_document(location: str, args: CorpusArguments) -> tuple[str, dict]:
    """(text, source record) of one lib.ru page, from a URL (cached) or a local file."""
    if location.startswith(("http://", "https://")):
        result = fetch(location, args.cache_dir, **_fetch_kwargs(args))
        raw, content_type, path = result.content, result.content_type, result.path
    else:
        path = Path(location)
        if not path.is_file():
            raise CorpusError(f"{location} is neither a URL nor an existing file; give an az.lib.ru page URL")
        raw, content_type = path.read_bytes(), None
    paragraphs = extract_libru_html(decode_html(raw, content_type))
    if not paragraphs:
        raise CorpusError(f"no text found on the page {location}; check that it is a lib.ru work page "
                          "(it should hold <!--Section Begins--> ... <!--Section Ends-->)")
    name = location.rstrip("/").rsplit("/", 1)[-1]
    return "\n".join(paragraphs), _source_record(name, location, path)


def load_source_rows(args: CorpusArguments) -> tuple[list[dict], dict]:
    """Read every input of `args.source` into rows {"text", "source"} (one per work, file or sentence).

    Returns the rows and an info dict: `sources` (name, location, sha256 and size of the raw bytes),
    `skipped_sources` and `malformed_lines_skipped`. For `--source tolstoy` a work whose page answers
    HTTP 404 is skipped with a warning (the site renumbers pages now and then) and listed in
    `skipped_sources`; any other failure, or every work missing, is an error. For `--source libru` the
    user named the pages, so a 404 is an error.
    """
    if args.source != "tolstoy" and not args.inputs:
        raise CorpusError(f"--source {args.source} needs at least one input; e.g. "
                          f"python -m corpora --source {args.source} PATH_OR_URL --output_dir DIR")
    rows: list[dict] = []
    info: dict = {"sources": [], "skipped_sources": [], "malformed_lines_skipped": 0}
    if args.source == "tolstoy":
        urls = tolstoy_urls(args.base_url)
        for name in args.inputs or list(urls):
            if name not in urls:
                raise CorpusError(f"{name!r} is not in the Tolstoy catalogue; choose from {', '.join(TOLSTOY_CATALOGUE)}")
            try:
                text, record = _page_document(urls[name], args)
            except FetchError as error:
                if error.status != 404 and args.snapshot_fallback:
                    return _snapshot_rows(str(error), info)
                if error.status != 404:
                    raise
                logger.warning("skipping %s (%s): %s", name, TOLSTOY_CATALOGUE[name], error)
                info["skipped_sources"].append({"source": name, "location": urls[name], "reason": str(error)})
                continue
            record["title"] = TOLSTOY_CATALOGUE[name]
            rows.append({"text": text, "source": record["source"]})
            info["sources"].append(record)
        if not rows and args.snapshot_fallback:
            return _snapshot_rows("every catalogue page answered 404", info)
        if not rows:
            raise CorpusError(f"none of the Tolstoy catalogue pages could be downloaded from {args.base_url or urls[name]}; "
                              "check --base_url, or use local files instead (--source text PATH)")
    elif args.source == "libru":
        for location in args.inputs:
            text, record = _page_document(location, args)
            rows.append({"text": text, "source": record["source"]})
            info["sources"].append(record)
    elif args.source == "text":
        for path in find_text_files(args.inputs):
            rows.append({"text": read_text_file(path), "source": path.name})
            info["sources"].append(_source_record(path.name, str(path), path))
    elif args.source == "leipzig":
        for item in args.inputs:
            local = leipzig_local_path(item, args.cache_dir, **_fetch_kwargs(args))
            sentences, malformed = read_leipzig(local)
            name = Path(str(item).rstrip("/")).name
            rows.extend({"text": sentence, "source": name} for sentence in sentences)
            info["malformed_lines_skipped"] += malformed
            record = {"source": name, "location": str(item), "sentences": len(sentences), "malformed_lines": malformed}
            if local.is_file():
                record.update(sha256=_sha256_file(local), bytes=local.stat().st_size)
            else:
                files = sorted(local.rglob("*-sentences.txt"))
                record.update(files={str(p.relative_to(local)): _sha256_file(p) for p in files})
            info["sources"].append(record)
    elif args.source == "hub":
        for name in args.inputs:
            texts, record = _hub_texts(name, args)
            rows.extend({"text": text, "source": record["source"]} for text in texts)
            info["sources"].append(record)
    else:
        raise CorpusError(f"unknown --source {args.source}; choose tolstoy, libru, leipzig, text or hub")
    return rows, info


def _snapshot_rows(reason: str, info: dict) -> tuple[list[dict], dict]:
    """The offline snapshot's rows and info, after one line saying why it replaces the catalogue."""
    rows, records = read_snapshot()
    logger.warning("the az.lib.ru catalogue cannot be downloaded (%s): using the offline Tolstoy snapshot "
                   "corpora/snapshot/%s instead (%d works)", reason.split("; ")[0], SNAPSHOT_PATH.name, len(rows))
    info.update(sources=records, snapshot_fallback={"reason": reason, "snapshot": f"corpora/snapshot/{SNAPSHOT_PATH.name}"})
    return rows, info


def _hub_texts(name: str, args: CorpusArguments) -> tuple[list[str], dict]:
    """Texts of a Hub dataset (by name or local path) and its source record (fingerprints, no sha256)."""
    import datasets

    try:
        local = Path(name)
        if local.is_dir() and ((local / "dataset_dict.json").exists() or (local / "state.json").exists()):
            loaded = datasets.load_from_disk(str(local))
        else:
            loaded = datasets.load_dataset(name, args.hub_config, split=args.hub_split)
    except Exception as error:  # datasets raises many types (FileNotFoundError, ConnectionError, DatasetNotFoundError...)
        reason = " ".join(str(error).split())[:200]
        raise CorpusError(f"cannot load the dataset {name} ({error.__class__.__name__}: {reason}); check the name "
                          "or path, or use local files instead (--source text PATH)") from error
    splits = loaded if isinstance(loaded, datasets.DatasetDict) else {args.hub_split or "train": loaded}
    texts: list[str] = []
    for split_name, split in splits.items():
        if args.text_column not in split.column_names:
            raise CorpusError(f"dataset {name} split {split_name} has no column {args.text_column!r} "
                              f"(columns: {', '.join(split.column_names)}); pass --text_column")
        texts.extend(t for t in split[args.text_column] if isinstance(t, str))
    source = name.rstrip("/").rsplit("/", 1)[-1] if Path(name).exists() else name
    record = {"source": source, "location": name, "sha256": None,
              "fingerprints": {k: getattr(v, "_fingerprint", None) for k, v in splits.items()}, "rows": len(texts)}
    return texts, record


def _split_stats_arrow(split) -> dict:
    """`_split_stats` of a `datasets.Dataset`, read in Arrow batches (the split may be larger than memory)."""
    import pyarrow.compute as pc

    characters = utf8_bytes = 0
    for batch in split.with_format("arrow").select_columns(["text"]).iter(batch_size=1000):  # tens of MB, not the split
        characters += pc.sum(pc.utf8_length(batch["text"])).as_py() or 0
        utf8_bytes += pc.sum(pc.binary_length(batch["text"])).as_py() or 0
    return {"documents": len(split), "characters": characters, "utf8_bytes": utf8_bytes}


def _split_stats(rows: list[dict]) -> dict:
    return {"documents": len(rows), "characters": sum(len(r["text"]) for r in rows),
            "utf8_bytes": sum(len(r["text"].encode("utf-8")) for r in rows)}


def build_corpus_with_manifest(args: CorpusArguments):
    """(DatasetDict, manifest dict): everything `prepare_corpus` writes, nothing written yet."""
    import datasets

    rows, info = load_source_rows(args)
    # Leipzig rows are sentences: never cut them, each stays one row.
    max_doc_chars = 0 if args.source == "leipzig" else args.max_doc_chars
    documents, stats = clean_documents(rows, min_chars=args.min_chars, max_doc_chars=max_doc_chars)
    if not documents:
        raise CorpusError(f"no text left after cleaning {', '.join(args.inputs) or args.source} "
                          f"(all rows shorter than --min_chars {args.min_chars} or duplicates); check the inputs")
    wanted = max(2, math.ceil(1 / args.validation_split)) if args.validation_split > 0 else 0
    if max_doc_chars > 0 and len(documents) < wanted:
        # A short text (a story, a user's first file) is one or two documents: cut it finer so that both
        # splits get text, about --validation_split of it in validation.
        finer = max(sum(len(r["text"]) for r in documents) // wanted, MIN_DOC_CHARS)
        if finer < max_doc_chars:
            documents, stats = clean_documents(rows, min_chars=args.min_chars, max_doc_chars=finer)
            if len(documents) > 1:
                logger.info("short text: cut into %d documents of at most %d characters so that validation "
                            "gets some", len(documents), finer)
    overlapping = set()
    if args.validation_overlap > 0 and args.validation_split > 0:
        overlapping = overlapping_documents([row["text"] for row in documents], min_share=args.validation_overlap)
    if overlapping:
        logger.info("%d of %d documents share %.0f%%+ of their word 8-grams with another one (e.g. two editions of a "
                    "work): they stay in train", len(overlapping), len(documents), 100 * args.validation_overlap)
    train, validation = split_documents(documents, args.validation_split, args.seed, not_for_validation=overlapping)
    if args.validation_split > 0 and not validation:
        chars = sum(len(r["text"]) for r in documents)
        raise CorpusError(f"{', '.join(args.inputs) or args.source} is too small to split into train and validation "
                          f"({len(documents)} document(s), {chars} characters): give more text, or "
                          "--validation_split 0 and a separate validation corpus")
    features = datasets.Features({"text": datasets.Value("string"), "source": datasets.Value("string")})
    corpus = datasets.DatasetDict({
        name: datasets.Dataset.from_dict({"text": [r["text"] for r in rows], "source": [r["source"] for r in rows]},
                                         features=features)
        for name, rows in (("train", train), ("validation", validation))
    })
    manifest = {
        "format": "ropegpt-corpus/1",
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "arguments": dataclasses.asdict(args),
        "sources": info["sources"],
        "skipped_sources": info["skipped_sources"],
        "snapshot_fallback": info.get("snapshot_fallback"),
        "splits": {"train": _split_stats(train), "validation": _split_stats(validation)},
        "rows_read": stats.input_rows,
        "documents": stats.documents,
        "documents_per_source": stats.per_source,
        "duplicates_removed": stats.duplicates_removed,
        "kept_out_of_validation_as_near_duplicates": len(overlapping),
        "malformed_lines_skipped": info["malformed_lines_skipped"],
        "too_short_dropped": stats.too_short_dropped,
        "empty_dropped": stats.empty_dropped,
        "libru_repairs": stats.libru_repairs,
        "versions": {"datasets": datasets.__version__},
    }
    return corpus, manifest


def build_corpus(args: CorpusArguments):
    """The `DatasetDict` {train, validation} for `args` (sources -> clean -> split); writes nothing."""
    return build_corpus_with_manifest(args)[0]


def _check_output_dir(output_dir: Path, overwrite: bool) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise CorpusError(f"{output_dir} exists and is not a folder; choose another --output_dir")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise CorpusError(f"{output_dir} already exists and is not empty; pass --overwrite to replace it, "
                          "or choose another --output_dir")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def clean_stale_builds(output_dir: Path) -> None:
    """Remove `.NAME.building-PID-*` folders beside `output_dir` left by killed runs (their PID is gone), and
    put back a `.NAME.replaced-PID-*` folder that a kill left instead of `output_dir`."""
    parent = output_dir.parent
    if not parent.is_dir():
        return
    for kind in ("building", "replaced"):
        for path in parent.glob(f".{output_dir.name}.{kind}-*"):
            match = re.match(rf"^\.{re.escape(output_dir.name)}\.{kind}-(\d+)-", path.name)
            if not match or _pid_alive(int(match.group(1))):
                continue  # a live build, or one this version cannot attribute
            if kind == "replaced" and not output_dir.exists():
                os.replace(path, output_dir)
                logger.warning("put back %s: a killed run had moved it aside to %s", output_dir, path.name)
            else:
                shutil.rmtree(path, ignore_errors=True)
                logger.warning("removed %s, left by a killed run (pid %s)", path, match.group(1))


def prepare_corpus(args: CorpusArguments) -> Path:
    """Build the corpus and write it atomically to `args.output_dir` with manifest.json; returns the folder.

    The dataset is saved into a temporary folder beside the target; only when it and the manifest are
    complete is it renamed into place (an existing folder, allowed with `overwrite`, is moved aside first
    and deleted last). Any failure removes the temporary folder and leaves the target as it was.
    """
    output_dir = Path(args.output_dir).absolute()
    clean_stale_builds(output_dir)
    _check_output_dir(output_dir, args.overwrite)
    if args.streaming:
        from .stream import build_corpus_streaming

        corpus, manifest = build_corpus_streaming(args)
    else:
        corpus, manifest = build_corpus_with_manifest(args)
    try:
        output_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.building-{os.getpid()}-", dir=output_dir.parent))
    except OSError as error:
        raise CorpusError(f"cannot write beside {output_dir} ({error.strerror}); "
                          "choose an --output_dir in a writable folder") from error
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp makes it private; the finished folder should look like any other
    backup = None
    try:
        corpus.save_to_disk(str(staging))
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        _check_output_dir(output_dir, args.overwrite)  # another run may have written there meanwhile
        if output_dir.exists():
            backup = output_dir.with_name(f".{output_dir.name}.replaced-{os.getpid()}-{int(time.time())}")
            os.replace(output_dir, backup)
        try:
            os.replace(staging, output_dir)
        except OSError:
            if backup is not None:
                os.replace(backup, output_dir)
                backup = None
            raise
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, OSError):
            raise CorpusError(f"cannot write {output_dir} ({error.strerror or error}); "
                              "check the permissions and free space of its folder") from error
        raise
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)
    logger.info("wrote %s: %s", output_dir, json.dumps(manifest["splits"]))
    return output_dir


def load_corpus(path: str | os.PathLike):
    """The `DatasetDict` written by `prepare_corpus` (a thin `datasets.load_from_disk`)."""
    import datasets

    path = Path(path)
    if not (path / "dataset_dict.json").exists():
        raise CorpusError(f"{path} is not a corpus folder (no dataset_dict.json); build one with python -m corpora")
    try:
        return datasets.load_from_disk(str(path))
    except IndexError:
        # datasets saves an empty split as zero shards and then cannot load it back.
        raise CorpusError(f"{path} could not be loaded: a split is empty; rebuild it with python -m corpora") from None


def parse_args(argv: list[str] | None = None) -> CorpusArguments:
    """CorpusArguments from the command line; positional words after the options are inputs."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(CorpusArguments, description=__doc__.split("\n\n")[0],
                              formatter_class=__import__("argparse").ArgumentDefaultsHelpFormatter)
    args, rest = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    unknown = [word for word in rest if word.startswith("--")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.inputs = list(args.inputs) + list(rest)
    args.__post_init__()
    return args


def main(argv: list[str] | None = None) -> int:
    """`python -m corpora ...`: 0 on success; a `CorpusError` prints one line to stderr and returns 2."""
    # A handler of our own, removed on return: main() may run inside another program (or pytest).
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    package_logger = logging.getLogger(__package__)
    package_logger.addHandler(handler)
    level = package_logger.level
    package_logger.setLevel(logging.INFO)
    try:
        output_dir = prepare_corpus(parse_args(argv))
    except CorpusError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        package_logger.removeHandler(handler)
        package_logger.setLevel(level)
    print(output_dir)
    return 0
