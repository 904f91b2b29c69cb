"""Corpora for RoPE-GPT: download, decode, clean, de-duplicate and split into a `DatasetDict`.

    python -m corpora --source tolstoy --output_dir data/tolstoy
    python -m corpora --source text ../shared/corpora/tolstoy/txt --output_dir data/tolstoy_txt
    python -m corpora --source leipzig ../shared/corpora/tatar/leipzig/tat_books_2024_10K.tar.gz --output_dir data/tat10k

Each step is a function: `fetch` (cached, polite HTTP), `decode_html` + `extract_libru_html` (az.lib.ru
pages), `read_text_file` (local .txt, lib.ru layout), `read_leipzig` (Wortschatz archives),
`clean_documents` and `split_documents`, then `build_corpus` / `prepare_corpus` / `load_corpus`.
"""

from .builder import CorpusArguments, build_corpus, load_corpus, load_source_rows, main, prepare_corpus
from .cleaning import (CleaningStats, chunk_paragraphs, clean_documents, clean_text, overlapping_documents,
                       repair_libru_quirks, split_documents)
from .errors import CorpusError
from .fetch import FetchError, FetchResult, fetch
from .leipzig import LEIPZIG_URL, extract_archive, read_leipzig
from .libru import TOLSTOY_BASE_URL, TOLSTOY_CATALOGUE, decode_html, extract_libru_html, split_libru_txt, tolstoy_urls
from .text_files import detect_layout, find_text_files, read_text_file

__all__ = [
    "CleaningStats", "CorpusArguments", "CorpusError", "FetchError", "FetchResult", "LEIPZIG_URL",
    "TOLSTOY_BASE_URL", "TOLSTOY_CATALOGUE", "build_corpus", "chunk_paragraphs", "clean_documents",
    "clean_text", "decode_html", "detect_layout", "extract_archive", "extract_libru_html", "fetch",
    "find_text_files", "load_corpus", "load_source_rows", "main", "prepare_corpus", "read_leipzig",
    "overlapping_documents", "repair_libru_quirks", "read_text_file", "split_documents", "split_libru_txt", "tolstoy_urls",
]
