"""Search: Arabic and Latin normalisation, and the SQLite FTS5 index built on it.

The rules (docs/search.md has them with examples):

* Unicode NFKC (Arabic presentation forms and full-width letters become ordinary
  letters), then case folding.
* Arabic letters: the alef forms أ إ آ ٱ become ا; alef maqsura ى and Persian yeh ی
  become ي; ta marbuta ة (and ۀ) become ه; Persian keheh ک becomes ك; tatweel ـ is
  dropped; every combining mark is dropped (tashkeel, shadda, sukun, superscript alef,
  and Latin accents after NFKD, so é = e).
* Hamza on a seat (ؤ ئ) has two spellings in real text: مسؤول and مسئول are one word,
  and سؤال is often typed سوال. A document word is indexed with the seat folded to a
  bare hamza ء *and* with the hamza dropped (ؤ→و, ئ→ي); a query word is searched
  under both too.
* In a query, French elisions (l' d' j' m' n' s' t' c' qu') are dropped: l'état = état.
* Latin ligatures and letters without a decomposition: œ → oe, æ → ae, ø → o, ł → l.
* Digits: Arabic-Indic ٠-٩ and Persian ۰-۹ become 0-9.
* Words are maximal runs of letters and digits; a query word matches whole words only
  (``predator`` does not find ``predators``) unless it ends with ``*``.
* Attached Arabic particles: a document word that starts with the conjunctions و ف,
  the prepositions ب ك ل and/or the article ال (including لل = ل + ال) is indexed both
  as written and with each such prefix removed, if at least 3 letters remain. A query
  word that carries the article (ال، وال، بال، لل …) is searched without it; a query
  word without the article is searched as written, so searching وزير never finds a
  document that only says زير, while searching ناشطون finds والناشطون.
* Attached pronouns, a light stem: an Arabic word ending in ـي ـك ـه ـها ـنا ـني ـكم ـكن
  ـهم ـهن ـكما ـهما also has a *stem* form without it, if at least four letters remain
  (هاتفي → هاتف, رسالتي → رسالت and رساله, since ة is written ت before a pronoun); a
  final ة is never taken for the pronoun ه. Stems are indexed apart (marked), so a
  search lists the items where a word matched as written first, then those where only
  a stem matched. The four-letter floor keeps صحفي (journalist) from becoming صحف
  (newspapers).

The index lives in the in-memory vault database, never on disk in the clear.
"""

from __future__ import annotations

import functools
import re
import sqlite3
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from journalist_client.display import inert

__all__ = [
    "INDEX_RULES",
    "MAX_QUERY_WORDS",
    "Query",
    "SearchError",
    "count_rowids",
    "Term",
    "document_forms",
    "index_text",
    "parse_query",
    "raw_snippet",
    "search_rowids",
    "snippet",
    "snippet_parts",
    "snippet_text",
    "words",
]

_CHAR_MAP: Final = str.maketrans(
    {
        "\u0623": "\u0627",  # أ
        "\u0625": "\u0627",  # إ
        "\u0622": "\u0627",  # آ
        "\u0671": "\u0627",  # ٱ alef wasla
        "\u0672": "\u0627",
        "\u0673": "\u0627",
        "\u0649": "\u064a",  # ى alef maqsura
        "\u06cc": "\u064a",  # ی Persian yeh
        "\u06d2": "\u064a",  # ے yeh barree
        "\u0629": "\u0647",  # ة ta marbuta
        "\u06c0": "\u0647",  # ۀ
        "\u06d5": "\u0647",  # ە
        "\u06a9": "\u0643",  # ک keheh
        "\u0640": None,  # tatweel
        # Latin letters that no decomposition splits, written both ways in French text.
        "œ": "oe", "æ": "ae", "ø": "o", "ł": "l", "đ": "d", "ı": "i",
        **{chr(0x0660 + i): str(i) for i in range(10)},  # Arabic-Indic digits
        **{chr(0x06F0 + i): str(i) for i in range(10)},  # Persian digits
    }
)
_HAMZA_SEATED: Final = str.maketrans({"\u0624": "\u0621", "\u0626": "\u0621"})
_HAMZA_DROPPED: Final = str.maketrans({"\u0624": "\u0648", "\u0626": "\u064a"})
_HAMZA_SEATS: Final = frozenset("\u0624\u0626")

_WORD_RE: Final = re.compile(r"[^\W_]+")
# In the original (unfolded) text a word also spans its combining marks and tatweel.
_RAW_WORD_RE: Final = re.compile(r"(?:[^\W_]|[\u0300-\u036f\u0610-\u061a\u064b-\u065f\u0670"
                                 r"\u06d6-\u06ed\u08d3-\u08ff\u0640])+")
_ARABIC_LETTER: Final = re.compile(r"[\u0621-\u064a]")

_ARTICLE_PREFIXES: Final = tuple(
    sorted(
        ("ال", "وال", "فال", "بال", "كال", "لل", "ولل", "فلل", "وبال", "فبال", "وكال", "فكال"),
        key=len,
        reverse=True,
    )
)
_PARTICLE_PREFIXES: Final = ("و", "ف", "ب", "ك", "ل", "وب", "فب", "ول", "فل", "وك", "فك")
_MIN_STEM: Final = 3
# Attached pronouns, longest first. ـه is also how a folded ة ends: see _light_stems.
_PRONOUN_SUFFIXES: Final = ("كما", "هما", "كم", "كن", "هم", "هن", "ها", "نا", "ني", "ي", "ك", "ه")
_MIN_LIGHT_STEM: Final = 4
# Stem forms are indexed with this private-use mark in front: FTS5's unicode61 tokenizer
# keeps private-use characters inside tokens, and no word of a document or a query can
# contain one (they are not letters), so a stem never collides with a word as written.
_STEM_MARK: Final = "\ue000"
_TA_MARBUTA_ENDINGS: Final = frozenset("\u0629\u06c0")
# Bumped whenever the index forms change: an index built under other rules is rebuilt.
INDEX_RULES: Final = "2"
# French elision in a query (l'état, d'un, qu'il): the elided word is not searched for.
_ELISION_RE: Final = re.compile(r"(?<![^\W_])(?:[ldjmnstc]|qu)['’](?=[^\W_])", re.IGNORECASE)
MAX_QUERY_WORDS: Final = 16


class SearchError(ValueError):
    """The query cannot be searched (empty, or too many words)."""


def _fold_base(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold().translate(_CHAR_MAP)
    # NFKD splits accents and harakat off their letters so they can be dropped.
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)
                   and unicodedata.category(c) != "Mn")


def _variants(word_nfc: str) -> set[str]:
    # Seats are folded *before* NFKD, which would otherwise split ؤ into و + hamza above
    # and drop the mark, losing the seated spelling.
    base = _fold_base(word_nfc.translate(_HAMZA_SEATED))
    if not _HAMZA_SEATS.intersection(word_nfc):
        return {base}
    return {base, _fold_base(word_nfc.translate(_HAMZA_DROPPED))}


def words(text: str) -> list[str]:
    """The raw words of ``text`` (NFC), before folding."""
    return _RAW_WORD_RE.findall(unicodedata.normalize("NFC", text))


def _folded_tokens(word: str) -> set[str]:
    tokens: set[str] = set()
    for v in _variants(word):
        tokens.update(_WORD_RE.findall(v))
    return tokens


def _strip_forms(token: str) -> set[str]:
    forms = {token}
    if not _ARABIC_LETTER.match(token):
        return forms
    for prefix in (*_ARTICLE_PREFIXES, *_PARTICLE_PREFIXES):
        if token.startswith(prefix) and len(token) - len(prefix) >= _MIN_STEM:
            forms.add(token[len(prefix):])
    return forms


def _ends_in_ta_marbuta(word: str) -> bool:
    """Whether the word as written ends in ة (before any marks): folded, it ends in ه
    like the pronoun, but it is part of the word (مدرسة is not مدرس + ه)."""
    letters = [c for c in word if not unicodedata.combining(c) and c != "\u0640"]
    return bool(letters) and letters[-1] in _TA_MARBUTA_ENDINGS


def _light_stems(form: str, *, ta_marbuta: bool) -> set[str]:
    """The light stems of one folded Arabic form: the form itself, and without an attached
    pronoun if at least four letters remain (ت before it also read as ة, folded ه)."""
    if len(form) < _MIN_LIGHT_STEM or not _ARABIC_LETTER.match(form):
        return set()
    stems = {form}
    for suffix in _PRONOUN_SUFFIXES:
        if suffix == "ه" and ta_marbuta:
            continue
        if form.endswith(suffix) and len(form) - len(suffix) >= _MIN_LIGHT_STEM:
            stem = form[: -len(suffix)]
            stems.add(stem)
            if stem.endswith("ت"):
                stems.add(stem[:-1] + "ه")
            break
    return stems


@functools.lru_cache(maxsize=1 << 16)
def document_forms(word: str) -> frozenset[str]:
    """Every form of one document word as written (cached: real text repeats its words)."""
    forms: set[str] = set()
    for token in _folded_tokens(word):
        forms |= _strip_forms(token)
    return frozenset(forms)


@functools.lru_cache(maxsize=1 << 16)
def document_stems(word: str) -> frozenset[str]:
    """The light stems of one document word (unmarked), for its forms as written."""
    ta_marbuta = _ends_in_ta_marbuta(word)
    stems: set[str] = set()
    for form in document_forms(word):
        stems |= _light_stems(form, ta_marbuta=ta_marbuta)
    return frozenset(stems)


def _query_form(token: str) -> str:
    if _ARABIC_LETTER.match(token):
        for prefix in _ARTICLE_PREFIXES:
            if token.startswith(prefix) and len(token) - len(prefix) >= _MIN_STEM:
                return token[len(prefix):]
    return token


def index_text(texts: Iterable[str]) -> str:
    """The FTS5 body for a set of texts: each distinct form once, then each distinct
    light stem once (marked), space-separated."""
    seen: dict[str, None] = {}
    for text in texts:
        for word in words(text):
            for form in document_forms(word):
                seen.setdefault(form, None)
            for stem in document_stems(word):
                seen.setdefault(_STEM_MARK + stem, None)
    return " ".join(seen)


@dataclass(frozen=True)
class Term:
    forms: frozenset[str]
    prefix: bool
    # Light stems of the forms (empty for a prefix search or a non-Arabic word).
    stems: frozenset[str] = frozenset()

    def matches_as_written(self, word: str) -> bool:
        doc = document_forms(word)
        if self.prefix:
            return any(d.startswith(f) for d in doc for f in self.forms)
        return not self.forms.isdisjoint(doc)

    def matches(self, word: str) -> bool:
        """As written, or through a light stem."""
        return self.matches_as_written(word) or not self.stems.isdisjoint(document_stems(word))

    def _fts(self, *, stems: bool) -> str:
        star = "*" if self.prefix else ""
        alts = [f'"{f}"{star}' for f in sorted(self.forms)]
        if stems:
            alts += [f'"{_STEM_MARK}{s}"' for s in sorted(self.stems)]
        return "(" + " OR ".join(alts) + ")"


@dataclass(frozen=True)
class Query:
    terms: tuple[Term, ...]

    def fts(self, *, stems: bool = False) -> str:
        """The FTS5 MATCH expression: every word as written, or (``stems``) also through a
        light stem. Every form is quoted: user text is never syntax."""
        return " AND ".join(term._fts(stems=stems) for term in self.terms)

    @property
    def has_stems(self) -> bool:
        return any(term.stems for term in self.terms)

    def matches(self, word: str) -> bool:
        return any(t.matches(word) for t in self.terms)


def parse_query(text: str) -> Query:
    """Turn what the triager typed into terms: all words must appear, each whole."""
    terms: list[Term] = []
    text = _ELISION_RE.sub("", unicodedata.normalize("NFC", text))
    for raw in re.split(r"\s+", text.strip()):
        if not raw:
            continue
        prefix = raw.endswith("*")
        for word in words(raw):
            ta_marbuta = _ends_in_ta_marbuta(word)
            forms = frozenset(_query_form(t) for t in _folded_tokens(word))
            if forms:
                stems: set[str] = set()
                if not prefix:
                    for form in forms:
                        stems |= _light_stems(form, ta_marbuta=ta_marbuta)
                terms.append(Term(forms, prefix, frozenset(stems)))
    if not terms:
        raise SearchError("nothing to search for: type at least one word")
    if len(terms) > MAX_QUERY_WORDS:
        raise SearchError(f"too many words (at most {MAX_QUERY_WORDS})")
    return Query(tuple(terms))


def snippet(fields: Sequence[tuple[str, str]], query: Query, *, context: int = 8) -> str:
    """:func:`raw_snippet`, inert: ready for a terminal."""
    return inert(raw_snippet(fields, query, context=context))


def raw_snippet(fields: Sequence[tuple[str, str]], query: Query, *, context: int = 8) -> str:
    """``label: … words [match] words …`` from the first field with a match, as written."""
    return snippet_text(snippet_parts(fields, query, context=context))


def snippet_text(parts: Sequence[tuple[str, bool]]) -> str:
    """The pieces of :func:`snippet_parts` as one line, each match in brackets."""
    if not parts:
        return ""
    body = " ".join("".join(f"[{text}]" if hit else text for text, hit in parts[1:-1]).split())
    return f"{parts[0][0]}{body}{parts[-1][0]}"


def snippet_parts(fields: Sequence[tuple[str, str]], query: Query, *, context: int = 8
                  ) -> tuple[tuple[str, bool], ...]:
    """:func:`raw_snippet` as pieces ``(text, is_match)``, for a medium that marks a
    match otherwise than with brackets (the local UI's ``<mark>``, where a bracket the
    source wrote must not look like one).

    The first piece is ``"label: "`` (with ``"… "`` when the snippet starts mid-field),
    the last is ``" …"`` or ``""``; runs of white space in between are one space.
    Empty when no field matches.
    """
    for label, text in fields:
        source = unicodedata.normalize("NFC", text)
        spans = list(_RAW_WORD_RE.finditer(source))
        hits = [i for i, m in enumerate(spans) if query.matches(m.group())]
        if not hits:
            continue
        first = hits[0]
        lo, hi = max(0, first - context), min(len(spans), first + context + 1)
        pieces: list[tuple[str, bool]] = [(f"{label}: " + ("… " if lo > 0 else ""), False)]
        pos = spans[lo].start()
        for i in range(lo, hi):
            m = spans[i]
            gap = " ".join(source[pos:m.start()].split())
            if source[pos:m.start()] and not gap:
                gap = " "
            elif gap:
                left = " " if source[pos].isspace() and i > lo else ""
                right = " " if source[m.start() - 1].isspace() else ""
                gap = left + gap + right
            if gap:
                pieces.append((gap, False))
            pieces.append((m.group(), i in hits))
            pos = m.end()
        pieces.append((" …" if hi < len(spans) else "", False))
        return tuple(pieces)
    return ()


def search_rowids(conn: sqlite3.Connection, query: Query, limit: int) -> list[int]:
    """Matching item rowids: those where every word matched as written, newest first,
    then those where some word matched only through a light stem, newest first (FTS5
    walks rowids in order, so each pass stops early)."""
    sql = "SELECT rowid FROM search WHERE search MATCH ? ORDER BY rowid DESC LIMIT ?"
    exact = [r[0] for r in conn.execute(sql, (query.fts(), limit))]
    if not query.has_stems or len(exact) >= limit:
        return exact
    seen = set(exact)
    loose = conn.execute(sql, (query.fts(stems=True), limit + len(exact)))
    return (exact + [r[0] for r in loose if r[0] not in seen])[:limit]


def count_rowids(conn: sqlite3.Connection, query: Query) -> int:
    """How many items match, as written or through a light stem (search_rowids' both
    groups, without its limit)."""
    fts = query.fts(stems=query.has_stems)
    return int(conn.execute("SELECT count(*) FROM search WHERE search MATCH ?",
                            (fts,)).fetchone()[0])
