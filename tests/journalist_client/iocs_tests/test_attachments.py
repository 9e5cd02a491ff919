"""Every shared file's indicators, placed everywhere a report carries them, are found.

Each test builds its inputs in memory: plain and defanged text, an e-mail (base64 and
quoted-printable bodies, an attached zip), a JSON document, and zipped MVT results
folders in the v3 and v2 layouts (shared/data/mvt_formats.md).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journalist_client.iocs import (
    Indicator,
    IndicatorFile,
    IndicatorIndex,
    Kind,
    Limits,
    Location,
    Match,
    ZipFormatError,
    ZipLimitError,
    read_zip,
    scan_attachment,
    suggest_severity,
)
from support.iocs import SHARED_FILES, defang, eml, mvt_zip, record_for, sample, zip_bytes

# Kinds a person can paste in a message; device artefacts come in MVT output or as text.
MESSAGE_KINDS = {Kind.DOMAIN, Kind.IPV4, Kind.URL, Kind.EMAIL, Kind.SHA256, Kind.SHA1, Kind.MD5}


def _found(matches: list[Match], indicator: Indicator) -> list[Match]:
    return [m for m in matches if m.indicator == indicator]


def _assert_all_found(matches: list[Match], indicators: list[Indicator]) -> None:
    missing = [(i.kind, i.value) for i in indicators if not _found(matches, i)]
    assert not missing, missing
    for indicator in indicators:
        match = _found(matches, indicator)[0]
        assert match.indicator.family == indicator.family
        assert match.indicator.source_file == indicator.source_file


def _sentence(indicator: Indicator, written: str) -> str:
    return {0: f"Bonjour, j'ai reçu « {written} » hier.",
            1: f"وصلني \u200f{written}\u200f، هل هو خطير؟",
            2: f"Got this: {written} (see above)."}[len(indicator.value) % 3]


@pytest.mark.parametrize("name", SHARED_FILES)
def test_text_plain_and_defanged(name: str, shared: dict[str, IndicatorFile],
                                 index: IndicatorIndex) -> None:
    picked = sample(list(shared[name].indicators))
    plain = "\n".join(_sentence(i, i.value) for i in picked)
    where = Location("description")
    _assert_all_found(index.scan_text(plain, where), picked)
    defangable = [i for i in picked if defang(i) is not None]
    defanged = "\n".join(_sentence(i, defang(i) or "") for i in defangable)
    _assert_all_found(index.scan_text(defanged, where), defangable)
    urls = [i for i in picked if i.kind is Kind.DOMAIN]
    links = " ".join(f"hxxps://{i.value}/login?id=1" for i in urls)
    matches = index.scan_text(links, where)
    _assert_all_found(matches, urls)


@pytest.mark.parametrize("name", SHARED_FILES)
def test_every_domain_of_the_file_in_one_text(name: str, shared: dict[str, IndicatorFile],
                                              index: IndicatorIndex) -> None:
    hosts = [i for i in shared[name].indicators if i.kind in (Kind.DOMAIN, Kind.IPV4)]
    # novispy.stix2 keeps IPv4 addresses under domain-name (SOURCE.md): no "www." on those.
    text = " ، ".join(f"www.{i.value}" if i.value[-1].isalpha() else i.value for i in hosts)
    _assert_all_found(index.scan_text(text, Location("links")), hosts)


@pytest.mark.parametrize("name", SHARED_FILES)
def test_look_alikes_do_not_match(name: str, shared: dict[str, IndicatorFile],
                                  index: IndicatorIndex) -> None:
    for indicator in sample(list(shared[name].indicators)):
        if indicator.kind is not Kind.DOMAIN:
            continue
        value = indicator.value
        look_alikes = [f"not{value}", f"{value}.evil-example.net", value.replace(".", "-", 1)]
        homograph = value.replace("a", "\u0430", 1).replace("o", "\u043e", 1)
        if homograph != value:
            look_alikes.append(homograph)
        for text in look_alikes:
            assert not _found(index.scan_text(f"see {text} now", Location("d")), indicator), text


@pytest.mark.parametrize("name", SHARED_FILES)
@pytest.mark.parametrize("cte", ["base64", "quoted-printable"])
def test_in_an_email(name: str, cte: str, shared: dict[str, IndicatorFile],
                     index: IndicatorIndex) -> None:
    picked = sample(list(shared[name].indicators))
    body = "\n".join(_sentence(i, i.value) for i in picked)
    emails = [i for i in picked if i.kind is Kind.EMAIL]
    sender = emails[0].value if emails else "someone@example.org"
    inner = zip_bytes({"notes/pasted.txt": body.encode()})
    data = eml(body, sender=sender, cte=cte, attachments=[("evidence.zip", inner)])
    scan = scan_attachment(index, "message.eml", data, Location("attachment", "message.eml"))
    assert scan.problems == []
    _assert_all_found(scan.matches, picked)
    in_body = [m for m in scan.matches if m.location.path[:1] == ("part 1",)]
    in_zip = [m for m in scan.matches if m.location.path[-1:] == ("notes/pasted.txt",)]
    _assert_all_found(in_body, picked)
    _assert_all_found(in_zip, picked)
    if emails:
        assert _found([m for m in scan.matches if m.location.path == ("header:From",)], emails[0])


@pytest.mark.parametrize("name", SHARED_FILES)
def test_in_json(name: str, shared: dict[str, IndicatorFile], index: IndicatorIndex) -> None:
    picked = sample(list(shared[name].indicators))
    document = {"case": {"notes": [f"link https://{i.value}/x" if i.kind is Kind.DOMAIN
                                   else i.value for i in picked]}}
    scan = scan_attachment(index, "export.json", json.dumps(document).encode(),
                           Location("attachment", "export.json"))
    _assert_all_found(scan.matches, picked)
    assert not any(m.location.device_output for m in scan.matches)


@pytest.mark.parametrize("name", SHARED_FILES)
@pytest.mark.parametrize("version", ["v3", "v2"])
def test_mvt_output_zip_is_rematched(name: str, version: str, shared: dict[str, IndicatorFile],
                                     index: IndicatorIndex) -> None:
    picked = sample(list(shared[name].indicators))
    data = mvt_zip(picked, version)
    scan = scan_attachment(index, "results.zip", data, Location("attachment", "results.zip"))
    assert scan.problems == []
    assert scan.claims == []
    assert scan.mvt_version == ("2026.7.29" if version == "v3" else "2.7.0")
    _assert_all_found(scan.matches, picked)
    for indicator in picked:
        match = _found(scan.matches, indicator)[0]
        slug, _ = record_for(indicator)
        assert match.location.device_output
        assert match.location.path[0] == f"mvt-results/{slug}.json"
    assert {"mvt-results/command.log", "mvt-results/timeline.csv"} <= set(scan.skipped)
    suggestion = suggest_severity(scan.matches)
    assert suggestion is not None
    assert (suggestion.level, suggestion.confidence) == ("S2", "strong-device")


@pytest.mark.parametrize("version", ["v3", "v2"])
def test_reporter_claims_are_kept_apart_from_our_matches(version: str,
                                                         shared: dict[str, IndicatorFile],
                                                         index: IndicatorIndex) -> None:
    pegasus = shared["pegasus.stix2"].indicators
    claimed = next(i for i in pegasus if i.kind is Kind.DOMAIN)
    data = mvt_zip([claimed], version, claim=claimed)
    scan = scan_attachment(index, "r.zip", data, Location("attachment", "r.zip"))
    # v3 writes the alert twice (sms_detected.json and alerts.json): one claim.
    claims = [(c.indicator_value, c.family, c.mvt_format, c.level) for c in scan.claims]
    level = "CRITICAL" if version == "v3" else ""
    assert claims == [(claimed.value, "Pegasus", version, level)]
    assert scan.claims[0].location.path[0] == "mvt-results/sms_detected.json"
    # Our re-match found it in sms.json; the detected file is not re-matched twice.
    assert {m.location.path[0] for m in _found(scan.matches, claimed)} == {"mvt-results/sms.json"}


def test_claims_only_folder_is_rematched_from_the_claimed_records(
        shared: dict[str, IndicatorFile], index: IndicatorIndex) -> None:
    claimed = next(i for i in shared["kingspawn.stix2"].indicators if i.kind is Kind.PROCESS)
    data = mvt_zip([claimed], "v2", claim=claimed, with_records=False)
    scan = scan_attachment(index, "r.zip", data, Location("attachment", "r.zip"))
    assert [c.family for c in scan.claims] == ["KingSpawn"]
    assert _found(scan.matches, claimed)


def test_single_mvt_files(shared: dict[str, IndicatorFile], index: IndicatorIndex) -> None:
    process = next(i for i in shared["pegasus.stix2"].indicators if i.kind is Kind.PROCESS)
    slug, record = record_for(process)
    records = json.dumps([record]).encode()
    scan = scan_attachment(index, f"{slug}.json", records, Location("attachment", "x"))
    assert [m.location.device_output for m in _found(scan.matches, process)] == [True]
    alerts = json.dumps([{"level": "HIGH", "module": "sms", "message": "Apple warning",
                          "event_time": "", "event": {}, "matched_indicator": None}]).encode()
    scan = scan_attachment(index, "alerts.json", alerts, Location("attachment", "alerts.json"))
    assert [(c.level, c.indicator_value) for c in scan.claims] == [("HIGH", "")]
    suggestion = suggest_severity([], scan.claims)
    assert suggestion is not None
    assert suggestion.level == "S3"


def test_message_domain_suggests_s3(shared: dict[str, IndicatorFile],
                                    index: IndicatorIndex) -> None:
    domain = shared["candiru.stix2"].indicators[0]
    matches = index.scan_text(f"lien: https://{domain.value}/a", Location("description"))
    suggestion = suggest_severity(matches)
    assert suggestion is not None
    assert (suggestion.level, suggestion.confidence) == ("S3", "strong-indicator")
    assert suggest_severity([]) is None


def test_attachment_hash_and_inner_hashes(shared: dict[str, IndicatorFile],
                                          index: IndicatorIndex) -> None:
    sha = next(i for i in shared["rcs.stix2"].indicators if i.kind is Kind.SHA256)
    assert _found(index.match_hash(sha.value.upper(), Location("attachment", "a.apk")), sha)


# --- limits -----------------------------------------------------------------------

def test_zip_limits_are_reported_not_raised(index: IndicatorIndex) -> None:
    bomb = zip_bytes({"zeros.txt": b"\0" * 5_000_000})
    scan = scan_attachment(index, "bomb.zip", bomb, Location("attachment", "bomb.zip"))
    assert scan.matches == []
    assert ["compression ratio" in p.reason for p in scan.problems] == [True]
    many = zip_bytes({f"f{n}.txt": b"x" for n in range(30)})
    with pytest.raises(ZipLimitError, match="30 entries"):
        read_zip(many, Limits(max_entries=29))
    with pytest.raises(ZipLimitError, match="total size"):
        read_zip(many, Limits(max_total_bytes=29))
    with pytest.raises(ZipLimitError, match="declares"):
        read_zip(zip_bytes({"a.txt": b"x" * 100}), Limits(max_entry_bytes=99))


def test_nesting_depth(shared: dict[str, IndicatorFile], index: IndicatorIndex) -> None:
    domain = shared["pegasus.stix2"].indicators[0]
    data = f"https://{domain.value}/".encode()
    for level in range(4):
        data = zip_bytes({f"level{level}.zip" if level else "x.txt": data})
    deep = scan_attachment(index, "deep.zip", data, Location("attachment", "deep.zip"),
                           Limits(max_depth=3))
    assert deep.matches == []
    assert ["nested deeper" in p.reason for p in deep.problems] == [True]
    ok = scan_attachment(index, "deep.zip", data, Location("attachment", "deep.zip"),
                         Limits(max_depth=5))
    assert [m.location.path for m in ok.matches] == [
        ("level3.zip", "level2.zip", "level1.zip", "x.txt")]


def test_entry_names_are_labels_not_paths(shared: dict[str, IndicatorFile],
                                          index: IndicatorIndex, tmp_path: object) -> None:
    domain = shared["pegasus.stix2"].indicators[0]
    data = zip_bytes({"../../etc/passwd": f"{domain.value}".encode()})
    scan = scan_attachment(index, "evil.zip", data, Location("attachment", "evil.zip"))
    assert [m.location.path for m in scan.matches] == [("../../etc/passwd",)]


def test_corrupt_and_encrypted_zips() -> None:
    good = zip_bytes({"a.txt": b"hello world" * 10})
    with pytest.raises(ZipFormatError):
        read_zip(good[: len(good) // 2])
    flipped = bytearray(good)
    flipped[40] ^= 0xFF  # inside the compressed data: CRC or inflate error
    with pytest.raises(ZipFormatError):
        read_zip(bytes(flipped))
    # zipfile cannot write encrypted entries: set the "encrypted" flag bit in both headers.
    encrypted = bytearray(good)
    local, central = encrypted.find(b"PK\x03\x04"), encrypted.find(b"PK\x01\x02")
    encrypted[local + 6] |= 0x1
    encrypted[central + 8] |= 0x1
    with pytest.raises(ZipFormatError, match="encrypted"):
        read_zip(bytes(encrypted))


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2000))
def test_read_zip_raises_only_documented_errors(data: bytes) -> None:
    outcome: object
    try:
        outcome = read_zip(b"PK\x03\x04" + data, Limits(max_total_bytes=1 << 20))
    except (ZipFormatError, ZipLimitError) as exc:
        outcome = str(exc)
    assert outcome is not None


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_read_zip_on_mutated_real_zips(data: st.DataObject) -> None:
    good = bytearray(zip_bytes({"a/sms.json": b'[{"links": ["https://x.example/"]}]' * 20,
                                "b.zip": zip_bytes({"c.txt": b"c" * 300})}))
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(good) - 1))
        good[position] = data.draw(st.integers(0, 255))
    outcome: object
    try:
        outcome = read_zip(bytes(good), Limits(max_total_bytes=1 << 20))
    except (ZipFormatError, ZipLimitError) as exc:
        outcome = str(exc)
    assert outcome is not None


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["x.eml", "x.json", "x.txt", "x.zip", "alerts.json", "sms_detected.json"]),
       st.binary(max_size=1500))
def test_scan_attachment_never_raises(name: str, data: bytes) -> None:
    index = IndicatorIndex()
    scan = scan_attachment(index, name, data, Location("attachment", name))
    assert scan.matches == []


def test_a_record_that_only_contains_a_match_is_not_pinned_with_it(index: IndicatorIndex) -> None:
    # Found by the peer comparison with mvt check-iocs: the batched text search pinned
    # a match to every string containing its candidate, so "/a/b.txtx" was flagged with
    # the indicator "/a/b.txt" of the record before it.
    path = "/private/var/Keychains/keychain_dump.txt"
    records = [{"isodate": "2024-05-01 10:00:00.000000", "path": path},
               {"isodate": "2024-05-01 10:00:00.000000", "path": path + "x"}]
    data = zip_bytes({"r/info.json": b'{"mvt_version": "2026.7.29"}',
                      "r/aqf_files.json": json.dumps(records).encode()})
    scan = scan_attachment(index, "mvt.zip", data, Location("attachment", "mvt.zip"))
    pointers = {m.location.path[1] for m in scan.matches if m.indicator.value == path}
    assert pointers == {"/0/path"}


def test_a_value_repeated_in_records_is_pinned_at_every_record(index: IndicatorIndex,
                                                               shared: dict[str, IndicatorFile]
                                                               ) -> None:
    # Each distinct value is searched once; its match must still land at every copy.
    domain = next(i for i in shared["pegasus.stix2"].indicators if i.kind is Kind.DOMAIN)
    text = f"colis: https://{domain.value}/t"
    records = [{"isodate": "2024-05-01 10:00:00.000000", "text": t}
               for t in (text, "bonjour", text, "+33 6 12 34 56 78", text)]
    data = zip_bytes({"r/info.json": b'{"mvt_version": "2026.7.29"}',
                      "r/sms.json": json.dumps(records).encode()})
    scan = scan_attachment(index, "mvt.zip", data, Location("attachment", "mvt.zip"))
    pointers = [m.location.path[1] for m in scan.matches if m.indicator == domain]
    assert pointers == ["/0/text", "/2/text", "/4/text"]
