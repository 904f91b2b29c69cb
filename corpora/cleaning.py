"""Cleaning, cutting into documents, de-duplication and the seeded train/validation split.

    python -m corpora --source text ../shared/corpora/tolstoy/txt --output_dir data/tolstoy --min_chars 20 --max_doc_chars 20000

Rows are dicts with `text` and `source`. A long work becomes several documents of at most
`max_doc_chars` characters cut at paragraph boundaries (paragraphs joined by "\\n"), so that the split
has enough documents and each validation document is contiguous prose.
"""

from __future__ import annotations

import logging
import random
import re
import unicodedata
import zlib
from collections import Counter
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

_SPACES = re.compile(r"[^\S\n]+")
# Control characters (Unicode category Cc is exactly these ranges) except the newline, and the format
# characters that are noise in scraped prose: BOM, soft hyphen, zero-width space, word joiner.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ufeff\u00ad\u200b\u2060]")


def clean_text(text: str) -> str:
    """NFC, control and invisible characters removed, runs of spaces (nbsp, tabs) made one space,
    each line stripped, blank lines dropped: one paragraph per line."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    # Tabs (\x09) are whitespace and become spaces below; newlines separate paragraphs.
    text = _CONTROL.sub("", text)
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


# --- lib.ru's cp1251 conversion quirks ---------------------------------------------------------------
# lib.ru's cp1251 texts write "ё" as byte 0x84, which decodes to "„" (War and Peace: 1,015 times, "вс„").
# A real „ opens a quotation and so follows a space or a bracket; one that follows a Cyrillic letter is ё.
_LIBRU_YO = re.compile(r"(?<=[А-Яа-яЁё])„")
# French (and German) accents went through a Latin-1 -> cp1251 mix-up ("Gкnes", "prйviens"): each accented letter became
# the Cyrillic letter with the same byte. Only letters with a single reading are mapped back; "а" and "о"
# also stand for Latin a/o written with a Cyrillic look-alike ("аmi", "соusin", "mа"), so "а" is read as "à"
# only at the end of a word after l or j (là, voilà, déjà) and "о" as "î" only after "a" (maître, paraît).
_FRENCH_BY_CP1251 = {c: c.encode("cp1251").decode("latin-1") for c in "йикзвфщылпьцдЙИКЗ"}
_LATIN_LOOKALIKES = set("aceopxyABCEHKMOPTX")  # Latin letters that also look Cyrillic ("Mы" is Мы, not Mû)
_SHORT_FRENCH = {"зa": "ça", "Зa": "Ça", "oщ": "où", "Oщ": "Où"}  # two-letter words whose only Latin letter is a look-alike
_MIXED_WORD = re.compile(r"\w*[A-Za-z]\w*")


def _french_word(word: str) -> str | None:
    """The French word `word` was before lib.ru's conversion, or None when the reading is not certain."""
    if word in _SHORT_FRENCH:
        return _SHORT_FRENCH[word]
    latin = [c for c in word if "a" <= c.lower() <= "z"]
    if not any(c not in _LATIN_LOOKALIKES for c in latin):
        return None
    out = []
    for i, c in enumerate(word):
        if c in _FRENCH_BY_CP1251:
            out.append(_FRENCH_BY_CP1251[c])
        elif c == "а" and i == len(word) - 1 and i > 0 and word[i - 1] in "lj":
            out.append("à")
        elif c == "о" and i > 0 and word[i - 1] in "aA":
            out.append("î")
        elif "\u0400" <= c <= "\u04ff":
            return None  # a Cyrillic letter no accent becomes: a look-alike slip, not the conversion
        else:
            out.append(c)
    return "".join(out)


def repair_libru_quirks(text: str) -> tuple[str, dict[str, int]]:
    """`text` with lib.ru's cp1251 conversion quirks undone, and how many of each were repaired.

    - "„" right after a Cyrillic letter is "ё" ("вс„" -> "всё"; "Ё" between capitals), counted as `yo`;
    - a word mixing Latin letters with Cyrillic letters that stand for French accents is the French word
      ("prйviens" -> "préviens", "Gкnes" -> "Gênes"), counted as `french_accents`; mixed words whose reading
      is not certain stay as they are and are counted as `mixed_words_left`.
    """
    counts = {"yo": 0, "french_accents": 0, "mixed_words_left": 0}

    def yo(match: re.Match) -> str:
        counts["yo"] += 1
        before, after = text[match.start() - 1], text[match.end() : match.end() + 1]
        return "Ё" if before.isupper() and after.isupper() else "ё"

    text = _LIBRU_YO.sub(yo, text)

    def french(match: re.Match) -> str:
        word = match.group()
        if not re.search(r"[\u0400-\u04ff]", word):
            return word
        repaired = _french_word(word)
        counts["french_accents" if repaired else "mixed_words_left"] += 1
        return repaired or word

    return _MIXED_WORD.sub(french, text), counts


def chunk_paragraphs(text: str, max_doc_chars: int) -> list[str]:
    """Cut a text (paragraphs joined by "\\n") into documents of at most `max_doc_chars` characters.

    Cuts fall between paragraphs; a single paragraph longer than the limit is cut at the last space
    before it (or hard, if it has none), so the limit always holds.
    """
    if max_doc_chars <= 0 or len(text) <= max_doc_chars:
        return [text] if text else []
    documents: list[str] = []
    current: list[str] = []
    size = 0
    for paragraph in text.split("\n"):
        while len(paragraph) > max_doc_chars:
            cut = paragraph.rfind(" ", 0, max_doc_chars + 1)
            cut = cut if cut > 0 else max_doc_chars
            head, paragraph = paragraph[:cut].rstrip(), paragraph[cut:].lstrip()
            if current:
                documents.append("\n".join(current))
                current, size = [], 0
            documents.append(head)
        extra = len(paragraph) + (1 if current else 0)
        if current and size + extra > max_doc_chars:
            documents.append("\n".join(current))
            current, size, extra = [], 0, len(paragraph)
        if paragraph:
            current.append(paragraph)
            size += extra
    if current:
        documents.append("\n".join(current))
    return documents


@dataclass
class CleaningStats:
    """What `clean_documents` removed."""

    input_rows: int = 0
    documents: int = 0
    duplicates_removed: int = 0
    too_short_dropped: int = 0
    empty_dropped: int = 0
    per_source: dict = field(default_factory=dict)
    libru_repairs: dict = field(default_factory=lambda: {"yo": 0, "french_accents": 0, "mixed_words_left": 0})


def clean_documents(rows, *, min_chars: int = 20, max_doc_chars: int = 20000) -> tuple[list[dict], CleaningStats]:
    """Clean `rows` ({"text", "source"}), cut them into documents, drop exact duplicates and short rows.

    Returns the surviving rows in input order and a `CleaningStats`. A duplicate is a document whose
    cleaned text equals an earlier one (from any source); the first one is kept. Rows shorter than
    `min_chars` characters after cleaning are dropped (`max_doc_chars` <= 0 disables cutting). lib.ru's
    conversion quirks are undone first (`repair_libru_quirks`; a text without them is unchanged) and counted
    in `stats.libru_repairs`.
    """
    stats = CleaningStats()
    seen: set[str] = set()
    kept: list[dict] = []
    for row in rows:
        stats.input_rows += 1
        text, repairs = repair_libru_quirks(clean_text(row["text"]))
        for key, count in repairs.items():
            stats.libru_repairs[key] += count
        if not text:
            stats.empty_dropped += 1
            continue
        for document in chunk_paragraphs(text, max_doc_chars):
            if len(document) < min_chars:
                stats.too_short_dropped += 1
            elif document in seen:
                stats.duplicates_removed += 1
            else:
                seen.add(document)
                kept.append({"text": document, "source": row["source"]})
                stats.per_source[row["source"]] = stats.per_source.get(row["source"], 0) + 1
    stats.documents = len(kept)
    return kept, stats


_WORD = re.compile(r"\w+")


def _shingles(text: str, n: int, keep_one_in: int) -> set[int]:
    """A stable sample of the word n-grams of `text`: CRC32 hashes, those divisible by `keep_one_in`."""
    words = _WORD.findall(text.lower().replace("ё", "е"))
    hashes = (zlib.crc32(" ".join(words[i : i + n]).encode()) for i in range(max(len(words) - n + 1, 0)))
    return {h for h in hashes if h % keep_one_in == 0}


def overlapping_documents(texts: list[str], *, n: int = 8, min_share: float = 0.5, keep_one_in: int = 4) -> set[int]:
    """Indices of the documents that share at least `min_share` of their word `n`-grams with another document.

    Scraped libraries hold several editions of one work (lib.ru's War and Peace and az.lib.ru's volumes differ
    in punctuation, accents and paragraph breaks, so exact de-duplication misses them); such a document in
    validation would be scored on text the model trained on. A sample of the n-grams (CRC32, stable across
    runs) keeps memory at a fraction of the corpus.
    """
    per_document = [_shingles(text, n, keep_one_in) for text in texts]
    seen_in = Counter(h for shingles in per_document for h in shingles)
    return {
        i for i, shingles in enumerate(per_document)
        if shingles and sum(seen_in[h] > 1 for h in shingles) >= min_share * len(shingles)
    }  # fmt: skip


def split_documents(
    rows: list[dict], validation_split: float = 0.05, seed: int = 0, not_for_validation: set[int] = frozenset()
) -> tuple[list[dict], list[dict]]:
    """A seeded, deterministic (train, validation) split of whole rows; each keeps the input order.

    The validation set gets round(n * validation_split) rows, at least one when the fraction is positive
    and there are two rows or more; the same rows and seed always give the same split. Rows whose index is
    in `not_for_validation` (see `overlapping_documents`) always go to train; if too few rows are left to
    choose from, validation is smaller and a warning says so.
    """
    if not 0 <= validation_split < 1:
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
    n = len(rows)
    n_val = round(n * validation_split)
    if validation_split > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    eligible = [i for i in range(n) if i not in not_for_validation]
    if n_val > len(eligible):
        logger.warning("only %d of %d documents have no near-duplicate elsewhere in the corpus: validation gets "
                       "%d instead of %d", len(eligible), n, len(eligible), n_val)  # fmt: skip
        n_val = len(eligible)
    chosen = set(random.Random(seed).sample(eligible, n_val))
    train = [row for i, row in enumerate(rows) if i not in chosen]
    validation = [row for i, row in enumerate(rows) if i in chosen]
    return train, validation
