"""Benchmark of `journalist-client shell` (issue 14, item 13); not a test.

Builds a vault of N synthetic reports (default 2,000; bench/vault.py's generator, stored
through the importer's own ``store_item``), then runs the real program,
``journalist-client shell --timing``, with commands piped in: ``list``, ``show``,
``set`` (each one saved to the journal before it answers), ``note`` and ``search``,
R rounds each (default 40). The shell measures each command itself (``--timing``,
from parsing the line to the answer printed). Goal: p95 < 100 ms for list, show, set
and search.

The reference, in the same run on the same vault: the same commands as separate
`journalist-client` processes, as a triager without the shell runs them. Each of those
unlocks (scrypt at the real work factor 18) and saves the whole image.

    .venv/bin/python bench/shell.py
    .venv/bin/python bench/shell.py --reports 10000 --rounds 20
    .venv/bin/python bench/shell.py --json out.json   # also a result for run_all
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_result import Result, add_json_option, count  # noqa: E402
from vault import PASSPHRASE, synthetic_report  # type: ignore[import-not-found]  # noqa: E402

from journalist_client.importer import store_item  # noqa: E402
from journalist_client.vault import create_vault  # noqa: E402
from keys.age import X25519Identity  # noqa: E402
from keys.signing import SigningKey  # noqa: E402

CLIENT = [sys.executable, "-m", "journalist_client.cli"]
TIMING = re.compile(r"^\[([a-z-]+): ([0-9.]+) ms\]$")
QUERIES = ("الإمارات", "تجسس", "pegasus", "sécurité", "account hacked", "بالهاتف")


def build(vault_dir: Path, n: int) -> list[str]:
    v = create_vault(vault_dir, PASSPHRASE, desk_id="triage",
                     server_key=str(SigningKey.generate().verify_key))
    recipients = [str(X25519Identity.generate().recipient()) for _ in range(50)]
    ids = []
    for _ in range(n):
        item_id = secrets.token_hex(16)
        store_item(v, item_id, "report", synthetic_report(recipients, item_id), "bench", ())
        ids.append(item_id)
    v.save()
    v.close()
    return ids


def script(ids: list[str], rounds: int) -> str:
    lines = []
    for r in range(rounds):
        item = secrets.choice(ids)[:12]
        lines += [
            "list --limit 50",
            "list --status new --country AE --limit 50",
            f"show {item}",
            f"set {item} --status {('triaged', 'closed', 'new')[r % 3]} --tag bench{r % 5}",
            f"note {item} 'round {r}: called the source back'",
            f"search {QUERIES[r % len(QUERIES)]}",
        ]
    return "\n".join(lines) + "\nexit\n"


def p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[int(0.95 * (len(xs) - 1))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reports", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--reference-runs", type=int, default=3,
                    help="runs of each separate-process command for the reference")
    add_json_option(ap)
    args = ap.parse_args()
    result = Result(
        "shell",
        f"a vault of {count(args.reports, 'report')}; {count(args.rounds, 'round')} of each "
        "command in one `journalist-client shell --timing` session (each `set` and `note` "
        "saved before it answers); the reference is the same commands as separate processes, "
        f"{count(args.reference_runs, 'run')} each, in the same run",
        ["command", "median ms", "p95 ms", "goal"],
        context={"SQLite": sqlite3.sqlite_version})
    labels = {"list": "`list --limit 50`",
              "list-filtered": "`list --status new --country AE --limit 50`",
              "show": "`show ID`", "set": "`set ID --status … --tag …` (saved)",
              "note": "`note ID TEXT` (saved)", "search": "`search WORDS`"}

    with tempfile.TemporaryDirectory(prefix="amana-bench-shell-") as tmp:
        vault_dir = Path(tmp) / "vault"
        passfile = Path(tmp) / "pass.txt"
        passfile.write_text(PASSPHRASE + "\n")
        t = time.perf_counter()
        ids = build(vault_dir, args.reports)
        image = (vault_dir / "triage.vault").stat().st_size
        print(f"vault of {args.reports} reports built in {time.perf_counter() - t:.1f} s "
              f"({image / 1e6:.1f} MB image)")
        base = [*CLIENT, "--vault", str(vault_dir), "--passphrase-file", str(passfile)]

        t = time.perf_counter()
        run = subprocess.run([*base, "shell", "--timing"], input=script(ids, args.rounds),
                             capture_output=True, text=True, check=False)
        session_s = time.perf_counter() - t
        if run.returncode != 0:
            sys.exit(f"shell failed: {run.stderr[-2000:]}")
        times: dict[str, list[float]] = {}
        kinds = iter(["list", "list-filtered", "show", "set", "note", "search"] * args.rounds)
        for line in run.stderr.splitlines():
            m = TIMING.match(line)
            if m:
                times.setdefault(next(kinds), []).append(float(m.group(2)))
        n_commands = sum(len(v) for v in times.values())
        print(f"shell: {n_commands} commands in one session, {session_s:.1f} s in all "
              "(one unlock, one compaction at exit)")
        print(f"  {'command':14} {'median':>9} {'p95':>9} {'max':>9}  (ms, inside the session)")
        for kind, xs in times.items():
            print(f"  {kind:14} {statistics.median(xs):9.1f} {p95(xs):9.1f} {max(xs):9.1f}")
            result.row(f"in the session: {labels[kind]}", f"{statistics.median(xs):.1f}",
                       f"{p95(xs):.1f}", "—" if kind == "note" else "p95 < 100 ms")
            result.metrics[f"{kind}_median_ms"] = round(statistics.median(xs), 2)
            result.metrics[f"{kind}_p95_ms"] = round(p95(xs), 2)
        core = [x for k in ("list", "list-filtered", "show", "set", "search") for x in times[k]]
        print(f"  p95 of list, show, set and search together: {p95(core):.1f} ms (goal < 100)")
        result.row("**in the session: p95 of list, show, set, search**", "",
                   f"**{p95(core):.1f}**", "< 100 ms")
        result.metrics["core_p95_ms"] = round(p95(core), 2)

        print("reference: the same commands as separate processes (unlock + save each)")
        item = ids[0][:12]
        for label, argv in (("list", ["list", "--limit", "50"]),
                            ("show", ["show", item]),
                            ("set", ["set", item, "--status", "triaged"]),
                            ("search", ["search", "pegasus"])):
            runs = []
            for _ in range(args.reference_runs):
                t = time.perf_counter()
                subprocess.run([*base, *argv], capture_output=True, check=True)
                runs.append((time.perf_counter() - t) * 1000)
            print(f"  {label:14} median {statistics.median(runs):9.1f} ms")
            result.row(f"reference, a separate process (unlock + save): `{label}`",
                       f"{statistics.median(runs):.0f}", "", "")
            result.metrics[f"reference_{label}_median_ms"] = round(statistics.median(runs), 1)
        print(f"machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
              f"Python {platform.python_version()}, load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        result.context["vault image"] = f"{image / 1e6:.1f} MB"
        if args.json:
            result.write(args.json)


if __name__ == "__main__":
    main()
