"""Loading STIX 2.1 bundles: the shared files, every key MVT knows, hostile input."""

from __future__ import annotations

import importlib
import io
import json
import re
from collections import Counter
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from journalist_client.iocs import BundleError, IndicatorFile, Kind, load_bundle, load_stream
from journalist_client.iocs.stix import (
    DEFAULT_FAMILY,
    _parse_with_grammar,
    normalise_value,
    parse_pattern,
)
from support.iocs import DATA, SHARED_FILES, bundle, shared_bundle

json_module = importlib.import_module("journalist_client.iocs._json")
stix_module = importlib.import_module("journalist_client.iocs.stix")

# Per-file counts from the rows of tests/data/iocs/SOURCE.md (one per pattern key).
EXPECTED = {
    "pegasus.stix2": ("Pegasus", {Kind.DOMAIN: 1438, Kind.EMAIL: 29, Kind.PROCESS: 81,
                                  Kind.FILE_NAME: 1}),
    "malware.stix2": ("MercenarySpywareCampaign", {Kind.DOMAIN: 2183, Kind.FILE_PATH: 1,
                                                   Kind.ANDROID_PROPERTY: 3}),
    "kingspawn.stix2": ("KingSpawn", {Kind.DOMAIN: 164, Kind.PROCESS: 1, Kind.FILE_PATH: 2}),
    "candiru.stix2": ("Candiru", {Kind.DOMAIN: 125}),
    "cellebrite.stix2": ("Cellebrite", {Kind.APP_ID: 1}),
    "darksword.stix2": ("DarkSword", {Kind.DOMAIN: 10, Kind.IPV4: 3, Kind.FILE_NAME: 7,
                                      Kind.FILE_PATH: 22, Kind.SHA256: 1}),
    "rcs.stix2": ("RCSLab", {Kind.DOMAIN: 26, Kind.SHA256: 9, Kind.APP_ID: 5}),
    "novispy.stix2": ("NoviSpy", {Kind.DOMAIN: 7, Kind.SHA256: 4, Kind.APP_ID: 4,
                                  Kind.APP_CERT: 3}),
}


def test_every_shared_file_is_expected() -> None:
    assert sorted(EXPECTED) == SHARED_FILES


@pytest.mark.parametrize("name", SHARED_FILES)
def test_shared_file_loads_with_its_family_and_counts(name: str) -> None:
    loaded = shared_bundle(name)
    family, counts = EXPECTED[name]
    assert loaded.families() == {family: sum(counts.values())}
    assert Counter(i.kind for i in loaded.indicators) == counts
    assert loaded.unsupported == ()
    assert all(i.source_file == name and i.indicator_id.startswith("indicator--")
               for i in loaded.indicators)


@pytest.mark.parametrize("name", SHARED_FILES)
def test_fast_path_agrees_with_the_oasis_parser_on_every_shared_pattern(name: str) -> None:
    objects = json.loads((DATA / name).read_bytes())["objects"]
    patterns = [o["pattern"] for o in objects if o["type"] == "indicator"]
    for pattern in patterns[:: max(1, len(patterns) // 150)]:
        assert parse_pattern(pattern) == _parse_with_grammar(pattern), pattern


def test_every_key_mvt_understands() -> None:
    h = "a" * 64
    patterns = {
        "[domain-name:value = 'Evil.Example.COM.']": (Kind.DOMAIN, "evil.example.com"),
        "[ipv4-addr:value = '192.0.2.7']": (Kind.IPV4, "192.0.2.7"),
        "[url:value = 'HTTPS://Evil.Example/p?a=1&b=2']": (Kind.URL, "https://evil.example/p?a=1&b=2"),
        "[email-addr:value = 'Spy@Example.COM']": (Kind.EMAIL, "spy@example.com"),
        "[process:name = 'bh']": (Kind.PROCESS, "bh"),
        "[file:name = 'x.js']": (Kind.FILE_NAME, "x.js"),
        "[file:path = '/private/var/x/']": (Kind.FILE_PATH, "/private/var/x/"),
        "[file:hashes.md5 = '" + "B" * 32 + "']": (Kind.MD5, "b" * 32),
        "[file:hashes.sha1 = '" + "c" * 40 + "']": (Kind.SHA1, "c" * 40),
        "[file:hashes.sha256 = '" + h + "']": (Kind.SHA256, h),
        "[file:hashes.'SHA-256' = '" + "D" * 64 + "']": (Kind.SHA256, "d" * 64),
        "[app:id = 'com.client.appA']": (Kind.APP_ID, "com.client.appA"),
        "[app:cert.sha256 = '" + "e" * 64 + "']": (Kind.APP_CERT, "e" * 64),
        "[app:cert.md5 = '" + "f" * 32 + "']": (Kind.APP_CERT, "f" * 32),
        "[configuration-profile:id = '1D4A6F3C-0000-4B8E-9C1A-7E2F5D9B1A00']":
            (Kind.PROFILE_ID, "1D4A6F3C-0000-4B8E-9C1A-7E2F5D9B1A00"),
        "[android-property:name = 'sys.brand.note']": (Kind.ANDROID_PROPERTY, "sys.brand.note"),
    }
    loaded = load_bundle(bundle(list(patterns)), "keys.stix2")
    assert loaded.unsupported == ()
    assert [(i.kind, i.value) for i in loaded.indicators] == list(patterns.values())
    assert loaded.indicators[10].stix_key == "file:hashes.'SHA-256'"


@pytest.mark.parametrize(("pattern", "value"), [
    (r"[url:value = 'https://e.example/?q=a=b&c=d']", "https://e.example/?q=a=b&c=d"),
    (r"[url:value = 'https://e.example/it\'s']", "https://e.example/it's"),
    (r"[url:value = 'https://e.example/a\\b']", "https://e.example/a\\b"),
    (r"[file:name = 'it\'s = \\ fine']", "it's = \\ fine"),
    (r"[ file:name='no spaces' ]", "no spaces"),
])
def test_values_with_quotes_equals_and_escapes(pattern: str, value: str) -> None:
    parsed = parse_pattern(pattern)
    assert parsed == _parse_with_grammar(pattern)
    assert not isinstance(parsed, str)
    assert parsed[1] == value
    loaded = load_bundle(bundle([pattern]), "q.stix2")
    assert loaded.indicators[0].value == value


def test_unsupported_patterns_are_counted_and_listed_with_their_reason() -> None:
    patterns = [
        "[domain-name:value = 'ok.example']",
        "[file:name = 'a' AND file:size = 3]",
        "[domain-name:value = 'a.example'] OR [domain-name:value = 'b.example']",
        "[file:name LIKE 'evil%']",
        "[file:name MATCHES '^evil']",
        "[file:name != 'a']",
        "[x-custom:thing = 'a']",
        "[file:name = 'a'] WITHIN 5 SECONDS",
        "[domain-name:value = 'broken",
    ]
    loaded = load_bundle(bundle(patterns), "mixed.stix2")
    assert [i.value for i in loaded.indicators] == ["ok.example"]
    assert len(loaded.unsupported) == 8
    assert [u.pattern for u in loaded.unsupported] == patterns[1:]
    reasons = [u.reason for u in loaded.unsupported]
    assert "AND/OR" in reasons[0]
    assert "observation operator OR" in reasons[1]
    assert "'LIKE'" in reasons[2]
    assert "'MATCHES'" in reasons[3]
    assert "'!='" in reasons[4]
    assert "not one MVT understands" in reasons[5]
    assert "qualifier" in reasons[6]
    assert "not a valid STIX 2.1 pattern" in reasons[7]
    assert all(u.family == "TestFamily" and u.source_file == "mixed.stix2"
               for u in loaded.unsupported)


def test_family_from_report_then_relationship_then_default() -> None:
    via_report = load_bundle(bundle(["[domain-name:value = 'r.example']"], "ReportName",
                                    link="report"), "r.stix2")
    assert via_report.indicators[0].family == "ReportName"
    unlinked = load_bundle(bundle(["[domain-name:value = 'u.example']"], link="none"), "u.stix2")
    assert unlinked.indicators[0].family == DEFAULT_FAMILY


def test_report_reference_is_kept() -> None:
    refs = [{"source_name": "Amnesty", "url": "https://www.amnesty.org/report"},
            {"source_name": "CVE", "external_id": "CVE-2021-30860"}]
    loaded = load_bundle(bundle(["[domain-name:value = 'r.example']"], references=refs), "r.stix2")
    assert loaded.indicators[0].references == ("https://www.amnesty.org/report",
                                               "CVE: CVE-2021-30860")


@pytest.mark.parametrize(("data", "message"), [
    (b"\xff\xfe{}", "not UTF-8"),
    (b"{", "not JSON"),
    (b'{"type": "bundle", "objects": [], "objects": []}', "duplicate key"),
    (b'{"type": "bundle", "objects": [NaN]}', "NaN is not JSON"),
    (b"[]", "not a STIX bundle"),
    (b'{"type": "bundle"}', "no 'objects' list"),
    (b'{"type": "bundle", "objects": [1]}', "objects[0] is not a STIX object"),
    (b'{"type": "bundle", "objects": [{"type": "indicator"}]}', "no string 'id'"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
])
def test_hostile_bundles_raise_bundle_error(data: bytes, message: str) -> None:
    with pytest.raises(BundleError, match=re.escape(message)):
        load_bundle(data, "bad.stix2")


def test_size_limit() -> None:
    with pytest.raises(BundleError, match="limit"):
        load_bundle(b" " * 101, "big.stix2", max_bytes=100)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=60))
def test_fast_path_and_parser_agree_on_any_value(value: str) -> None:
    literal = value.replace("\\", "\\\\").replace("'", "\\'")
    pattern = f"[file:name = '{literal}']"
    fast = parse_pattern(pattern)
    assert fast == _parse_with_grammar(pattern)
    assert fast == (Kind.FILE_NAME, value, "file:name")


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_give_a_file_or_bundle_error(data: bytes) -> None:
    outcome: object
    try:
        outcome = load_bundle(data, "fuzz.stix2").source_file
    except BundleError as exc:
        outcome = str(exc)
    assert outcome  # a loaded file, or a refusal that says why; nothing else escapes


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=80))
def test_any_pattern_text_is_parsed_or_set_aside(pattern: str) -> None:
    loaded = load_bundle(bundle([pattern]), "fuzz.stix2")
    assert len(loaded.indicators) + len(loaded.unsupported) == 1


@pytest.mark.parametrize("data", [
    # A duplicate key deep inside an object, one beside an escaped colon, one in a
    # nested list: the strict decoder refuses them wherever they are.
    b'{"type": "bundle", "objects": [{"type": "x", "id": "a", "id": "b"}]}',
    b'{"type": "bundle", "objects": [{"type": "x", "id": "a\\u003a", "z": 1, "z": 2}]}',
    b'{"type": "bundle", "objects": [{"type": "x", "id": "a", "e": [{"k": 1, "k": 1}]}]}',
])
def test_duplicate_keys_anywhere_are_refused(data: bytes) -> None:
    with pytest.raises(BundleError, match="duplicate key"):
        load_bundle(data, "dup.stix2")


def test_escaped_colon_without_duplicates_loads() -> None:
    data = bundle(["[url:value = 'https://e.example/a']"]).replace(b"https:", b"https\\u003a")
    assert [i.value for i in load_bundle(data, "esc.stix2").indicators] == ["https://e.example/a"]


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from("aZ.-/ 0é\u0430_"), max_size=30))
def test_inline_domain_path_agrees_with_parse_and_normalise(value: str) -> None:
    pattern = f"[domain-name:value = '{value}']"
    loaded = load_bundle(bundle([pattern]), "d.stix2")
    parsed = parse_pattern(pattern)
    expected = None if isinstance(parsed, str) else normalise_value(parsed[0], parsed[1])
    got = loaded.indicators[0].value if loaded.indicators else None
    assert got == expected


# --- reading in chunks ----------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=300), st.sampled_from(SHARED_FILES))
def test_any_chunk_size_gives_the_same_file(chunk: int, name: str) -> None:
    # Chunk boundaries fall inside keys, strings, numbers, escapes and multi-byte
    # characters: the result is the same as in one read.
    data = (DATA / name).read_bytes()
    whole = load_bundle(data, name)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(json_module, "CHUNK_BYTES", chunk)
        assert load_stream(io.BytesIO(data), name, max_bytes=len(data)) == whole


@pytest.mark.parametrize(("data", "message"), [
    (b'{"objects": [], "type": "bundle"', "not JSON: Expecting ',' delimiter at line 1"),
    (b'{"objects": [{"type": "x", "id": "a"} {}], "type": "bundle"}',
     "not JSON: Expecting ',' delimiter at line 1"),
    (b'{"type": "bundle", "objects": []} x', "not JSON: Extra data at line 1"),
    (b'{"type": "bundle", "objects": []}\n\n{', "not JSON: Extra data at line 3"),
    (b'{"type": "bundle", "objects": [\n\n\n{"type": }]}', "at line 4"),
    (b'{"type": "report", "objects": []}', "not a STIX bundle"),
    (b'{"type": "bundle", "objects": {}}', "no 'objects' list"),
    (b'{"type": "bundle", "objects": [], "type": "bundle"}', "duplicate key"),
    (b'{"type": "bundle", "objects": [{"type": "x", "id": "' + b"a" * 200 + b'"}]}',
     "a JSON value longer than 100 characters"),
])
def test_streamed_errors_say_what_and_where(data: bytes, message: str) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(json_module, "CHUNK_BYTES", 16)
        patch.setattr(stix_module, "MAX_OBJECT_CHARS", 100)
        with pytest.raises(BundleError, match=re.escape(message)):
            load_stream(io.BytesIO(data), "bad.stix2")


def test_a_stream_past_the_limit_is_refused_without_reading_on() -> None:
    data = bundle(["[domain-name:value = 'a.example']"] * 50)
    stream = io.BytesIO(data)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(json_module, "CHUNK_BYTES", 64)
        with pytest.raises(BundleError, match="larger than the 100-byte limit"):
            load_stream(stream, "big.stix2", max_bytes=100)
    assert stream.tell() <= 128


def test_the_family_may_come_after_its_indicators() -> None:
    # Relationships and reports after the indicators they name, as some files order them.
    ordered = json.loads(bundle(["[domain-name:value = 'late.example']"], "Late"))
    ordered["objects"].reverse()
    loaded = load_bundle(json.dumps(ordered).encode(), "late.stix2")
    assert [(i.value, i.family) for i in loaded.indicators] == [("late.example", "Late")]


@pytest.mark.parametrize("chunk", [7, 4096, 1 << 22])
def test_a_brace_and_comma_inside_an_element_do_not_cut_it(chunk: int) -> None:
    # Batches are cut after a "}" that a "," follows: here such pairs sit inside strings
    # and nested objects of every element, the last ones too.
    values = [f"v{n}.example" for n in range(40)]
    document = json.loads(bundle([f"[domain-name:value = '{v}']" for v in values], "Fam"))
    for n, obj in enumerate(document["objects"]):
        obj["description"] = "a}, {\"b\": 1}, " * (n % 3)
        obj["x_nested"] = [{"k": {"j": "}"}}, {"k": ["},"]}]
    data = json.dumps(document).encode()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(json_module, "CHUNK_BYTES", chunk)
        loaded = load_stream(io.BytesIO(data), "b.stix2", max_bytes=len(data))
    assert [i.value for i in loaded.indicators] == values
    assert {i.family for i in loaded.indicators} == {"Fam"}


# --- a batch of objects at once against the per-object loop ------------------------------

def _loop_only(data: bytes, name: str) -> object:
    # The same file with the batch path turned off: every object through the loop.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stix_module, "_MIN_BATCH", 1 << 62)
        return load_bundle(data, name)


@pytest.mark.parametrize("name", SHARED_FILES)
def test_shared_files_give_the_same_result_by_batch_and_by_object(name: str) -> None:
    data = (DATA / name).read_bytes()
    assert load_bundle(data, name) == _loop_only(data, name)


# Values the batch expression accepts or nearly does: case, dots at the ends or doubled,
# length past 253 (the batch path must give what the loop gives, or leave them to it).
_HOST_PIECES = st.sampled_from(["a", "Z", "0", "-", "_", ".", "..", "example.org", "x" * 250])


def _plain_bundle(values: list[str], link: str = "relationship") -> dict[str, Any]:
    plain = [f"v{n}.example" for n in range(40)]
    patterns = [f"[domain-name:value = '{v}']" for v in plain + values]
    document: dict[str, Any] = json.loads(bundle(patterns, "Fam", link=link))
    return document


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(_HOST_PIECES, max_size=5).map("".join), max_size=4),
       st.sampled_from(["relationship", "report", "none"]))
def test_a_batch_gives_what_the_loop_gives(values: list[str], link: str) -> None:
    data = json.dumps(_plain_bundle(values, link)).encode()
    assert load_bundle(data, "b.stix2") == _loop_only(data, "b.stix2")


_MALWARE = {"malware--1": "One", "malware--2": "Two"}


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 44), st.sampled_from([*_MALWARE, "malware--9"])),
                max_size=60),
       st.booleans(), st.booleans())
def test_each_indicator_gets_the_first_named_malware_a_relationship_gives(
        links: list[tuple[int, str]], in_order: bool, set_aside: bool) -> None:
    # 45 indicators (with set_aside, the last 5 are not of a key MVT knows, and the
    # batch goes through the loop; without, it is taken whole), relationships from any
    # of them to a known malware or to one the file does not hold, in any order, some
    # indicators named twice, some never; or every indicator once, in order, the usual
    # file. Either way an indicator's family is the first relationship's malware that
    # the file names, else the default, whichever path (batch, loop, one malware or
    # several) works it out.
    if in_order:
        links = [(n, "malware--1") for n in range(45)]
    ids = [f"indicator--{n}" for n in range(45)]
    objects: list[dict[str, Any]] = [
        {"type": "malware", "id": mid, "name": name} for mid, name in _MALWARE.items()]
    objects += [{"type": "indicator", "id": ids[n], "pattern_type": "stix",
                 "pattern": (f"[domain-name:value = 'd{n}.example']" if n < 40
                             else f"[x-unknown:value = 'u{n}']" if set_aside
                             else f"[domain-name:value = 'd{n}.example']")} for n in range(45)]
    objects += [{"type": "relationship", "id": f"relationship--{k}", "source_ref": ids[n],
                 "target_ref": target} for k, (n, target) in enumerate(links)]
    first: dict[str, str] = {}
    for n, target in links:
        if target in _MALWARE:
            first.setdefault(ids[n], _MALWARE[target])
    expected = {i: first.get(i, DEFAULT_FAMILY) for i in ids}
    data = json.dumps({"type": "bundle", "id": "bundle--1", "objects": objects}).encode()
    for loaded in (load_bundle(data, "f.stix2"), _loop_only(data, "f.stix2")):
        assert isinstance(loaded, IndicatorFile)
        kept = 40 if set_aside else 45
        assert {i.indicator_id: i.family for i in loaded.indicators} == {
            i: expected[i] for i in ids[:kept]}
        assert {u.indicator_id: u.family for u in loaded.unsupported} == {
            i: expected[i] for i in ids[kept:]}


def _odd(objects: list[dict[str, Any]], case: str) -> None:
    if case == "pattern_type":
        objects[3]["pattern_type"] = "sigma"
    elif case == "references":
        objects[5]["external_references"] = [{"source_name": "x", "url": "https://r.example"}]
    elif case == "target":
        # A relationship to a report (not a malware) does not give the report's name.
        objects.append({"type": "report", "id": "report--1", "name": "R", "object_refs": []})
        next(o for o in objects if o["type"] == "relationship")["target_ref"] = "report--1"
    elif case == "source":
        # Nor does one from an object that is not an indicator.
        source = objects[-1]["source_ref"]
        next(o for o in objects if o["id"] == source)["id"] = "x-indicator--1"
        objects[-1]["source_ref"] = "x-indicator--1"
    elif case == "named twice":
        # The first relationship of an indicator wins, even to a malware not in the file.
        objects.append(dict(objects[-1], id="relationship--2",
                            target_ref="malware--00000000-0000-4000-8000-000000000009"))
    elif case == "no id":
        del objects[7]["id"]
    elif case == "type":
        objects[9]["type"] = 3
    elif case == "pattern":
        objects[4]["pattern"] = ["x"]
    elif case == "identity":
        objects.append({"type": "identity", "id": "identity--1", "name": "x"})


@pytest.mark.parametrize("case", ["pattern_type", "references", "target", "source",
                                  "named twice", "no id", "type", "pattern", "identity"])
@pytest.mark.parametrize("value", ["ok.example", "a/b", "a b", " a", "\\'", "\\\\", "é.example",
                                   "\u0430.example", "a\tb", "a\nb", "", "A.example.",
                                   "x" * 250 + ".org"])
def test_objects_the_batch_leaves_to_the_loop(case: str, value: str) -> None:
    document = _plain_bundle([value])
    _odd(document["objects"], case)
    data = json.dumps(document).encode()
    try:
        expected = _loop_only(data, "b.stix2")
    except BundleError as exc:
        with pytest.raises(BundleError, match=re.escape(str(exc))):
            load_bundle(data, "b.stix2")
    else:
        assert load_bundle(data, "b.stix2") == expected


def test_a_plain_batch_takes_the_batch_path() -> None:
    # So that the comparison above compares two paths, not the loop with itself.
    data = bundle([f"[domain-name:value = 'v{n}.Example']" for n in range(40)], "Fam")
    taken: list[bool] = []
    read_batch = stix_module._Loader._read_batch

    def spy(self: object, batch: list[object]) -> bool:
        taken.append(read_batch(self, batch))
        return taken[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stix_module._Loader, "_read_batch", spy)
        loaded = load_bundle(data, "p.stix2")
    assert taken == [True]
    assert {(i.value, i.family) for i in loaded.indicators} == {
        (f"v{n}.example", "Fam") for n in range(40)}


# What each pattern of a batch must be, one at a time: the definition _batch_hosts
# checks a whole batch against with string operations.
_ONE_HOST_PATTERN = re.compile(r"\[domain-name:value = '([A-Za-z0-9_.-]{0,252}[A-Za-z0-9_-])'\]")
# Pieces of patterns, the batch shape's own among them, so that generated lists come
# close to it: separators inside a value, newlines, quotes, a prefix or suffix alone.
_PATTERN_PIECES = st.sampled_from([
    "[domain-name:value = '", "']", "\n", "'", "]", "[", "a", "B.c", ".", "..", "-", "_", "é",
    "[domain-name:value = ']", "']\n[domain-name:value = '", "x" * 250, " ", ""])


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(st.from_regex(r"[A-Za-z0-9_.-]{1,12}", fullmatch=True)
                          .map(lambda v: f"[domain-name:value = '{v}']"),
                          st.lists(_PATTERN_PIECES, max_size=6).map("".join)),
                max_size=6))
# Prefix and suffix at the ends of the batch but split between two patterns: only
# putting the batch back together tells this from ["… = 'a']", "[… = 'b']"].
@example(["[domain-name:value = 'a", "b']"])
@example(["[domain-name:value = 'a']", "[domain-name:value = ']", "[domain-name:value = 'b']"])
def test_batch_hosts_takes_exactly_the_patterns_of_the_batch_shape(patterns: list[str]) -> None:
    one = [_ONE_HOST_PATTERN.fullmatch(p) for p in patterns]
    expected = (None if any(m is None or ".." in m.group(1) for m in one)
                else [m.group(1).lower() for m in one if m is not None])
    assert stix_module._batch_hosts(patterns) == expected


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"[A-Za-z0-9_.-]{0,252}[A-Za-z0-9_-]", fullmatch=True))
def test_batch_domain_expression_agrees_with_the_oasis_parser(value: str) -> None:
    pattern = f"[domain-name:value = '{value}']"
    assert stix_module._batch_hosts([pattern]) == ([value.lower()] if ".." not in value else None)
    assert _parse_with_grammar(pattern) == (Kind.DOMAIN, value, "domain-name:value")
    expected = normalise_value(Kind.DOMAIN, value)
    assert (".." in value) or expected == value.lower()
