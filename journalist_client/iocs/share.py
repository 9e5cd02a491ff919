"""Share what was seen: indicators found in reports, as a STIX 2.1 bundle or a MISP event.

Scope: :class:`Seen` records in (which indicator, how many reports, first and last
day), one JSON-ready ``dict`` out, for ``journalist-client iocs export``. The caller
counts the sightings from the vault and writes the file; nothing here reads a report.

What leaves the desk is only what another helpline needs to act: the indicator
(its published id, or its kind and value for a triager's new candidate), its
malware family, a count of reports and the first and last day. No report text,
no report, submission or attachment id, no file name from a report, no time finer
than the day, no name of the desk: :class:`Seen` carries nothing else, so nothing
else can leak. Timestamps are midnight UTC of a day; ``created``/``modified`` are the
``until`` day, not the moment of export.

* **STIX 2.1**, built with the OASIS ``stix2`` library (which checks required
  properties, timestamp order and the count range as it builds): one ``sighting``
  per published indicator, ``sighting_of_ref`` its original id. A candidate (an
  indicator with no published id) becomes an ``indicator`` object with a pattern
  built from its key and value, plus a sighting of it. Ids are ``stix2``'s default,
  ``uuid.uuid4()``, which reads ``os.urandom`` (the source ``secrets`` uses too);
  the bundle id is made the same way.
* **MISP**, written here in the MISP core format (``{"Event": {..., "Attribute":
  [...]}}``) rather than with ``pymisp``: pymisp is a client for a MISP server and
  its import loads ``requests`` and its HTTP API, which the air-gapped client has
  no use for. The tests load the output with pymisp's ``MISPEvent`` to check it.
  Attribute types follow MISP's own list (domain, ip-dst, url, email-src, md5,
  sha1, sha256, filename, mobile-application-id, x509-fingerprint-*, text); the
  family is a tag on each attribute. Uuids come from ``secrets``.

``stix2`` is imported by this module only (``journalist_client.iocs`` does not load
it): importing it also loads ``requests`` for its TAXII data source, which is never
used here.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import stix2

from journalist_client.iocs.stix import Indicator, Kind

__all__ = ["Seen", "build_misp", "build_stix2"]


@dataclass(frozen=True)
class Seen:
    """One indicator found in ``sighting_count`` reports between two days."""

    indicator: Indicator
    sighting_count: int
    first_day: date
    last_day: date

    def __post_init__(self) -> None:
        if self.sighting_count < 1:
            raise ValueError("a seen indicator was seen at least once")
        if self.last_day < self.first_day:
            raise ValueError("last_day is before first_day")


# The STIX key a candidate's pattern uses, per kind (published indicators keep theirs).
_STIX_KEYS = {
    Kind.DOMAIN: "domain-name:value", Kind.IPV4: "ipv4-addr:value", Kind.URL: "url:value",
    Kind.EMAIL: "email-addr:value", Kind.PROCESS: "process:name", Kind.FILE_NAME: "file:name",
    Kind.FILE_PATH: "file:path", Kind.MD5: "file:hashes.md5", Kind.SHA1: "file:hashes.'SHA-1'",
    Kind.SHA256: "file:hashes.'SHA-256'", Kind.APP_ID: "app:id",
    Kind.PROFILE_ID: "configuration-profile:id", Kind.ANDROID_PROPERTY: "android-property:name",
}
# A certificate hash, by its hex length: (STIX key, MISP attribute type).
_CERTS = {32: ("app:cert.md5", "x509-fingerprint-md5"),
          40: ("app:cert.sha1", "x509-fingerprint-sha1"),
          64: ("app:cert.sha256", "x509-fingerprint-sha256")}

# MISP attribute (type, category) per kind but APP_CERT (by length, _CERTS); the
# category is one MISP allows for the type.
_MISP_TYPES: dict[Kind, tuple[str, str]] = {
    Kind.DOMAIN: ("domain", "Network activity"),
    Kind.IPV4: ("ip-dst", "Network activity"),
    Kind.URL: ("url", "Network activity"),
    Kind.EMAIL: ("email-src", "Payload delivery"),
    Kind.MD5: ("md5", "Payload delivery"),
    Kind.SHA1: ("sha1", "Payload delivery"),
    Kind.SHA256: ("sha256", "Payload delivery"),
    Kind.FILE_NAME: ("filename", "Artifacts dropped"),
    Kind.FILE_PATH: ("filename", "Artifacts dropped"),
    Kind.APP_ID: ("mobile-application-id", "Payload installation"),
    # MISP has no type for these three: free text, the STIX key in the comment.
    Kind.PROCESS: ("text", "Artifacts dropped"),
    Kind.PROFILE_ID: ("text", "Artifacts dropped"),
    Kind.ANDROID_PROPERTY: ("text", "Artifacts dropped"),
}


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _published_id(indicator: Indicator) -> str | None:
    """The indicator's STIX id if it is a well-formed one, else None (a candidate)."""
    prefix, _, rest = indicator.indicator_id.partition("--")
    if prefix != "indicator":
        return None
    try:
        uuid.UUID(rest)
    except ValueError:
        return None
    return indicator.indicator_id


def _stix_key(indicator: Indicator) -> str:
    if indicator.kind is Kind.APP_CERT:
        return _CERTS.get(len(indicator.value), _CERTS[64])[0]
    return _STIX_KEYS[indicator.kind]


def _pattern(indicator: Indicator) -> str:
    literal = indicator.value.replace("\\", "\\\\").replace("'", "\\'")
    return f"[{_stix_key(indicator)} = '{literal}']"


def build_stix2(seen: Iterable[Seen], *, since: date, until: date) -> dict[str, Any]:
    """A STIX 2.1 bundle of sightings (and candidate indicators) seen from ``since`` to ``until``.

    Every record must lie in the window (the caller counts sightings within it);
    ValueError otherwise. The result is plain JSON data (``json.dumps`` it);
    ``stix2`` has checked every object.
    """
    stamp = _midnight(until)
    objects: list[Any] = []
    for record in _in_window(seen, since, until):
        target = _published_id(record.indicator)
        if target is None:
            candidate = stix2.v21.Indicator(
                name=record.indicator.family,
                # Fixed text: the triager's notes stay on the desk.
                description="A new indicator a triager found in reports",
                indicator_types=["malicious-activity"], pattern=_pattern(record.indicator),
                pattern_type="stix", valid_from=_midnight(record.first_day),
                created=stamp, modified=stamp)
            objects.append(candidate)
            target = candidate.id
        objects.append(stix2.v21.Sighting(
            sighting_of_ref=target, count=record.sighting_count,
            first_seen=_midnight(record.first_day), last_seen=_midnight(record.last_day),
            created=stamp, modified=stamp))
    bundle = stix2.v21.Bundle(objects=objects) if objects else stix2.v21.Bundle()
    # The library's own serialiser gives the canonical timestamp forms; parse it back
    # to plain data so the caller writes JSON like every other export.
    result: dict[str, Any] = json.loads(bundle.serialize())
    return result


def build_misp(seen: Iterable[Seen], *, since: date, until: date) -> dict[str, Any]:
    """A MISP event (core format) with one attribute per indicator seen in the window."""
    attributes = []
    for record in _in_window(seen, since, until):
        indicator = record.indicator
        if indicator.kind is Kind.APP_CERT:
            cert = _CERTS.get(len(indicator.value))
            misp_type, category = (cert[1] if cert else "text"), "Payload installation"
        else:
            misp_type, category = _MISP_TYPES[indicator.kind]
        attributes.append({
            "uuid": str(_uuid4()),
            "type": misp_type,
            "category": category,
            "value": indicator.value,
            "to_ids": True,
            "comment": f"{indicator.stix_key or _stix_key(indicator)}; "
                       f"seen in {record.sighting_count} report(s)",
            "first_seen": _midnight(record.first_day).isoformat(),
            "last_seen": _midnight(record.last_day).isoformat(),
            "Tag": [{"name": _family_tag(indicator.family)}],
        })
    return {"Event": {
        "uuid": str(_uuid4()),
        "info": f"Spyware indicators seen in reports, {since.isoformat()} to {until.isoformat()}",
        "date": until.isoformat(),
        "threat_level_id": "1",   # high: mercenary spyware
        "analysis": "2",          # completed: each match was triaged
        "distribution": "0",      # this organisation only; the desk decides to share wider
        "published": False,
        "Attribute": attributes,
    }}


def _family_tag(family: str) -> str:
    # A machine tag (namespace:predicate="value"); quotes in the name would end it.
    return 'amana:malware-family="' + family.replace('"', "'") + '"'


def _uuid4() -> uuid.UUID:
    return uuid.UUID(bytes=secrets.token_bytes(16), version=4)


def _in_window(seen: Iterable[Seen], since: date, until: date) -> list[Seen]:
    if until < since:
        raise ValueError("until is before since")
    records = list(seen)
    for record in records:
        if record.first_day < since or record.last_day > until:
            raise ValueError("a sighting outside the export window: count within it")
    return records
