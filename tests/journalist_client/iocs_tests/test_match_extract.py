"""Matching semantics (domains, PSL, IDN, URLs, paths, processes) and text extraction."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journalist_client.iocs import (
    CandidateKind,
    ExtractError,
    IndicatorIndex,
    Kind,
    Location,
    extract,
    load_bundle,
)
from journalist_client.iocs.extract import MAX_TEXT_CHARS
from journalist_client.iocs.normalise import normalise_domain, normalise_url_and_host
from support.iocs import SHARED_FILES, bundle, shared_bundle

# The module, not the function of the same name the package exports.
extract_module = importlib.import_module("journalist_client.iocs.extract")
normalise_module = importlib.import_module("journalist_client.iocs.normalise")

HERE = Location("description")


def _index(*patterns: str) -> IndicatorIndex:
    return IndicatorIndex.build(load_bundle(bundle(list(patterns)), "t.stix2").indicators)


def _hits(index: IndicatorIndex, text: str) -> set[str]:
    return {m.indicator.value for m in index.scan_text(text, HERE)}


CYRILLIC = "pegаsus-domain.com"  # the second letter "a" is U+0430, a homograph
CYRILLIC_A_LABEL = CYRILLIC.encode("idna").decode("ascii")
DOMAINS = _index("[domain-name:value = 'pegasus-domain.com']",
                 "[domain-name:value = 'duckdns.org']",
                 "[domain-name:value = 'c2.example.co.uk']",
                 f"[domain-name:value = '{CYRILLIC_A_LABEL}']")


@pytest.mark.parametrize(("text", "found"), [
    ("pegasus-domain.com", True),
    ("a.b.pegasus-domain.com", True),
    ("PEGASUS-DOMAIN.COM.", True),
    ("notpegasus-domain.com", False),
    ("pegasus-domain.com.evil.net", False),
    ("pegasus-domain.co", False),
    ("pegasus-domain-com.net", False),
])
def test_domain_semantics(text: str, found: bool) -> None:
    assert ("pegasus-domain.com" in _hits(DOMAINS, f"see {text} now")) is found


def test_public_suffix_indicator_matches_only_itself() -> None:
    # duckdns.org is a public suffix (PSL private section): every customer's name is
    # under it, so an indicator for it must not flag them all.
    assert "duckdns.org" in _hits(DOMAINS, "duckdns.org")
    assert "duckdns.org" not in _hits(DOMAINS, "someone.duckdns.org")
    assert "c2.example.co.uk" in _hits(DOMAINS, "x.c2.example.co.uk")
    assert not _hits(DOMAINS, "example.co.uk")


def test_idn_homograph_matches_only_its_own_a_label() -> None:
    assert CYRILLIC_A_LABEL.startswith("xn--")
    assert _hits(DOMAINS, f"visit {CYRILLIC}/login") == {CYRILLIC_A_LABEL}
    assert _hits(DOMAINS, f"visit {CYRILLIC_A_LABEL}") == {CYRILLIC_A_LABEL}
    assert _hits(DOMAINS, "visit pegasus-domain.com") == {"pegasus-domain.com"}
    assert _hits(DOMAINS, "visit pegäsus-domain.com") == set()


def test_url_exact_and_host() -> None:
    index = _index("[url:value = 'https://short.example/AbC?x=1']",
                   "[domain-name:value = 'evil.example']")
    matches = index.scan_text("got HTTPS://SHORT.EXAMPLE/AbC?x=1 and https://evil.example/p", HERE)
    assert {(m.indicator.value, m.how) for m in matches} == {
        ("https://short.example/AbC?x=1", "exact"), ("evil.example", "url-host")}
    # A shortened link is matched as given, never expanded: another path is another URL.
    assert _hits(index, "https://short.example/abc?x=1") == set()


def test_email_ignores_case_and_is_exact() -> None:
    index = _index("[email-addr:value = 'Bekker.Fredi@gmail.com']")
    assert _hits(index, "from BEKKER.FREDI@GMAIL.COM") == {"bekker.fredi@gmail.com"}
    assert _hits(index, "from xbekker.fredi@gmail.com") == set()


def test_paths_processes_and_names() -> None:
    index = _index("[file:path = '/data/local/tmp/wd/']", "[file:path = '/private/var/a/b']",
                   "[process:name = 'ReminderIntentsUIExtension']", "[process:name = 'bh']",
                   "[file:name = 'pe_main.js']")
    here = Location("attachment", device_output=True)
    assert {m.how for m in index.match_path("/data/local/tmp/wd/x/y", here)} == {"path-prefix"}
    assert index.match_path("/data/local/tmp/wdx", here) == []
    assert index.match_path("/private/var/a/bc", here) == []
    assert [m.how for m in index.match_path("/tmp/pe_main.js", here)] == ["basename"]
    assert [m.how for m in index.match_process("ReminderIntents", here)] == []
    assert [m.how for m in index.match_process("ReminderIntentsU", here)] == ["process-prefix16"]
    assert [m.how for m in index.match_process("bh", here)] == ["exact"]
    assert index.match_process("BH", here) == []  # MVT compares process names exactly
    # In free text, device artefacts are found on token boundaries only.
    assert _hits(index, "ps shows bh running") == {"bh"}
    assert _hits(index, "the bhx and abh and bh.y tokens") == set()
    assert _hits(index, "found /data/local/tmp/wd/run.sh there") == {"/data/local/tmp/wd/"}


def test_hashes_by_length_and_app_ids_ignoring_case() -> None:
    md5, sha256 = "0" * 31 + "1", "ab" * 32
    index = _index(f"[file:hashes.md5 = '{md5}']", f"[file:hashes.'SHA-256' = '{sha256}']",
                   "[app:id = 'com.client.appA']")
    assert _hits(index, f"hash {md5.upper()} and {sha256}") == {md5, sha256}
    assert _hits(index, "installed com.client.appa today") == {"com.client.appA"}
    assert _hits(index, "installed com.client.appa.extra today") == set()


def test_extract_arabic_french_english_and_defanged() -> None:
    text = (
        "وصلتني رسالة فيها الرابط\u200fhxxps://evil[.]example/a?b=c\u200f، من فضلكم تحققوا. "
        "Le lien « login-secure[.]example » m'est parvenu; "
        "mail: agent[at]spy(.)example, also 10.0.0[.]1 and الرابطsite.example؛"
    )
    got = {(c.kind, c.value) for c in extract(text)}
    assert (CandidateKind.URL, "https://evil.example/a?b=c") in got
    assert (CandidateKind.DOMAIN, "login-secure.example") in got
    assert (CandidateKind.EMAIL, "agent@spy.example") in got
    assert (CandidateKind.IPV4, "10.0.0.1") in got
    assert (CandidateKind.DOMAIN, "site.example") in got


@pytest.mark.parametrize(("text", "value"), [
    ("اتصل بي على +971 50 123 4567", "+971501234567"),
    ("appelez le 00 33 6 12 34 56 78", "+33612345678"),
    ("رقمي ٠٥٠١٢٣٤٥٦٧", "0501234567"),
    ("call (050) 123-4567 please", "0501234567"),
])
def test_phone_numbers(text: str, value: str) -> None:
    phones = [c.value for c in extract(text) if c.kind is CandidateKind.PHONE]
    assert phones == [value]


def test_idn_extracted_as_a_label() -> None:
    got = {c.value for c in extract("زوروا موقع пример.рф أو bücher.example")}
    assert {"xn--e1afmkfd.xn--p1ai", "xn--bcher-kva.example"} <= got


def test_text_limit() -> None:
    with pytest.raises(ExtractError):
        extract("a" * (MAX_TEXT_CHARS + 1))


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=400))
def test_extract_never_raises_on_any_text(text: str) -> None:
    for candidate in extract(text):
        assert candidate.value
        if candidate.kind in (CandidateKind.DOMAIN, CandidateKind.EMAIL):
            assert candidate.value.isascii()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["pegasus-domain.com", "hxxps://", "[.]", "[at]", "«", "»",
                                 "\u200f", "،", " ", "/", "x", "a.b", "@", "١٢٣", "+"]),
                max_size=30))
def test_scan_text_on_pasted_fragments(parts: list[str]) -> None:
    for match in DOMAINS.scan_text("".join(parts), HERE):
        assert match.indicator.kind in (Kind.DOMAIN, Kind.IPV4)
        assert match.location == HERE


def test_public_suffix_list_comes_from_the_wheel_without_network() -> None:
    # publicsuffixlist fetches a fresh list only from its separate update module (which
    # imports requests); the matcher must never load it, nor any HTTP client. (socket
    # itself is loaded by the standard library's email.utils, for message ids.)
    code = (
        "import sys\n"
        "from journalist_client.iocs import IndicatorIndex, Location, load_bundle\n"
        "from journalist_client.iocs.match import _psl\n"
        "assert _psl().privatesuffix('a.b.example.co.uk') == 'example.co.uk'\n"
        "loaded = [m for m in ('publicsuffixlist.update', 'requests', 'urllib.request',"
        " 'http.client') if m in sys.modules]\n"
        "print(loaded)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


# --- the fast expressions of extract.py against their plain forms ----------------------
# extract.py writes each expression so that it begins with a character class (the
# engine then skips ahead in C); these are the plain forms they must equal, match for
# match, on any text.

_ARABIC = extract_module._ARABIC
_HOST = extract_module._HOST
PLAIN = {
    "_DOMAIN": re.compile(rf"(?<![\w.-])({_HOST})(?![\w-])", re.IGNORECASE),
    "_EMAIL": re.compile(rf"(?<![\w.+-])([\w.+-]{{1,64}})@({_HOST})(?![\w-])", re.IGNORECASE),
    "_IPV4": re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\w)", re.ASCII),
    "_HASH": re.compile(r"\b[0-9A-Fa-f]{32,64}\b"),
    "_PHONE": re.compile(r"(?<![\w+])(?:\+|00)?\d[\d \u00a0().-]{6,20}\d(?!\w)"),
    "_SCHEME": re.compile(r"\bh(?:xx|\*\*|tt)p(s?)(?:\[:\]|:)//", re.IGNORECASE),
}
_PLAIN_SCRIPT_BREAK = re.compile(
    rf"([{_ARABIC}])(?=[A-Za-z0-9])|([A-Za-z0-9])(?=[{_ARABIC}])")
_PLAIN_BRACKETED = re.compile(r"\s?[\[({]\s*(\.|dot|@|at|:)\s*[\])}]\s?", re.IGNORECASE)

# Pieces that make the expressions' edge cases likely: digits in two scripts, hex,
# separators, defanging, Arabic letters beside Latin ones.
_PIECES = st.sampled_from([
    "a", "b", "F", "0", "1", "9", "00", "+", "+33", "\u0663", ".", "-", "_", "@", " ",
    "\u00a0", "(", ")", "[", "]", "{", "}", ":", "/", "//", "[.]", " [dot] ", "(at)",
    "hxxp", "hXXps", "http", "\u0627", "\u0644", "é", "deadbeef" * 4, "a1b2c3d4e5" * 4,
    "\n", "x.com", "1.2.3.4",
])
_TEXTS = st.lists(_PIECES, max_size=40).map("".join)


@settings(max_examples=400, deadline=None)
@given(_TEXTS)
def test_fast_expressions_equal_their_plain_forms(text: str) -> None:
    for name, plain in PLAIN.items():
        fast = getattr(extract_module, name)
        assert ([(m.span(), m.groups()) for m in fast.finditer(text)]
                == [(m.span(), m.groups()) for m in plain.finditer(text)]), name
    assert (extract_module._SCRIPT_BREAK.sub(extract_module._script_break, text)
            == _PLAIN_SCRIPT_BREAK.sub(r"\1\2 ", text))
    assert extract_module._unbracket(text) == _PLAIN_BRACKETED.sub(
        lambda m: extract_module._UNBRACKET[m.group(1).lower()], text)
    assert extract_module._SCHEME.sub(extract_module._scheme, text) == PLAIN["_SCHEME"].sub(
        r"http\1://", text)


# --- the short cuts of extract() and normalise_url_and_host against their plain forms ---

_URL_PIECES = st.sampled_from([
    "http://", "https://", "HTTP://", "hxxps[:]//", "ftp://", "Https://", "http[:]//",
    "a", "Z", "0", "-", "_", ".", "..", "/", "?", "#", ":", "@", ":8080", "[::1]", " ",
    "\n", "xn--", "xn--b-", "é", "\u0430", "\u200b", "example.org", "x.com", "«", "|",
])
_URL_TEXTS = st.lists(_URL_PIECES | _PIECES, max_size=30).map("".join)


def _plain_domains(prepared: str) -> dict[str, str]:
    # One finditer pass, dropping the matches that start inside a URL (the old loop).
    spans = [m.span() for m in extract_module._URL.finditer(prepared)]
    found: dict[str, str] = {}
    for m in extract_module._DOMAIN.finditer(prepared):
        if not any(start <= m.start() < end for start, end in spans):
            value = normalise_domain(m.group(1))
            if value is not None:
                found.setdefault(value, m.group(1))
    return found


@settings(max_examples=400, deadline=None)
@given(_URL_TEXTS)
def test_names_between_urls_are_those_of_one_pass(text: str) -> None:
    # extract() searches for names only between URLs, and only where a dot is.
    got = {c.value: c.raw for c in extract(text) if c.kind is CandidateKind.DOMAIN}
    assert got == _plain_domains(extract_module.refang(text))


def _plain_prepare(text: str) -> str:
    # extract's preparation with every step always applied.
    text = extract_module._SPECIAL.sub(
        lambda m: extract_module._TRANSLATE[ord(m.group())] or "", text)
    text = unicodedata.normalize("NFKC", text)
    text = extract_module._SCRIPT_BREAK.sub(extract_module._script_break, text)
    text = extract_module._SCHEME.sub(extract_module._scheme, text)
    return extract_module._unbracket(text)


@settings(max_examples=400, deadline=None)
@given(_URL_TEXTS)
def test_scheme_substitution_is_skipped_only_when_it_changes_nothing(text: str) -> None:
    assert extract_module.refang(text) == _plain_prepare(text)


@settings(max_examples=400, deadline=None)
@given(_URL_TEXTS)
def test_normal_urls_take_the_short_cut_to_the_same_result(url: str) -> None:
    assert normalise_url_and_host(url) == normalise_module._normalise_url_and_host(url.strip())
    for scheme in ("http://", "https://"):
        assert (normalise_url_and_host(scheme + url)
                == normalise_module._normalise_url_and_host((scheme + url).strip()))


def test_building_the_index_equals_adding_one_indicator_at_a_time() -> None:
    # build() makes the host table in one step when no two hosts share a value; with a
    # shared value (the second list) every indicator goes through add().
    every = [i for name in SHARED_FILES for i in shared_bundle(name).indicators]
    for indicators in (every, every + every[:5]):
        added = IndicatorIndex()
        for indicator in indicators:
            added.add(indicator)
        assert IndicatorIndex.build(iter(indicators)) == added


@settings(max_examples=200, deadline=None)
@given(_URL_TEXTS)
def test_without_phones_extract_gives_the_rest_unchanged(text: str) -> None:
    # scan_text asks for no phone numbers: nothing else may change.
    assert extract(text, phones=False) == [
        c for c in extract(text) if c.kind is not CandidateKind.PHONE]
