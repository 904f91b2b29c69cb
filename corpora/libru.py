"""lib.ru / az.lib.ru: page decoding, the work's text out of the HTML, and the plain-text layout.

    python -m corpora --source tolstoy --output_dir data/tolstoy
    python -m corpora --source libru http://az.lib.ru/t/tolstoj_lew_nikolaewich/text_0040.shtml --output_dir data/wp1

az.lib.ru serves windows-1251 with the charset only in the HTTP header; the work sits between
`<!--Section Begins-->` and `<!--Section Ends-->`, one `<dd>` per paragraph, with `<sup><u>N</u></sup>`
footnote marks and `<u>N</u>` numbers at the start of each footnote. lib.ru's .txt layout indents
paragraphs by 3 spaces, hard-wraps lines near 78 columns and leaves bare footnote numbers in the text.
"""

from __future__ import annotations

import codecs
import logging
import re

import charset_normalizer
from bs4 import BeautifulSoup, Comment
from bs4.dammit import EncodingDetector

from .errors import CorpusError

logger = logging.getLogger(__name__)

TOLSTOY_BASE_URL = "http://az.lib.ru/t/tolstoj_lew_nikolaewich/"

# Page name on az.lib.ru -> title, each with the public evidence for it (checked when no network reached the
# site: the transcribed page in ../shared/corpora, and public code that scrapes these pages naming what it
# fetched). Pages no evidence names were dropped: text_0039 (only ever listed, untitled, beside the novels).
# text_0073 is War and Peace in public scrapers too (e.g. "#download War and Peace by Tolstoy" before
# wget of text_0073); it is left out because the four volumes below hold the same novel.
TOLSTOY_CATALOGUE: dict[str, str] = {
    # <title>Lib.ru/Классика: Толстой Лев Николаевич. Война и мир. Том 1</title> of the page transcribed in
    # ../shared/corpora/tolstoy/libru_html (tests/test_corpora_libru.py checks it); a collocation study's
    # scraper lists text_0040, 0050, 0060, 0070 under the comment "4 тома Война и Мир".
    "text_0040": "Война и мир. Том 1",
    "text_0050": "Война и мир. Том 2",  # the same scraper: the second of the "4 тома Война и Мир"
    "text_0060": "Война и мир. Том 3",  # the same scraper: the third volume
    "text_0070": "Война и мир. Том 4",  # the same scraper: the fourth volume
    # "# Анна Каренина" / "# Анна" beside text_0080 in three scrapers, and "[Анна Каренина]" linking to it in an
    # IR course's README (it was wrongly called the War and Peace epilogue here before).
    "text_0080": "Анна Каренина",
    # "# Воскресение" beside text_0090 in the collocation scraper, and "[Воскресение]" linking to it in the IR
    # course's README (it was wrongly called Anna Karenina here before).
    "text_0090": "Воскресение",
    # The site's own page name; public scrapers list this URL among Tolstoy's novels.
    "text_1860_dekabristy": "Декабристы",
}

SECTION_BEGINS = "<!--Section Begins-->"
SECTION_ENDS = "<!--Section Ends-->"

# Elements that are never part of a work: site chrome, forms, scripts, counters, embedded objects.
_CHROME_TAGS = ("head", "script", "style", "noscript", "form", "select", "option", "input", "button",
                "textarea", "iframe", "img", "object", "embed", "map")
# Elements whose boundaries are paragraph boundaries.
_BLOCK_TAGS = ("p", "dd", "dt", "dl", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "ul", "ol",
               "blockquote", "center", "pre", "tr", "table", "hr", "body", "br", "xxx7")
_HTML_CANDIDATES = ["utf_8", "cp1251", "koi8_r"]
_WHITESPACE = re.compile(r"\s+")


def tolstoy_urls(base_url: str | None = None) -> dict[str, str]:
    """Catalogue name -> page URL under `base_url` (default az.lib.ru's Tolstoy folder)."""
    base = (base_url or TOLSTOY_BASE_URL).rstrip("/") + "/"
    return {name: f"{base}{name}.shtml" for name in TOLSTOY_CATALOGUE}


def _charset_of(content_type: str | None) -> str | None:
    """The charset parameter of a Content-Type header, if it names a codec Python knows."""
    if not content_type:
        return None
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            name = value.strip().strip("\"'")
            try:
                return codecs.lookup(name).name
            except LookupError:
                logger.warning("unknown charset %r in Content-Type, detecting instead", name)
    return None


def decode_html(raw: bytes, content_type: str | None = None) -> str:
    """Decode an HTML page: the HTTP charset when given, else a BOM or <meta charset>, else detection.

    Detection tries strict UTF-8 first (windows-1251 Russian text is never valid UTF-8 by accident),
    then lets charset-normalizer choose among windows-1251 and KOI8-R, the two encodings lib.ru uses.
    """
    charset = _charset_of(content_type)
    if charset:
        try:
            return raw.decode(charset).replace("\ufeff", "")
        except UnicodeDecodeError:
            logger.warning("page does not decode as its declared %s, detecting the encoding instead", charset)
    declared = "utf_8" if raw.startswith(codecs.BOM_UTF8) else EncodingDetector.find_declared_encoding(raw, is_html=True)
    for name in ([declared] if declared else []) + ["utf_8"]:
        try:
            return raw.decode(name).replace("\ufeff", "")
        except (UnicodeDecodeError, LookupError):
            pass
    best = charset_normalizer.from_bytes(raw, cp_isolation=_HTML_CANDIDATES[1:]).best()
    if best is None:
        raise CorpusError("cannot decode the page as UTF-8, windows-1251 or KOI8-R; "
                          "save it in one of these encodings and pass it with --source text PATH")
    return str(best).replace("\ufeff", "")


def _work_slice(html: str) -> str:
    """The part of the page between the section markers; a missing marker means 'from the start/to the end'."""
    begins, ends = html.find(SECTION_BEGINS), html.find(SECTION_ENDS)
    start = begins + len(SECTION_BEGINS) if begins >= 0 else 0
    stop = ends if ends >= start else len(html)
    if begins < 0 and ends < 0:
        logger.info("no <!--Section--> markers: taking the page body minus site chrome")
    return html[start:stop]


def extract_libru_html(html: str) -> list[str]:
    """The paragraphs of the work on an az.lib.ru / lib.ru page, as plain text without markup.

    Keeps the text between `<!--Section Begins-->` and `<!--Section Ends-->` (a missing marker means the
    start or the end of the page; with neither, the whole body), drops site chrome (forms, scripts,
    counters, and the <center>/<table> blocks of header, footer and navigation), footnote marks (`<sup>N</sup>`) and the
    `<u>N</u>` number that opens each footnote, decodes every entity (lxml also reads `&#103&#97`
    without semicolons) and turns &nbsp; into spaces. Each <dd>, <p>, <div>, heading or <br> ends a
    paragraph; one string per paragraph, empty ones dropped.
    """
    soup = BeautifulSoup(_work_slice(html), "lxml")
    for comment in soup.find_all(string=lambda s: isinstance(s, Comment)):
        comment.extract()
    # The site's header, footer, description and navigation blocks are <center>s and <table>s holding
    # links, forms or scripts; the work itself uses <center> only for headings and verse, without links.
    for tag in soup.find_all(["table", "center"]):
        if not tag.decomposed and tag.find(["a", "form", "select", "input", "script", "iframe"]) is not None:
            tag.decompose()
    for tag in soup.find_all(_CHROME_TAGS):
        tag.decompose()
    for tag in soup.find_all(["sup", "u"]):
        if tag.decomposed:
            continue
        text = tag.get_text().strip()
        if (tag.name == "sup" and (text.isdigit() or text in {"*", "**", "***"})) or (tag.name == "u" and text.isdigit()):
            tag.decompose()
    # HTML whitespace (source newlines included) is a space; only block boundaries make paragraphs.
    for text in soup.find_all(string=True):
        if text.find_parent("pre") is None:
            text.replace_with(_WHITESPACE.sub(" ", text))
    for tag in soup.find_all(_BLOCK_TAGS):
        tag.insert_before("\n")
        tag.append("\n")
    paragraphs = []
    for line in soup.get_text().replace("\xa0", " ").split("\n"):
        line = " ".join(line.split())
        if line:
            paragraphs.append(line)
    return paragraphs


# --- lib.ru plain-text layout ---------------------------------------------------------------------

_SENTENCE_END = tuple('.!?…»"\')')
_SEE_FOOTNOTES = re.compile(r"\s*\(\s*См\.\s+сноски[^)]*\)", re.IGNORECASE)
_FOOTNOTE_LABEL = re.compile(r"\(\s*сноска\s*\d+\s*\)", re.IGNORECASE)
# A marker after punctuation ("dites. 1", "famille,16", "Scherer".3"), not followed by a Latin word
# (French dates: "du 28 novembre") nor by "-го"/"-й" (Russian ordinals).
_MARK_AFTER_PUNCT = re.compile(r'(?<=[.,!?;:"»…)\]])(\s*)(\d{1,3})(?=\s*$|\s+(?![a-z])\S)(?!\s*-[^\s-])')
# A marker after a word ("sortie 4 - отвечал"), accepted only after a French word (see _is_latin_word)
# and before a dash, a parenthesis or a Cyrillic word.
_MARK_AFTER_WORD = re.compile(r"(?<=\S)(\s+)(\d{1,3})(?=\s*$|\s+(?:-|\(|[А-Яа-яЁё]))")
# A marker glued to a French word ("mon chevalier33"), where lib.ru lost the closing quote before it.
_MARK_GLUED = re.compile(r"(?<=[A-Za-z])()(\d{1,3})(?=\s|$)")
# Headings restart footnote numbering (ЧАСТЬ ВТОРАЯ, ТОМ ВТОРОЙ, СНОСКИ); Roman chapter numbers do not.
_HEADING = re.compile(r"^[^a-zа-яё]*[А-ЯЁ]{3,}[^a-zа-яё]*$")
_LATIN = re.compile(r"[A-Za-z]")


def _is_latin_word(paragraph: str, end: int) -> bool:
    """Whether the word ending at `end` is French/German (has a Latin letter; lib.ru turned é into й)."""
    start = paragraph.rfind(" ", 0, end) + 1
    return bool(_LATIN.search(paragraph[start:end]))


def remove_footnote_markers(paragraphs: list[str]) -> list[str]:
    """Drop lib.ru's bare footnote numbers from the text and the "(сноска N)" labels of the notes.

    The numbers are plain digits in the running text, so a digit is only taken for a marker when it is
    the next number of the sequence (1, 2, 3... restarting at each part heading; after punctuation one
    lost marker is tolerated, which on War and Peace finds as many as any wider gap) *and* it stands
    where markers stand: after punctuation, or after a French word and before Russian text or a dash.
    Dates, sums and counts ("в 10 часов", "entre 7 et 10 heures") fail one test or the other and stay.
    """
    expected = 1
    result = []
    for paragraph in paragraphs:
        if _HEADING.match(paragraph):
            expected = 1
            result.append(paragraph)
            continue
        if _FOOTNOTE_LABEL.search(paragraph):
            # The notes block: each "(сноска N)" opens a note, even where lib.ru did not break the line.
            head, *notes = _FOOTNOTE_LABEL.split(paragraph)
            result.extend(" ".join(part.split()) for part in [head, *notes])
            continue
        paragraph = _SEE_FOOTNOTES.sub("", paragraph)
        candidates = sorted(
            [(m.start(2), m.start(), m.end(), int(m.group(2)), True) for m in _MARK_AFTER_PUNCT.finditer(paragraph)]
            + [(m.start(2), m.start(), m.end(), int(m.group(2)), False) for m in _MARK_AFTER_WORD.finditer(paragraph)
               if _is_latin_word(paragraph, m.start())]
            + [(m.start(2), m.start(), m.end(), int(m.group(2)), False) for m in _MARK_GLUED.finditer(paragraph)]
        )
        cuts = []
        for _, start, end, number, after_punct in candidates:
            if cuts and start < cuts[-1][1]:
                continue
            if (after_punct and expected <= number <= expected + 1) or number == expected:
                cuts.append((start, end))
                expected = number + 1
        for start, end in reversed(cuts):
            # Keep one space where the marker separated two words ("peur, 2 садитесь" -> "peur, садитесь").
            joins_words = 0 < start and end < len(paragraph) and not paragraph[end].isspace()
            glue = " " if joins_words and paragraph[start - 1] != " " else ""
            paragraph = paragraph[:start] + glue + paragraph[end:]
        result.append(" ".join(paragraph.split()))
    return [p for p in result if p]


def split_libru_txt(text: str) -> list[str]:
    """Paragraphs of a lib.ru hard-wrapped text, footnote markers removed.

    An indented line (lib.ru indents by 3 spaces) or a blank line starts a new paragraph; other lines
    continue the current one, except an upper-case heading line, which is a paragraph of its own. A line
    at column 0 that starts with a dash opens a new paragraph only after a line that ended a sentence:
    lib.ru's wrapping also puts mid-sentence dashes ("- сказал он") there.
    Justification spaces inside lines are collapsed.
    """
    paragraphs: list[str] = []
    current: list[str] = []

    def flush() -> None:
        if current:
            paragraphs.append(" ".join(" ".join(line.split()) for line in current))
            current.clear()

    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        stripped = line.strip()
        if not stripped:
            flush()
        elif _HEADING.match(stripped) and len(stripped) <= 60:
            # A heading line ("СНОСКИ", "ЧАСТЬ ВТОРАЯ") stands alone even where lib.ru left no blank line.
            flush()
            paragraphs.append(" ".join(stripped.split()))
        elif line[0].isspace():
            flush()
            current.append(stripped)
        elif stripped[0] in "-—–" and current and current[-1].endswith(_SENTENCE_END):
            flush()
            current.append(stripped)
        else:
            current.append(stripped)
    flush()
    return remove_footnote_markers(paragraphs)
