"""Key rotation benchmark: what keeping previous identities costs a vault (ADR 0011).

Makes a vault with the real scrypt work factor (18) and N reports, then times, each
``--rounds`` times (median and range):

1. ``unlock`` with no previous identity: the reference, measured in the same run;
2. ``rotate_keys`` (re-sign and re-encrypt the database, keep the old identity);
3. ``unlock`` with 1, then 2 previous identities.

    .venv/bin/python bench/rotation.py                 # 2,000 reports, 5 rounds
    .venv/bin/python bench/rotation.py --reports 200 --rounds 3
    .venv/bin/python bench/rotation.py --json out.json   # also a result for run_all
"""

from __future__ import annotations

import argparse
import io
import json
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_result import Result, add_json_option, count  # noqa: E402

from journalist_client.importer import import_bundle  # noqa: E402
from journalist_client.vault import create_vault, rotate_keys, unlock  # noqa: E402
from keys.age import encrypt, parse_recipient  # noqa: E402
from keys.bundle import write_bundle_file  # noqa: E402
from keys.identity import rotate_desk  # noqa: E402
from keys.signing import SigningKey  # noqa: E402

PASSPHRASE = "benchmark passphrase, not a secret"  # noqa: S105


def _report(n: int) -> dict[str, object]:
    return {
        "schema": "amana.report", "version": 1, "submission_id": secrets.token_hex(16),
        "received_day": "2026-12-04", "language": "en", "desks": ["bench"],
        "reply_recipient": "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq",
        "answers": {"category": "spyware", "secondary_categories": [], "country": "LB",
                    "incident_date": "", "description": f"report {n}: a suspicious link",
                    "indicators": {"links": "", "senders": "", "messages": ""},
                    "target": "self", "profession": "journalist", "platforms": [],
                    "device_details": "", "consent": {"share_within_coalition": True,
                                                      "publish_anonymised": False}},
        "attachments": [],
    }


def _timed(fn: Callable[[], object], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def _row(result: Result, what: str, times: list[float], ref: float | None) -> str:
    med = statistics.median(times)
    ratio = f"{med / ref:.2f}" if ref else "1.00"
    spread = f"{min(times):.2f}–{max(times):.2f}" if len(times) > 1 else "one run"
    result.row(what, f"{med:.2f}", spread, ratio)
    return f"| {what} | {med:.2f} | {spread} | {ratio} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reports", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    add_json_option(ap)
    args = ap.parse_args()
    result = Result(
        "rotation",
        f"a vault of {count(args.reports, 'report')}, real scrypt work factor (18), "
        f"{count(args.rounds, 'round')} of each unlock; the reference is the same vault's "
        "unlock before any rotation, in the same run",
        ["what", "median s", "range s", "× reference"])
    with tempfile.TemporaryDirectory() as tmp:  # noqa: S108 - a benchmark's scratch
        root = Path(tmp)
        v = create_vault(root / "vault", PASSPHRASE, desk_id="bench")
        server = SigningKey.generate()
        v.trust_server(str(server.verify_key))
        recipient = [parse_recipient(v.keys.desk.recipient)]
        files: list[tuple[str, object]] = []
        entries = []
        for n in range(args.reports):
            doc = _report(n)
            sid = str(doc["submission_id"])
            files.append((f"{sid}.json.age", io.BytesIO(encrypt(json.dumps(doc).encode(),
                                                                recipient))))
            entries.append({"id": sid, "type": "report", "day": "2026-12-04",
                            "files": [f"{sid}.json.age"]})
        index = {"format": "amana-desk-export", "version": 1, "desk": "bench", "cursor": "1",
                 "items": entries}
        files.insert(0, ("index.json", io.BytesIO(json.dumps(index).encode())))
        write_bundle_file(root / "b.bundle", "desk-export", "server", files, server)
        import_bundle(v, root / "b.bundle", progress=False)
        v.close()

        def unlock_close() -> None:
            unlock(root / "vault", PASSPHRASE).close()

        rows = ["| what | median s | range s | × reference |", "|---|---|---|---|"]
        ref_times = _timed(unlock_close, args.rounds)
        ref = statistics.median(ref_times)
        rows.append(_row(result, "unlock, no previous identity (reference)", ref_times, None))
        result.metrics["unlock_s"] = round(ref, 3)
        for k in (1, 2):
            rotate_desk(root / "vault" / "keys", root / f"new-{k}", PASSPHRASE)
            v = unlock(root / "vault", PASSPHRASE)
            t = time.perf_counter()
            rotate_keys(v, root / f"new-{k}", PASSPHRASE)
            took = time.perf_counter() - t
            v.close()
            rows.append(_row(result, f"`rotate_keys` (rotation {k})", [took], ref))
            times = _timed(unlock_close, args.rounds)
            rows.append(_row(result, f"unlock, {k} previous identit{'y' if k == 1 else 'ies'}",
                             times, ref))
            result.metrics[f"rotate_keys_{k}_s"] = round(took, 3)
            result.metrics[f"unlock_{k}_previous_s"] = round(statistics.median(times), 3)
        print(f"{args.reports} reports, {args.rounds} rounds, scrypt work factor 18")
        print("\n".join(rows))
        if args.json:
            result.write(args.json)


if __name__ == "__main__":
    main()
