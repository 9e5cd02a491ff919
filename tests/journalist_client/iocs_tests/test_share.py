"""Sharing what was seen (iocs.share): STIX 2.1 checked by the OASIS validator, MISP by pymisp.

And the point of the module: nothing that identifies a source or a report leaves.
"""

from __future__ import annotations

import json
import re
from datetime import date

import pytest
from pymisp import MISPEvent
from stix2validator import ValidationOptions, validate_instance

from journalist_client.iocs import Indicator, Kind
from journalist_client.iocs.share import Seen, build_misp, build_stix2
from support.iocs import shared_bundle

SINCE, UNTIL = date(2026, 11, 1), date(2026, 11, 30)
CANARY = "CANARY-7f3a"


def _published() -> list[Seen]:
    """Seen records for published indicators of every kind the shared files hold."""
    indicators: dict[Kind, Indicator] = {}
    for name in ("pegasus.stix2", "darksword.stix2", "novispy.stix2", "malware.stix2",
                 "cellebrite.stix2", "rcs.stix2"):
        for indicator in shared_bundle(name).indicators:
            indicators.setdefault(indicator.kind, indicator)
    return [Seen(i, n + 1, date(2026, 11, 2 + n), date(2026, 11, 20 + n))
            for n, i in enumerate(indicators.values())]


def _candidate() -> Seen:
    # A triager's new indicator: no published id. The caller passes what it has; a
    # careless one might put a report id or a file name where ids and sources go.
    indicator = Indicator(Kind.URL, "https://new-c2.example/it's?a=1", "Predator",
                          f"{CANARY}-report-file.txt", f"report-{CANARY}", "url:value",
                          (f"https://intake.example/report/{CANARY}",))
    return Seen(indicator, 2, date(2026, 11, 5), date(2026, 11, 6))


def test_stix2_bundle_validates_and_holds_sightings_of_the_published_ids() -> None:
    seen = _published()
    bundle = build_stix2([*seen, _candidate()], since=SINCE, until=UNTIL)
    result = validate_instance(bundle, ValidationOptions(version="2.1", strict=True))
    assert result.is_valid, [str(e) for e in result.errors]
    sightings = [o for o in bundle["objects"] if o["type"] == "sighting"]
    by_ref = {s["sighting_of_ref"]: s for s in sightings}
    for record in seen:
        sighting = by_ref[record.indicator.indicator_id]
        assert sighting["count"] == record.sighting_count
        assert sighting["first_seen"].startswith(record.first_day.isoformat() + "T00:00:00")
        assert sighting["last_seen"].startswith(record.last_day.isoformat() + "T00:00:00")
    # The candidate is a new indicator object, sighted like the others.
    [candidate] = [o for o in bundle["objects"] if o["type"] == "indicator"]
    assert candidate["pattern"] == r"[url:value = 'https://new-c2.example/it\'s?a=1']"
    assert by_ref[candidate["id"]]["count"] == 2
    assert len(sightings) == len(seen) + 1


def test_misp_event_loads_in_pymisp_with_types_categories_and_family_tags() -> None:
    seen = _published()
    data = build_misp([*seen, _candidate()], since=SINCE, until=UNTIL)
    event = MISPEvent()
    event.load(json.dumps(data))
    assert event.info
    assert str(event.date) == UNTIL.isoformat()
    mappings = event.describe_types["category_type_mappings"]
    values = {a.value: a for a in event.attributes}
    assert len(values) == len(seen) + 1
    for attribute in event.attributes:
        assert attribute.type in mappings[attribute.category], attribute.type
    for record in seen:
        attribute = values[record.indicator.value]
        assert [t.name for t in attribute.tags] == [
            f'amana:malware-family="{record.indicator.family}"']
        assert attribute.first_seen.date() == record.first_day
        assert attribute.last_seen.date() == record.last_day
    types = {record.indicator.kind: values[record.indicator.value].type for record in seen}
    assert types[Kind.DOMAIN] == "domain"
    assert types[Kind.SHA256] == "sha256"
    assert types[Kind.APP_ID] == "mobile-application-id"
    assert types[Kind.IPV4] == "ip-dst"
    assert types[Kind.EMAIL] == "email-src"


@pytest.mark.parametrize("build", [build_stix2, build_misp])
def test_nothing_identifying_leaks(build: object) -> None:
    assert callable(build)
    text = json.dumps(build([*_published(), _candidate()], since=SINCE, until=UNTIL))
    # No report text, id, source file name or reference given by the caller.
    assert CANARY not in text
    assert "intake.example" not in text
    assert ".stix2" not in text  # not even the published bundle's file name
    # Every timestamp is midnight UTC of a day in the window: no time of day, and not
    # the moment of export.
    stamps = re.findall(r"\d{4}-\d\d-\d\dT[0-9:.]+(?:Z|\+00:00)", text)
    assert stamps
    for stamp in stamps:
        assert re.fullmatch(r"(\d{4}-\d\d-\d\d)T00:00:00(?:\.0+)?(?:Z|\+00:00)", stamp), stamp
        assert SINCE.isoformat() <= stamp[:10] <= UNTIL.isoformat()


def test_ids_are_fresh_random_uuid4_on_every_export() -> None:
    first = build_stix2(_published(), since=SINCE, until=UNTIL)
    second = build_stix2(_published(), since=SINCE, until=UNTIL)
    ids = {o["id"] for o in first["objects"] if o["type"] == "sighting"} | {first["id"]}
    again = {o["id"] for o in second["objects"] if o["type"] == "sighting"} | {second["id"]}
    assert not ids & again
    assert all(re.fullmatch(r"[a-z-]+--[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                            r"[0-9a-f]{12}", i) for i in ids)
    misp = build_misp(_published(), since=SINCE, until=UNTIL)["Event"]
    assert re.fullmatch(r"[0-9a-f-]{36}", misp["uuid"])
    assert misp["uuid"][14] == "4"


def test_records_outside_the_window_are_refused() -> None:
    with pytest.raises(ValueError, match="outside the export window"):
        build_stix2(_published(), since=date(2026, 11, 10), until=UNTIL)
    with pytest.raises(ValueError, match="last_day is before first_day"):
        Seen(_candidate().indicator, 1, date(2026, 11, 2), date(2026, 11, 1))


def test_empty_export_is_still_valid() -> None:
    bundle = build_stix2([], since=SINCE, until=UNTIL)
    assert validate_instance(bundle, ValidationOptions(version="2.1")).is_valid
    assert build_misp([], since=SINCE, until=UNTIL)["Event"]["Attribute"] == []
