"""Search: every row of tests/data/search_cases.tsv, then the rules one by one.

Acceptance uses more cases of the same kinds, so the rule tests below exercise each
normalisation on words that are not in the TSV.
"""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import pytest

from journalist_client import search
from journalist_client.vault import _new_database

CASES = Path(__file__).resolve().parents[1] / "data" / "search_cases.tsv"


def _rows() -> list[dict[str, str]]:
    with open(CASES, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def _matches(query: str, *documents: str) -> list[int]:
    """Rowids (1-based document positions) the real FTS5 index returns for ``query``."""
    conn: sqlite3.Connection = _new_database()
    for n, doc in enumerate(documents, start=1):
        conn.execute("INSERT INTO search (rowid, body) VALUES (?, ?)",
                     (n, search.index_text([doc])))
    return sorted(search.search_rowids(conn, search.parse_query(query), 100))


@pytest.mark.parametrize("row", _rows(), ids=lambda r: f"{r['query']}|{r['why']}")
def test_search_cases(row: dict[str, str]) -> None:
    expected = [1] if row["match"] == "1" else []
    assert _matches(row["query"], row["document"]) == expected, row["why"]


def hit(query: str, document: str) -> bool:
    return _matches(query, document) == [1]


@pytest.mark.parametrize(("query", "document"), [
    ("احمد", "التقيت أحمد"), ("احمد", "التقيت إحمد"), ("أحمد", "التقيت احمد"),
    ("القران", "القرآن"), ("ٱلله", "الله"), ("اسرائيل", "إسرائيل"),
])
def test_alef_forms_fold(query: str, document: str) -> None:
    assert hit(query, document)


@pytest.mark.parametrize(("query", "document"), [
    ("مسؤول", "مسئول أمني"), ("مسئول", "المسؤول الأمني"), ("سوال", "سؤال مهم"),
    ("سؤال", "سوال مهم"), ("شئون", "وزارة الشؤون"),
])
def test_hamza_seats_fold(query: str, document: str) -> None:
    assert hit(query, document)


@pytest.mark.parametrize(("query", "document"), [
    ("مدرسة", "مُدَرِّسَةٌ"), ("تجسس", "تَجَسُّس"), ("كتب", "كُتُبٌ"), ("محمد", "مـحـمـد"),
    ("هاتف", "هـــاتف"),
])
def test_tashkeel_and_tatweel_are_ignored(query: str, document: str) -> None:
    assert hit(query, document)


@pytest.mark.parametrize(("query", "document"), [
    ("على", "علي"), ("علي", "على"), ("مستشفي", "مستشفى"),
    ("رسالة", "رساله"), ("رساله", "رسالة"), ("مكتبه", "المكتبة"),
])
def test_alef_maqsura_and_ta_marbuta(query: str, document: str) -> None:
    assert hit(query, document)


@pytest.mark.parametrize(("query", "document"), [
    ("0501234567", "رقمه ٠٥٠١٢٣٤٥٦٧"), ("٠٥٠١٢٣٤٥٦٧", "call 0501234567"),
    ("۱۲۳", "رقم ١٢٣"), ("١٢٣", "number 123"), ("123", "شماره ۱۲۳"),
])
def test_digits_fold(query: str, document: str) -> None:
    assert hit(query, document)


@pytest.mark.parametrize("prefix", ["ال", "وال", "فال", "بال", "كال", "لل", "ولل", "وبال",
                                    "فبال", "وكال", "و", "ف", "ب", "ك", "ل", "وب", "ول"])
def test_attached_particles_are_stripped_in_documents(prefix: str) -> None:
    stem = "هاتف" if prefix not in ("لل", "ولل") else "هاتف"
    assert hit("هاتف", f"كلام عن {prefix}{stem} فقط")


@pytest.mark.parametrize(("query", "document"), [
    ("الهاتف", "هاتف جديد"), ("بالهاتف", "الهاتف"), ("والناشطين", "ناشطين"),
    ("للصحفيين", "الصحفيين"),
])
def test_the_article_is_stripped_from_the_query(query: str, document: str) -> None:
    assert hit(query, document)


@pytest.mark.parametrize(("query", "document"), [
    ("زير", "الوزير"),  # a particle-looking letter inside a word is not stripped from it
    ("وزير", "زير"),   # the query keeps its own first letter unless it is the article
    ("عمل", "المعمل"), ("سجن", "للتجسس"), ("كتب", "مكتب"), ("هاتف", "هواتف"),
    ("امن", "الامنية"),
])
def test_precision_whole_words_only(query: str, document: str) -> None:
    assert not hit(query, document)


def test_short_stems_are_not_stripped() -> None:
    # "الآن" (now) must not become "ان" and then find every "أن" (that).
    assert not hit("الآن", "قال أن الهاتف")
    assert hit("الآن", "الآن")


@pytest.mark.parametrize(("query", "document"), [
    ("PEGASUS", "pegasus"), ("Élysée", "elysee"), ("NSO", "nso group"), ("Straße", "strasse"),
    ("ﻻ", "لا"),  # presentation forms (NFKC)
    ("ＷｈａｔｓＡｐｐ", "whatsapp"),  # full-width Latin
    ("garçon", "GARCON"), ("naïve", "naive"), ("coeur", "CŒUR"), ("œuvre", "oeuvre"),
    ("l'état", "Etat"), ("example.com", "see EXAMPLE.com/x"),
])
def test_latin_case_accents_and_compatibility_forms(query: str, document: str) -> None:
    assert hit(query, document)


def test_prefix_search_only_when_asked() -> None:
    assert not hit("predator", "Predators")
    assert hit("predator*", "Predators")


def test_all_words_must_match() -> None:
    assert _matches("pegasus الإمارات", "pegasus في الامارات", "pegasus only", "الإمارات") == [1]


# (query, rows found in a document 'a b col near'; None: refused as empty). Read as
# FTS5 syntax, 'a" OR "b' would find the row and 'NEAR(a b)' or 'col:a' would be
# operators; read as text, every word must be there, 'or' and 'and' included.
FTS_SYNTAX = [('"', None), ('a" OR "b', []), ("NEAR(a b)", [1]), ("x*y", []), ("a AND", []),
              ("-a", [1]), ("^a", [1]), ("col:a", [1]), ("(", None), ("a OR", []), ("*", None),
              ("a OR b", []), ("near col", [1])]


@pytest.mark.parametrize(("query", "found"), FTS_SYNTAX)
def test_fts_syntax_in_the_query_is_just_text(query: str, found: list[int] | None) -> None:
    conn = _new_database()
    conn.execute("INSERT INTO search (rowid, body) VALUES (1, 'a b col near')")
    if found is None:
        with pytest.raises(search.SearchError, match="nothing to search"):
            search.parse_query(query)
        return
    # No sqlite3.OperationalError, and exactly the rows whose words are all there.
    assert search.search_rowids(conn, search.parse_query(query), 10) == found


def test_empty_query_is_refused() -> None:
    with pytest.raises(search.SearchError, match="nothing to search"):
        search.parse_query("  ؟! ")


def test_snippet_shows_the_original_words_inert() -> None:
    q = search.parse_query("الامارات")
    text = "كلام قبل \x1b[31m ثم في الإمارات حدث ذلك"
    snip = search.snippet([("description", text)], q)
    assert snip.startswith("description: ")
    assert "[الإمارات]" in snip
    assert "\x1b" not in snip
    assert "\\x1b" in snip


def test_words_as_written_come_before_light_stems() -> None:
    # Newest first within each group, and every "as written" match before any stem-only
    # one, even an older one.
    docs = ("الهاتف مخترق", "اخترقوا هاتفي", "فتشوا هاتفها", "هاتف جديد")
    assert _matches("هاتف", *docs) == [1, 2, 3, 4]
    conn = _new_database()
    for n, doc in enumerate(docs, start=1):
        conn.execute("INSERT INTO search (rowid, body) VALUES (?, ?)",
                     (n, search.index_text([doc])))
    assert search.search_rowids(conn, search.parse_query("هاتف"), 10) == [4, 1, 3, 2]
    # The limit counts both groups.
    assert search.search_rowids(conn, search.parse_query("هاتف"), 3) == [4, 1, 3]


def test_a_stem_is_highlighted_in_the_snippet() -> None:
    q = search.parse_query("هاتف")
    assert search.raw_snippet([("description", "اخترقوا هاتفي أمس")], q) == \
        "description: اخترقوا [هاتفي] أمس"


def test_stems_never_meet_words_as_written() -> None:
    # The stem of هاتفي is indexed marked: a document that says هاتفي holds no plain هاتف.
    body = search.index_text(["هاتفي"]).split()
    assert "هاتف" not in body
    assert "هاتفي" in body
    assert any(t.endswith("هاتف") and t != "هاتف" for t in body)
