"""Local UI benchmark: page latency with 10,000 reports in the vault (issue 16).

Builds a vault of N synthetic reports (default 10,000, mixed Arabic, French and
English, through the importer's own ``store_item``; generator shared with
bench/vault.py), unlocks it in the UI's worker thread exactly as ``journalist-client
ui`` does, serves the real application on 127.0.0.1 and times, end to end over HTTP
(request sent → page read):

- the inbox (100 newest reports),
- a report view (a random report),
- a triage action (POST set status, which saves the vault before it answers, then
  the redirect target is not followed: the action's own answer is what is timed),
- a search (Arabic and English words).

Goal: p95 < 100 ms for each. Reference measured in the same run: the library call
behind each page, alone (what the CLI would spend after unlocking), so the UI's own
cost (HTTP, rendering) is the difference.

    .venv/bin/python bench/ui.py                 # 10,000 reports, 50 runs of each
    .venv/bin/python bench/ui.py --reports 2000 --runs 20
    .venv/bin/python bench/ui.py --json out.json   # also a result for run_all
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import secrets
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402
from bench_result import Result, add_json_option, package_version  # noqa: E402

from journalist_client import triage  # noqa: E402
from journalist_client.importer import store_item  # noqa: E402
from journalist_client.ui._web import STATE  # noqa: E402
from journalist_client.ui._worker import VaultWorker  # noqa: E402
from journalist_client.ui.app import create_app  # noqa: E402
from journalist_client.vault import create_vault, unlock  # noqa: E402
from keys.age import X25519Identity  # noqa: E402
from keys.signing import SigningKey  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_vault", ROOT / "bench" / "vault.py")
if _spec is None or _spec.loader is None:
    sys.exit("bench/vault.py is missing")
bench_vault = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_vault)

PASSPHRASE = "benchmark passphrase, not a secret"  # noqa: S105
QUERIES = ("الإمارات", "pegasus", "رسالة", "téléphone")


def _p(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[int(q) - 1] * 1000


def _line(name: str, ui: list[float], ref: list[float]) -> str:
    return (f"{name:14} UI p50 {_p(ui, 50):6.1f} ms  p95 {_p(ui, 95):6.1f} ms   "
            f"library alone p50 {_p(ref, 50):6.1f} ms  p95 {_p(ref, 95):6.1f} ms   "
            f"{'ok' if _p(ui, 95) < 100 else 'OVER'} (goal p95 < 100 ms)")


def _expect(status: int, wanted: int, what: str) -> None:
    if status != wanted:
        sys.exit(f"{what}: HTTP {status}, expected {wanted}")


async def _timed(fn: Callable[[], Awaitable[None]], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - t)
    return out


async def run(worker: VaultWorker, ids: list[str], runs: int, result: Result) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    token = secrets.token_urlsafe(32)
    app = create_app(worker, port=port, token=token)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    base = f"http://127.0.0.1:{port}"
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for an IP address host
    try:
        async with aiohttp.ClientSession(base, cookie_jar=jar) as s:
            async with s.get(f"/login?token={token}", allow_redirects=False) as r:
                _expect(r.status, 303, "/login")
            csrf = app[STATE].csrf

            async def get(path: str) -> None:
                async with s.get(path) as r:
                    _expect(r.status, 200, path)
                    await r.read()

            statuses = ("triaged", "in-progress", "closed", "new")
            n = 0

            async def triage_action() -> None:
                nonlocal n
                n += 1
                async with s.post(f"/item/{secrets.choice(ids)}/set", allow_redirects=False,
                                  data={"csrf": csrf, "status": statuses[n % 4]},
                                  headers={"Origin": base}) as r:
                    _expect(r.status, 303, "set")
                    await r.read()

            await get("/")  # warm the templates
            inbox = await _timed(lambda: get("/"), runs)
            view = await _timed(lambda: get(f"/item/{secrets.choice(ids)}"), runs)
            action = await _timed(triage_action, runs)
            search = await _timed(lambda: get(f"/search?q={secrets.choice(QUERIES)}"), runs)

        def ref(fn: Callable[[object], object]) -> list[float]:
            out = []
            for _ in range(runs):
                t = time.perf_counter()
                worker.call(fn)  # type: ignore[arg-type]
                out.append(time.perf_counter() - t)
            return out

        def ref_set(v: object) -> None:
            nonlocal n
            n += 1
            if triage.set_fields(v, secrets.choice(ids),  # type: ignore[arg-type]
                                 status=statuses[n % 4]):
                v.save()  # type: ignore[attr-defined]

        r_inbox = ref(lambda v: triage.list_items(v, triage.Filters(), limit=100))  # type: ignore[arg-type]
        r_view = ref(lambda v: triage.show_item(v, secrets.choice(ids)))  # type: ignore[arg-type]
        r_action = ref(ref_set)
        r_search = ref(lambda v: triage.run_search_marked(v, secrets.choice(QUERIES), 50))  # type: ignore[arg-type]
        for name, label, ui, alone in (
                ("inbox", "inbox (100 newest, count, continuity check)", inbox, r_inbox),
                ("report view", "report view", view, r_view),
                ("triage action", "triage action (`set` + `vault.save()`, answered after the "
                 "save)", action, r_action),
                ("search", "search (Arabic, English, French words; 50 hits with snippets)",
                 search, r_search)):
            print(_line(name, ui, alone))
            result.row(label, f"{_p(ui, 50):.1f} / **{_p(ui, 95):.1f} ms**",
                       f"{_p(alone, 50):.1f} / {_p(alone, 95):.1f} ms", "p95 < 100 ms")
            key = name.replace(" ", "_")
            result.metrics.update({f"{key}_p50_ms": round(_p(ui, 50), 2),
                                   f"{key}_p95_ms": round(_p(ui, 95), 2),
                                   f"{key}_library_p50_ms": round(_p(alone, 50), 2),
                                   f"{key}_library_p95_ms": round(_p(alone, 95), 2)})
    finally:
        await runner.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--reports", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=50)
    add_json_option(ap)
    args = ap.parse_args()
    result = Result(
        "ui",
        f"a vault of {args.reports:,} reports, {args.runs} runs of each page, end to end over "
        "HTTP on 127.0.0.1 through the real application; the reference is the library call "
        "behind each page alone on the worker thread, in the same run",
        ["page", "UI p50 / p95", "library alone p50 / p95", "goal"],
        context={"SQLite": sqlite3.sqlite_version, "aiohttp": package_version("aiohttp"),
                 "Jinja2": package_version("jinja2")})
    with tempfile.TemporaryDirectory(prefix="amana-bench-ui-") as tmp:
        path = Path(tmp) / "vault"
        v = create_vault(path, PASSPHRASE, desk_id="triage",
                         server_key=str(SigningKey.generate().verify_key))
        recipients = [str(X25519Identity.generate().recipient()) for _ in range(200)]
        t = time.perf_counter()
        ids = []
        for _ in range(args.reports):
            item_id = secrets.token_hex(16)
            store_item(v, item_id, "report", bench_vault.synthetic_report(recipients),
                       "bench", ())
            ids.append(item_id)
        v.save()
        v.close()
        print(f"vault of {args.reports} reports built in {time.perf_counter() - t:.1f} s")
        worker = VaultWorker()
        worker.unlock(lambda: unlock(path, PASSPHRASE))
        try:
            asyncio.run(run(worker, ids, args.runs, result))
        finally:
            worker.close()
    if args.json:
        result.write(args.json)


if __name__ == "__main__":
    main()
