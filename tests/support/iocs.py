"""Build the inputs the iocs tests scan: STIX bundles, e-mails and MVT output zips.

Everything is made in memory by the test that uses it (no binary fixtures), following
shared/data/mvt_formats.md for the MVT v2 and v3 layouts.
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from journalist_client.iocs import Indicator, IndicatorFile, Kind, load_bundle

DATA = Path(__file__).resolve().parents[1] / "data" / "iocs"
SHARED_FILES = sorted(p.name for p in DATA.glob("*.stix2"))
# Parametrised tests over no file would be skipped, not failed: the data must be there.
assert SHARED_FILES, f"no STIX files in {DATA}"


def shared_bundle(name: str) -> IndicatorFile:
    return load_bundle((DATA / name).read_bytes(), name)


def sample(indicators: list[Indicator], per_kind: int = 12) -> list[Indicator]:
    """Up to ``per_kind`` indicators of each kind, spread over the file (first and last kept)."""
    picked: list[Indicator] = []
    for kind in Kind:
        of_kind = [i for i in indicators if i.kind is kind]
        if not of_kind:
            continue
        step = max(1, len(of_kind) // per_kind)
        chosen = of_kind[::step][:per_kind]
        if of_kind[-1] not in chosen:
            chosen.append(of_kind[-1])
        picked += chosen
    return picked


def bundle(patterns: list[str], family: str = "TestFamily", *, link: str = "relationship",
           references: list[dict[str, str]] | None = None) -> bytes:
    """A STIX 2.1 bundle: one indicator per pattern, linked to one malware (or a report)."""
    malware_id = f"malware--{uuid.uuid4()}"
    indicators = [{"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}",
                   "created": "2024-01-01T00:00:00Z", "modified": "2024-01-01T00:00:00Z",
                   "pattern": p, "pattern_type": "stix", "valid_from": "2024-01-01T00:00:00Z",
                   **({"external_references": references} if references else {})}
                  for p in patterns]
    objects: list[dict[str, Any]] = [
        {"type": "malware", "spec_version": "2.1", "id": malware_id, "name": family,
         "is_family": False, "created": "2024-01-01T00:00:00Z",
         "modified": "2024-01-01T00:00:00Z"}, *indicators]
    if link == "relationship":
        objects += [{"type": "relationship", "spec_version": "2.1",
                     "id": f"relationship--{uuid.uuid4()}", "relationship_type": "indicates",
                     "source_ref": i["id"], "target_ref": malware_id,
                     "created": "2024-01-01T00:00:00Z", "modified": "2024-01-01T00:00:00Z"}
                    for i in indicators]
    elif link == "report":
        objects.append({"type": "report", "spec_version": "2.1", "id": f"report--{uuid.uuid4()}",
                        "name": family, "published": "2024-01-01T00:00:00Z",
                        "object_refs": [i["id"] for i in indicators],
                        "created": "2024-01-01T00:00:00Z", "modified": "2024-01-01T00:00:00Z"})
    return json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}",
                       "objects": objects}).encode()


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def record_for(indicator: Indicator) -> tuple[str, dict[str, Any]]:
    """(MVT module slug, one record of that module) carrying ``indicator`` where MVT has it."""
    value, kind = indicator.value, indicator.kind
    stamp = {"isodate": "2024-05-01 10:00:00.000000"}
    if kind in (Kind.DOMAIN, Kind.IPV4):
        return "sms", {**stamp, "text": "Your parcel", "links": [f"https://{value}/t/9"]}
    if kind is Kind.URL:
        return "sms", {**stamp, "text": "see", "links": [value]}
    if kind is Kind.EMAIL:
        return "id_status_cache", {**stamp, "user": value}
    if kind is Kind.PROCESS:
        return "datausage", {**stamp, "proc_name": value, "wwan_in": 10}
    if kind is Kind.FILE_NAME:
        return "aqf_files", {**stamp, "path": f"/private/var/tmp/{value}"}
    if kind is Kind.FILE_PATH:
        return "aqf_files", {**stamp, "path": value + ("payload" if value.endswith("/") else "")}
    if kind in (Kind.SHA256, Kind.SHA1, Kind.MD5):
        return "aqf_files", {**stamp, "path": "/data/local/tmp/x.apk", "sha256": value}
    if kind is Kind.APP_ID:
        return "aqf_packages", {**stamp, "name": value, "files": []}
    if kind is Kind.APP_CERT:
        return "aqf_packages", {**stamp, "name": "com.example", "certificate": {"sha256": value}}
    if kind is Kind.PROFILE_ID:
        return "configuration_profiles", {**stamp, "plist": {"PayloadUUID": value}}
    return "getprop", {**stamp, "name": value, "value": "1"}


def mvt_zip(indicators: list[Indicator], version: str, *, claim: Indicator | None = None,
            with_records: bool = True, root: str = "mvt-results/") -> bytes:
    """A zipped MVT results folder holding every indicator in its module's records.

    ``claim`` adds a detection of that indicator as the reporter's MVT run would have
    written it (v3: ``<slug>_detected.json`` and ``alerts.json``; v2: the matched
    record with ``matched_indicator``).
    """
    modules: dict[str, list[dict[str, Any]]] = {}
    for indicator in indicators:
        slug, record = record_for(indicator)
        modules.setdefault(slug, []).append(record)
    files: dict[str, bytes] = {}
    mvt_version = "2026.7.29" if version == "v3" else "2.7.0"
    info = {"target_path": "/tmp/backup", "mvt_version": mvt_version,
            "date": "2024-05-02 10:00:00", "ioc_files": [], "hashes": []}
    files[root + "info.json"] = json.dumps(info).encode()
    files[root + "command.log"] = b"2024-05-02 10:00:00 - mvt - INFO - done\n"
    files[root + "timeline.csv"] = b'"UTC Timestamp","Plugin","Event","Description"\n'
    if with_records:
        for slug, records in modules.items():
            files[f"{root}{slug}.json"] = json.dumps(records).encode()
    if claim is not None:
        slug, record = record_for(claim)
        matched = {"value": claim.value, "type": "domains", "name": claim.family,
                   "stix2_file_name": claim.source_file}
        if version == "v3":
            alert = {"level": "CRITICAL", "module": slug, "message": "Found a known suspicious",
                     "event_time": "2024-05-01 10:00:00.000000", "event": record,
                     "matched_indicator": matched}
            files[f"{root}{slug}_detected.json"] = json.dumps([alert]).encode()
            files[root + "alerts.json"] = json.dumps([alert]).encode()
        else:
            files[f"{root}{slug}_detected.json"] = json.dumps(
                [{**record, "matched_indicator": matched}]).encode()
            files[root + "timeline_detected.csv"] = b'"UTC Timestamp","Plugin","Event"\n'
    return zip_bytes(files)


def eml(body: str, *, sender: str = "someone@example.org", subject: str = "hello",
        attachments: list[tuple[str, bytes]] = (), charset: str = "utf-8",
        cte: str = "base64") -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "desk@example.net"
    message["Subject"] = subject
    message.set_content(body, charset=charset, cte=cte)
    for name, data in attachments:
        message.add_attachment(data, maintype="application", subtype="octet-stream",
                               filename=name)
    return message.as_bytes()


def defang(indicator: Indicator) -> str | None:
    """The indicator written as threat-intel posts write it, or None if it has no such form."""
    if indicator.kind in (Kind.DOMAIN, Kind.IPV4):
        return indicator.value.replace(".", "[.]")
    if indicator.kind is Kind.EMAIL:
        local, _, domain = indicator.value.rpartition("@")
        return f"{local}[at]{domain.replace('.', '(.)')}"
    if indicator.kind is Kind.URL:
        return indicator.value.replace("http", "hxxp", 1).replace(".", "[.]")
    return None
