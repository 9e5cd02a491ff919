"""Properties over arbitrary text: output is always inert, queries never break FTS5."""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from journalist_client import search
from journalist_client.display import inert, inert_block
from journalist_client.vault import _new_database

_BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _unsafe(c: str) -> bool:
    return unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs", "Cn") or c in _BIDI


@given(st.text())
@settings(max_examples=500)
def test_inert_output_has_no_control_or_bidi_character(text: str) -> None:
    assert not any(_unsafe(c) for c in inert(text))
    assert not any(_unsafe(c) and c != "\n" and c != "\t"
                   for c in inert_block(text))


@given(st.text())
@settings(max_examples=300)
def test_inert_is_injective_enough_to_show_escapes_apart(text: str) -> None:
    # A source cannot write text that looks like an escape the client added.
    assert inert(text + "\x1b") != inert(text + "\\x1b")


_conn = _new_database()
_conn.execute("INSERT INTO search (rowid, body) VALUES (1, 'a b c')")


@given(st.text(max_size=200))
@settings(max_examples=300)
def test_any_query_is_safe_to_run(text: str) -> None:
    try:
        q = search.parse_query(text)
    except search.SearchError:
        return
    search.search_rowids(_conn, q, 5)


@given(st.text(alphabet=st.characters(min_codepoint=0x600, max_codepoint=0x6ff), min_size=1,
               max_size=12))
@settings(max_examples=300)
def test_every_arabic_word_finds_itself(word: str) -> None:
    body = set(search.index_text([word]).split())
    try:
        q = search.parse_query(word)
    except search.SearchError:
        return
    assert all(not t.forms.isdisjoint(body) for t in q.terms)


@given(st.text(min_size=1, max_size=40))
@settings(max_examples=500)
def test_any_text_is_found_by_searching_for_itself(text: str) -> None:
    body = set(search.index_text([text]).split())
    try:
        q = search.parse_query(text)
    except search.SearchError:
        return
    assert all(not t.forms.isdisjoint(body) or t.prefix for t in q.terms)
