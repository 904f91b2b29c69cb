"""az.lib.ru HTML extraction and lib.ru's plain-text layout on the real files in ../shared/corpora.

    .venv/bin/python -m pytest tests/test_corpora_libru.py -q
"""

import re

import pytest

from corpora import CorpusError, decode_html, extract_libru_html, read_text_file, repair_libru_quirks, split_libru_txt
from corpora.libru import remove_footnote_markers


@pytest.fixture(scope="module")
def libru_html(corpora_dir):
    return corpora_dir / "tolstoy" / "libru_html"


@pytest.fixture(scope="module")
def war_and_peace(corpora_dir):
    """The full lib.ru War and Peace, read once: its paragraphs."""
    return read_text_file(corpora_dir / "tolstoy" / "txt" / "war_and_peace_full.libru_txt.cp1251.txt").split("\n")


def test_decode_html_uses_the_header_charset_else_detects(libru_html):
    raw = (libru_html / "text_0040.head_fragment.cp1251.shtml").read_bytes()
    utf8 = (libru_html / "text_0040.head_fragment.utf8.shtml").read_bytes()
    expected = utf8.decode("utf-8")
    assert decode_html(raw, "text/html; charset=windows-1251") == expected
    assert decode_html(raw, "text/html") == expected  # az.lib.ru: no <meta charset>, detected as cp1251
    assert decode_html(raw, None) == expected
    assert decode_html(utf8, None) == expected
    assert decode_html(b"\xef\xbb\xbf" + utf8, "text/html") == expected  # BOM dropped
    # a wrong header charset falls back to detection instead of producing mojibake
    assert decode_html(utf8, "text/html; charset=ascii") == expected


def test_entities_without_semicolons_and_nbsp_are_decoded():
    html = "<body><dd>&nbsp;&nbsp;&nbsp;G&ecirc;nes &#103&#97&#98 pr&#233;viens&nbsp;x &amp; y<dd>второй</body>"
    assert extract_libru_html(html) == ["Gênes gab préviens x & y", "второй"]


def test_paragraph_boundaries_and_footnote_marks():
    html = ("<!--Section Begins--><dd>раб,<sup><u>1</u></sup> Ну\nздравствуйте<br>новая строка<p>третий</p>"
            "<dd>&nbsp;&nbsp;&nbsp;<u>12</u> Текст сноски<!--Section Ends--><dd>после конца")
    assert extract_libru_html(html) == ["раб, Ну здравствуйте", "новая строка", "третий", "Текст сноски"]


def test_missing_markers_fall_back_to_the_body_minus_chrome(libru_html):
    head = (libru_html / "text_0040.head_fragment.utf8.shtml").read_text(encoding="utf-8")
    tail = (libru_html / "text_0040.tail_fragment.utf8.shtml").read_text(encoding="utf-8")
    assert "<!--Section Ends-->" not in head and "<!--Section Begins-->" not in tail
    without_markers = head.replace("<!--Section Begins-->", "")
    paragraphs = extract_libru_html(without_markers)
    assert paragraphs == extract_libru_html(head)  # the chrome before the marker is dropped either way
    text = "\n".join(extract_libru_html(tail.replace("<!--Section Ends-->", "")))
    assert "Это субъект нервный и желчный" in text
    assert not any(word in text for word in ("Оценка", "шедевр", "Связаться с программистом", "Рейтинг", "document.write"))


def test_page_without_text_gives_no_paragraphs():
    assert extract_libru_html("<html><body><center><h2>Автор</h2><form><input></form></center>"
                              "<script>var a=1;</script><!--counter--></body></html>") == []


def test_undecodable_page_is_a_clear_error():
    with pytest.raises(CorpusError, match="cannot decode the page"):
        decode_html(bytes(range(128, 256)) * 4 + b"\x98\x98", None)


def test_libru_txt_no_paragraph_is_cut_by_a_line_wrap(war_and_peace):
    # A wrap that was not rejoined shows as a paragraph ending in a lowercase letter or a comma, followed
    # by one that starts in lowercase. In the running text that never happens; the notes blocks (after
    # each "СНОСКИ" heading, up to the next part) are excluded: they are lists of translated fragments.
    in_notes, prose = False, []
    for paragraph in war_and_peace:
        if paragraph == "СНОСКИ" or re.match(r"(ЧАСТЬ|ТОМ|ЭПИЛОГ)\b", paragraph):
            in_notes = paragraph == "СНОСКИ"
        prose.append(not in_notes)
    assert sum(prose) > 10000
    cut = [(a[-40:], b[:40]) for a, b, a_prose, b_prose in zip(war_and_peace, war_and_peace[1:], prose, prose[1:])
           if a_prose and b_prose and re.search(r"[a-zа-яё,]$", a) and re.match(r"[a-zа-яё]", b)]
    assert cut == []
    # and no paragraph carries lib.ru's justification padding or its hard wraps
    assert not any("  " in p or len(p) == 0 for p in war_and_peace)
    assert 11000 < len(war_and_peace) < 12500  # vs about 47 000 hard-wrapped lines
    long_paragraphs = sum(len(p) > 500 for p in war_and_peace)
    assert long_paragraphs > 1500


def test_libru_txt_keeps_dialogue_and_french_look_alikes(war_and_peace):
    assert war_and_peace[:5] == ["Л.Н. ТОЛСТОЙ", "ВОЙНА И МИР", "ТОМ ПЕРВЫЙ", "ЧАСТЬ ПЕРВАЯ", "I."]
    first = war_and_peace[5]
    # lib.ru's cp1251 look-alikes ("Gкnes", "prйviens") are kept as they are, not "repaired"
    assert first.startswith("- Еh bien, mon prince. Gкnes et Lucques ne sont plus que des apanages, des поместья")
    assert "je vous prйviens" in first
    assert first.endswith("Je vois que je vous fais peur, садитесь и рассказывайте.")
    assert war_and_peace[6].startswith("Так говорила в июле 1805 года")  # a number that is not a marker stays
    dialogue = [p for p in war_and_peace if p.startswith("- ")]
    assert len(dialogue) > 3000
    assert "- Dieu, quelle virulente sortie - отвечал, нисколько не смутясь" in war_and_peace[8]
    assert "entre 7 et 10 heures. Annette Scherer\"." in war_and_peace[7]


def test_libru_txt_footnote_markers_are_gone(war_and_peace):
    text = "\n".join(war_and_peace)
    assert "(сноска" not in text and "См. сноски" not in text
    # markers glued to a word or to punctuation ("famille,16", "imbйciles.19", "Scherer\".3")
    # (one known artefact of the source stays: a page number inside a split word, "неиз132 Вестного")
    assert re.findall(r"[^\W\d]\d{1,3}\b", text) == ["з132"]
    assert re.findall(r"(?<=\S)[.,!?;:\"»]\d{1,3}(?:\s|$)", text) == []
    assert 'называла "mon chevalier и который' in text
    for before, after in [("Mais а propos de votre famille,16 -", "Mais а propos de votre famille, -"),
                          ("des imbйciles.19 Ипполит", "des imbйciles. Ипполит"),
                          ("le malheureux Mack, 2 - проговорил", "le malheureux Mack, - проговорил")]:
        assert before not in text and after in text
    # the notes themselves are kept, without their "(сноска N)" labels
    assert any(p.startswith("Ну, что, князь, Генуа и Лукка стали не больше, как поместьями") for p in war_and_peace)
    assert "хорошие принципы" in war_and_peace


def test_footnote_sequence_keeps_numbers_that_are_not_markers():
    paragraphs = ["ЧАСТЬ ПЕРВАЯ", "- Bonjour, 1 - сказал он. Между 12 и 2 часами, в 1805 году.",
                  "Il vient le 3 mai. Vous savez tout. 2", "Было 7 человек, 9 лошадей.", "СНОСКИ", "(сноска 1) Здравствуйте,",
                  "(сноска 2) Вы всё знаете."]
    assert remove_footnote_markers(paragraphs) == [
        "ЧАСТЬ ПЕРВАЯ", "- Bonjour, - сказал он. Между 12 и 2 часами, в 1805 году.",
        "Il vient le 3 mai. Vous savez tout.", "Было 7 человек, 9 лошадей.", "СНОСКИ", "Здравствуйте,", "Вы всё знаете."]


def test_split_libru_txt_layout_rules():
    text = ("   Первый абзац, перенесенный\nна вторую строку, и\n- сказал он.\n"
            "   - Реплика.\n\nЗаголовок\n\n   Третий   абзац.\n")
    assert split_libru_txt(text) == ["Первый абзац, перенесенный на вторую строку, и - сказал он.", "- Реплика.",
                                     "Заголовок", "Третий абзац."]


def test_libru_yo_and_french_accents_are_repaired_on_the_real_file(war_and_peace):
    text, counts = repair_libru_quirks("\n".join(war_and_peace))
    assert counts["yo"] > 1000
    assert re.search(r"[А-Яа-яЁё]„", text) is None  # no „ left inside or at the end of a word
    assert "вс„" not in text and text.count("всё") > 500
    first = text.split("\n")[5]
    assert first.startswith("- Еh bien, mon prince. Gênes et Lucques ne sont plus que des apanages, des поместья")
    assert "je vous préviens" in first
    assert counts["french_accents"] > 1500
    assert "Napoléon" in text and "être" in text and "Gкnes" not in text


def test_libru_repair_rules():
    # ё inside and at the end of a word, Ё between capitals; a real „ opening a quotation stays
    assert repair_libru_quirks("Вс„ ещ„, ВС„Ж; Л„ля сказала: „Война“")[0] == "Всё ещё, ВСЁЖ; Лёля сказала: „Война“"
    # French accents only where the reading is certain; Russian words with a Latin look-alike stay
    text, counts = repair_libru_quirks("voilа dйjа mа chиre, зa; Mы cказал ma connaоtre kцnnen")
    assert text == "voilà déjà mа chère, ça; Mы cказал ma connaître können"
    assert counts == {"yo": 0, "french_accents": 6, "mixed_words_left": 3}
    assert repair_libru_quirks("Обычный текст, без причуд.") == ("Обычный текст, без причуд.", {
        "yo": 0, "french_accents": 0, "mixed_words_left": 0})


def test_catalogue_titles_match_the_transcribed_pages(libru_html):
    """Every catalogue page transcribed in ../shared/corpora/tolstoy/libru_html carries the catalogue's title."""
    from corpora import TOLSTOY_CATALOGUE

    checked = set()
    for path in sorted(libru_html.glob("text_*.utf8.shtml")):
        name = path.name.split(".")[0]
        title = re.search(r"<title>([^<]*)</title>", path.read_text(encoding="utf-8"))
        if name in TOLSTOY_CATALOGUE and title:
            assert title.group(1).endswith(f"Толстой Лев Николаевич. {TOLSTOY_CATALOGUE[name]}"), (name, title.group(1))
            checked.add(name)
    assert checked == {"text_0040"}
