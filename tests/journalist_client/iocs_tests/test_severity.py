"""The suggested severity follows taxonomy.md's scale (see journalist_client/iocs/severity.py)."""

from __future__ import annotations

from journalist_client.iocs import Claim, IndicatorIndex, Location, load_bundle, suggest_severity
from support.iocs import bundle

INDEX = IndicatorIndex.build(load_bundle(bundle([
    "[domain-name:value = 'c2.example']",
    "[process:name = 'ReminderIntentsUIExtension']",
    "[android-property:name = 'sys.brand.note']",
]), "t.stix2").indicators)
MESSAGE = Location("description")


def _claim(level: str, value: str = "c2.example") -> Claim:
    return Claim(location=Location("attachment", "alerts.json"), module="sms", level=level,
                 message="m", indicator_value=value, indicator_type="domains",
                 family="Pegasus", stix2_file_name="pegasus.stix2", mvt_format="v3")


def test_domain_in_a_message_suggests_s3() -> None:
    suggestion = suggest_severity(INDEX.scan_text("lien https://c2.example/x", MESSAGE))
    assert suggestion is not None
    assert (suggestion.level, suggestion.confidence) == ("S3", "strong-indicator")


def test_device_artefact_suggests_s2_even_in_free_text() -> None:
    suggestion = suggest_severity(INDEX.scan_text("getprop shows sys.brand.note = 1", MESSAGE))
    assert suggestion is not None
    assert (suggestion.level, suggestion.confidence) == ("S2", "strong-device")


def test_domain_in_device_output_suggests_s2() -> None:
    where = Location("attachment", "r.zip", ("safari_history.json",), device_output=True)
    suggestion = suggest_severity(INDEX.match_host("c2.example", where))
    assert suggestion is not None
    assert suggestion.level == "S2"


def test_truncated_process_name_is_s2_but_weak() -> None:
    where = Location("attachment", device_output=True)
    matches = INDEX.match_process("ReminderIntentsU", where)
    assert [m.how for m in matches] == ["process-prefix16"]
    suggestion = suggest_severity(matches)
    assert suggestion is not None
    assert (suggestion.level, suggestion.confidence) == ("S2", "weak")


def test_reporter_claims_alone() -> None:
    critical = suggest_severity([], [_claim("CRITICAL")])
    high = suggest_severity([], [_claim("HIGH", value="")])
    informational = suggest_severity([], [_claim("INFORMATIONAL", value="")])
    assert critical is not None
    assert high is not None
    assert (critical.level, high.level) == ("S2", "S3")
    assert informational is None
    assert suggest_severity([]) is None
