"""Vault benchmark: import rate, search latency, unlock and save time (issue 6 goals).

1. Builds one signed desk-export bundle of N synthetic reports (default 10,000; mixed
   Arabic, French and English text, as the server writes them: each encrypted to the
   desk) and times ``import_bundle``: decrypt, validate, store, index, save, ack.
   Goal: ≥ 500 reports/s.
2. Grows the vault to M reports (default 100,000) through the same ``store_item`` the
   importer uses (documents are generated already validated, without the crypto, to
   keep the run short), then times searches: Arabic and English queries, each run
   several times. Goal: p95 ≤ 50 ms.
3. Times ``save`` and ``unlock`` at M reports. Goal: ≤ 3 s each. The desk keys use the
   real scrypt work factor (18), so unlock includes the passphrase cost.

    .venv/bin/python bench/vault.py                      # 10,000 then 100,000
    .venv/bin/python bench/vault.py --import 2000 --total 20000   # quicker
    .venv/bin/python bench/vault.py --json out.json   # also a result for run_all
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_result import Result, add_json_option  # noqa: E402

from journalist_client import triage  # noqa: E402
from journalist_client.importer import import_bundle, store_item  # noqa: E402
from journalist_client.vault import create_vault, unlock  # noqa: E402
from keys.age import X25519Identity, encrypt, parse_recipient  # noqa: E402
from keys.bundle import write_bundle_file  # noqa: E402
from keys.signing import SigningKey  # noqa: E402


def _vocab(prose: str) -> list[str]:
    return prose.split()


PASSPHRASE = "benchmark passphrase, not a secret"  # noqa: S105
AR = _vocab("الهاتف رسالة رابط مشبوه واتساب برنامج تجسس صحفي ناشطة اعتقال الإمارات السعودية مصر "
      "لبنان المغرب حساب اختراق تهديد مراقبة الشرطة الحدود جهاز مصادرة بريد إلكتروني كلمة "
      "السر تطبيق مزيف الصحفيين والناشطين بالهاتف للتجسس مؤسسة إعلامية مستشفى مدرسة سؤال "
      "مسؤول أمني ٢٠٢٤ ٢٠٢٥ تلقيت اتصالا من رقم مجهول طلب رمز التحقق")
EN = _vocab("phone message link suspicious whatsapp spyware journalist activist arrest account "
      "hacked threat surveillance police border device seized email password fake app "
      "pegasus predator notification apple google signal telegram sms code verification "
      "lawyer ngo office laptop")
FR = _vocab("téléphone message lien suspect compte piraté menace surveillance police frontière "
      "appareil saisi sécurité numérique journaliste avocate")
CATEGORIES = ("spyware", "msg", "acct", "device", "seized", "harass", "exposure", "legal")
PER_BUNDLE = 2500
COUNTRIES = ("AE", "SA", "EG", "LB", "MA", "TN", "JO", "BH", "IQ", "SY")


def _words(vocab: list[str], n: int) -> str:
    return " ".join(secrets.choice(vocab) for _ in range(n))


def synthetic_report(recipients: list[str], submission_id: str | None = None) -> dict[str, object]:
    lang = secrets.choice(("ar", "ar", "en", "fr"))
    vocab = {"ar": AR, "en": EN, "fr": FR}[lang]
    return {
        "schema": "amana.report", "version": 1,
        "submission_id": submission_id or secrets.token_hex(16),
        "received_day": f"2026-{secrets.randbelow(12) + 1:02d}-{secrets.randbelow(28) + 1:02d}",
        "language": lang, "desks": ["triage"],
        "reply_recipient": secrets.choice(recipients),
        "answers": {
            "category": secrets.choice(CATEGORIES), "secondary_categories": [],
            "country": secrets.choice(COUNTRIES), "incident_date": "last week",
            "description": _words(vocab, 40 + secrets.randbelow(80)),
            "indicators": {"links": f"https://{secrets.token_hex(4)}.example/x",
                           "senders": f"+9715{secrets.randbelow(10**8):08d}",
                           "messages": _words(vocab, secrets.randbelow(20))},
            "target": "self", "profession": "journalist", "platforms": ["android"],
            "device_details": _words(EN, 3),
            "consent": {"share_within_coalition": True, "publish_anonymised": False},
        },
        "attachments": [],
    }


def build_export(path: Path, n: int, desk_recipient: str, server: SigningKey,
                 recipients: list[str]) -> None:
    rcpt = [parse_recipient(desk_recipient)]
    ids = [secrets.token_hex(16) for _ in range(n)]

    def files():  # type: ignore[no-untyped-def]
        index = {"format": "amana-desk-export", "version": 1, "desk": "triage", "cursor": "1",
                 "items": [{"id": i, "type": "report", "day": "2026-11-28",
                            "files": [f"{i}.json.age"]} for i in ids]}
        yield "index.json", io.BytesIO(json.dumps(index).encode())
        for i in ids:
            # Filed under the id inside the document, as the server does.
            doc = json.dumps(synthetic_report(recipients, i), ensure_ascii=False).encode()
            yield f"{i}.json.age", io.BytesIO(encrypt(doc, rcpt))

    write_bundle_file(path, "desk-export", "server", files(), server)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--import", dest="n_import", type=int, default=10_000)
    ap.add_argument("--total", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=10, help="runs of each query")
    add_json_option(ap)
    args = ap.parse_args()
    out = Result(
        "vault",
        f"import {args.n_import:,} synthetic reports from signed desk-export bundles, then "
        f"grow the vault to {args.total:,} with `store_item`; 12 Arabic, English and French "
        f"queries × {args.queries} runs; desk keys at the real scrypt work factor 18",
        ["what", "result", "goal"],
        context={"SQLite": sqlite3.sqlite_version})

    with tempfile.TemporaryDirectory(prefix="amana-bench-") as tmp:
        tmpdir = Path(tmp)
        server = SigningKey.generate()
        t = time.perf_counter()
        v = create_vault(tmpdir / "vault", PASSPHRASE, desk_id="triage",
                         server_key=str(server.verify_key))
        print(f"create vault (scrypt work factor 18): {time.perf_counter() - t:.2f} s")
        recipients = [str(X25519Identity.generate().recipient()) for _ in range(200)]

        # A bundle holds at most 4096 files (keys.bundle.MAX_FILES): the server splits.
        t = time.perf_counter()
        bundles = []
        for start in range(0, args.n_import, PER_BUNDLE):
            bundles.append(tmpdir / f"export-{start}.bundle")
            build_export(bundles[-1], min(PER_BUNDLE, args.n_import - start),
                         v.keys.desk.recipient, server, recipients)
        size = sum(b.stat().st_size for b in bundles)
        print(f"build {len(bundles)} export bundles, {args.n_import} reports: "
              f"{time.perf_counter() - t:.1f} s ({size / 1e6:.1f} MB)")

        t = time.perf_counter()
        imported = 0
        for b in bundles:
            result = import_bundle(v, b, progress=False)
            imported += len(result.imported)
        dt = time.perf_counter() - t
        if imported != args.n_import:
            sys.exit(f"only {imported} imported: {result.quarantined[:3]}")
        print(f"import {args.n_import} reports (incl. a save + ack per bundle): {dt:.2f} s = "
              f"{args.n_import / dt:.0f} reports/s (goal ≥ 500)")
        out.row(f"import {args.n_import:,} reports from {len(bundles)} signed desk-export "
                f"bundle{'s' if len(bundles) > 1 else ''} "
                "(verify, decrypt, validate, store, index, save, ack)",
                f"{dt:.2f} s = **{args.n_import / dt:,.0f} reports/s**", "≥ 500/s")
        out.metrics["import_reports_per_s"] = round(args.n_import / dt, 1)

        t = time.perf_counter()
        for _ in range(args.total - args.n_import):
            doc = synthetic_report(recipients)
            store_item(v, secrets.token_hex(16), "report", doc, "bench", ())
        print(f"grow to {args.total} reports via store_item: {time.perf_counter() - t:.1f} s")

        t = time.perf_counter()
        v.save()
        save_s = time.perf_counter() - t
        size = (tmpdir / "vault" / "triage.vault").stat().st_size
        print(f"save at {args.total}: {save_s:.2f} s ({size / 1e6:.0f} MB encrypted image) "
              "(goal ≤ 3 s)")
        v.close()

        t = time.perf_counter()
        v = unlock(tmpdir / "vault", PASSPHRASE)
        unlock_s = time.perf_counter() - t
        print(f"unlock at {args.total}: {unlock_s:.2f} s (goal ≤ 3 s)")

        queries = ["الإمارات", "تجسس", "بالهاتف", "مسئول", "الصحفيين واتساب", "٢٠٢٤",
                   "pegasus", "WhatsApp", "sécurité", "account hacked", "predator*",
                   "nonexistentword"]
        times: dict[str, list[float]] = {q: [] for q in queries}
        hits: dict[str, int] = {}
        for _ in range(args.queries):
            for q in queries:
                t = time.perf_counter()
                res = triage.run_search(v, q, limit=20)
                times[q].append(time.perf_counter() - t)
                hits[q] = len(res)
        for q in queries:
            print(f"  search {q!r:24} median {statistics.median(times[q]) * 1000:6.1f} ms  "
                  f"({hits[q]} shown)")
        every = sorted(x for xs in times.values() for x in xs)
        p95 = every[int(0.95 * (len(every) - 1))]
        print(f"search p95 over {len(every)} runs at {args.total} reports: "
              f"{p95 * 1000:.1f} ms (goal ≤ 50 ms)")
        median = statistics.median(every)
        out.row(f"search at {args.total:,} reports, 12 queries × {args.queries} runs, "
                "20 results with snippets",
                f"**p95 {p95 * 1000:.1f} ms**, median {median * 1000:.1f} ms", "p95 ≤ 50 ms")
        out.row(f"save at {args.total:,} reports (serialize, encrypt, sign, fsync, rename; "
                f"{size / 1e6:.0f} MB image)", f"**{save_s:.2f} s**", "≤ 3 s")
        out.row(f"unlock at {args.total:,} reports (two scrypt unlocks of the desk keys, "
                "verify, decrypt, deserialize)", f"**{unlock_s:.2f} s**", "≤ 3 s")
        out.metrics.update({"search_p95_ms": round(p95 * 1000, 2),
                            "search_median_ms": round(median * 1000, 2),
                            "save_s": round(save_s, 3), "unlock_s": round(unlock_s, 3),
                            "image_bytes": size})
        print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    if args.json:
        out.write(args.json)


if __name__ == "__main__":
    main()
