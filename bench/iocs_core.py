"""Micro-benchmark of the indicator core (journalist_client.iocs), not a test.

Issue 15's goals, for the parts that exist so far (no vault, no importer):

1. Import: the shared STIX files plus one synthetic bundle of N domain indicators
   (default 1,000,000, each linked to its malware by a relationship, as the published
   files are) are parsed with ``load_bundle`` and indexed with ``IndicatorIndex.build``.
   Goal: ≥ 200,000 indicators/s.
2. Scan: R synthetic reports (default 1,000) of realistic size — a description and
   pasted messages in Arabic, French and English with links (a few matching), a
   third with an attachment: a zipped MVT v3 results folder, an e-mail, or a text
   file — through ``scan_text`` and ``scan_attachment`` against that index.
   Goal: ≥ 500 reports/s.

    .venv/bin/python bench/iocs_core.py
    .venv/bin/python bench/iocs_core.py --indicators 100000 --reports 300   # quicker

Random content comes from ``secrets`` (the project bans ``random``).
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import resource
import secrets
import sys
import time
import zipfile
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from journalist_client.iocs import (  # noqa: E402
    IndicatorIndex,
    Location,
    load_bundle,
    scan_attachment,
)

SHARED = ROOT / "tests" / "data" / "iocs"

ARABIC = ("وصلتني رسالة على واتساب من رقم غريب تطلب مني الضغط على رابط لتحديث الحساب، "
          "وبعدها صار الهاتف يسخن ويفرغ الشحن بسرعة. ")
FRENCH = ("J'ai reçu un SMS « votre colis est en attente » avec un lien, et depuis mon "
          "téléphone redémarre tout seul la nuit. ")
ENGLISH = ("A contact I do not know sent me a link about the conference programme; the page "
           "asked for my password and then showed an error. ")


def synthetic_bundle(count: int) -> bytes:
    malware = "malware--00000000-0000-4000-8000-000000000001"
    parts = ['{"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000000", '
             '"objects": [{"type": "malware", "spec_version": "2.1", "id": "' + malware + '", '
             '"name": "Synthetic", "is_family": false}']
    for n in range(count):
        ident = f"{n:012x}"
        parts.append(
            f', {{"type": "indicator", "spec_version": "2.1", '
            f'"id": "indicator--00000000-0000-4000-8000-{ident}", '
            f'"created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z", '
            f'"pattern": "[domain-name:value = \'{secrets.token_hex(5)}-{n}.example\']", '
            f'"pattern_type": "stix", "valid_from": "2024-01-01T00:00:00Z"}}'
            f', {{"type": "relationship", "spec_version": "2.1", '
            f'"id": "relationship--00000000-0000-4000-8000-{ident}", '
            f'"relationship_type": "indicates", '
            f'"source_ref": "indicator--00000000-0000-4000-8000-{ident}", '
            f'"target_ref": "{malware}"}}')
    parts.append("]}")
    return "".join(parts).encode()


def _links(hits: list[str]) -> str:
    links = [f"https://{secrets.token_hex(4)}.example.org/{secrets.token_urlsafe(6)}"
             for _ in range(4)]
    if hits and secrets.randbelow(10) == 0:
        links.append(f"hxxps://{secrets.choice(hits).replace('.', '[.]')}/a")
    return " ".join(links)


def _mvt_zip(hits: list[str]) -> bytes:
    sms = [{"isodate": "2024-05-01 10:00:00.000000", "text": FRENCH,
            "links": _links(hits).split()} for _ in range(150)]
    usage = [{"isodate": "2024-05-01 10:00:00.000000", "proc_name": f"proc{n}",
              "wwan_in": n} for n in range(150)]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("results/info.json", json.dumps({"mvt_version": "2026.7.29"}))
        archive.writestr("results/sms.json", json.dumps(sms))
        archive.writestr("results/datausage.json", json.dumps(usage))
        archive.writestr("results/command.log", "done\n")
    return buffer.getvalue()


def _email(hits: list[str]) -> bytes:
    message = EmailMessage()
    message["From"] = "someone@example.org"
    message["To"] = "me@example.net"
    message["Subject"] = "Invitation"
    message.set_content((ENGLISH + _links(hits) + "\n") * 10, cte="base64")
    return message.as_bytes()


def synthetic_reports(count: int, hits: list[str]) -> list[dict[str, object]]:
    reports: list[dict[str, object]] = []
    for n in range(count):
        description = (ARABIC + FRENCH + ENGLISH) * 3 + _links(hits)
        pasted = (ARABIC + _links(hits) + "\n") * 5
        attachment: tuple[str, bytes] | None = None
        if n % 3 == 0:
            kind = n % 9
            if kind == 0:
                attachment = ("mvt-results.zip", _mvt_zip(hits))
            elif kind == 3:
                attachment = ("message.eml", _email(hits))
            else:
                attachment = ("notes.txt", ((FRENCH + _links(hits) + "\n") * 20).encode())
        reports.append({"description": description, "messages": pasted,
                        "attachment": attachment})
    return reports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--indicators", type=int, default=1_000_000)
    parser.add_argument("--reports", type=int, default=1_000)
    parser.add_argument("--no-freeze", dest="freeze", action="store_false",
                        help="leave the index to the cyclic GC during the scan")
    args = parser.parse_args()

    shared = {p.name: p.read_bytes() for p in sorted(SHARED.glob("*.stix2"))}
    print(f"generating a bundle of {args.indicators:,} domain indicators ...", flush=True)
    synthetic = synthetic_bundle(args.indicators)
    print(f"  {len(synthetic) / 2**20:.0f} MiB of STIX JSON")

    # The floor: the standard library's JSON decoder alone on the same bytes.
    start = time.perf_counter()
    json.loads(synthetic)
    floor = time.perf_counter() - start
    print(f"  json.loads alone: {floor:.2f} s "
          f"({args.indicators / floor:,.0f} indicators/s at best with this decoder)")

    start = time.perf_counter()
    files = [load_bundle(data, name) for name, data in shared.items()]
    files.append(load_bundle(synthetic, "synthetic.stix2", max_bytes=len(synthetic)))
    parsed = time.perf_counter()
    index = IndicatorIndex.build(i for f in files for i in f.indicators)
    built = time.perf_counter()
    total = sum(len(f.indicators) for f in files)
    print(f"import: {total:,} indicators; parse {parsed - start:.2f} s, index "
          f"{built - parsed:.2f} s; {total / (built - start):,.0f} indicators/s "
          f"(goal ≥ 200,000)")

    del synthetic
    if args.freeze:
        # The index is long-lived: move it out of the collector's sight, as a
        # long-running importer would (gc.freeze), so full collections during the scan
        # do not walk its millions of objects again and again.
        gc.freeze()

    hits = [i.value for f in files[:-1] for i in f.indicators if i.kind == "domain"]
    reports = synthetic_reports(args.reports, hits)
    size = sum(len(str(r["description"])) + len(str(r["messages"])) for r in reports)
    attached = [r["attachment"] for r in reports if r["attachment"] is not None]
    print(f"scan: {len(reports):,} reports, {size / len(reports) / 1024:.1f} KiB of text "
          f"each, {len(attached)} with an attachment")
    start = time.perf_counter()
    matched = 0
    for report in reports:
        matches = index.scan_text(str(report["description"]), Location("description"))
        matches += index.scan_text(str(report["messages"]), Location("messages"))
        attachment = report["attachment"]
        if isinstance(attachment, tuple):
            name, data = attachment
            matches += scan_attachment(index, name, data, Location("attachment", name)).matches
        matched += bool(matches)
    elapsed = time.perf_counter() - start
    print(f"  {elapsed:.2f} s; {len(reports) / elapsed:,.0f} reports/s (goal ≥ 500); "
          f"{matched} reports matched")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (max RSS): {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
