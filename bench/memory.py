"""Whole-server memory under a flood (issue 18): the server process and its worker pools.

A real `intake-server demo` process on 127.0.0.1 with the default limits gets
SUBMISSIONS reports at once (one in ten with a BIG_MIB attachment, the others
2,000 bytes) while LOGINS wrong logins run beside them, 50 at a time. Every 0.1 s
the process tree is sampled: the server process and its children (the codename and
login pools' Argon2id workers, multiprocessing's resource tracker). We report the
peak of the tree's summed PSS (shared pages shared out: what the tree costs the
machine), of its summed RSS (shared pages counted in each process), the server
process's own peak RSS, the number of processes and the server's open files; and,
for reference in the same run, the tree at rest before the flood, and the bound
docs/operations.md states for the configuration (tests/support/flood.py).

    .venv/bin/python bench/memory.py                      # 1,000 reports, 500 logins
    .venv/bin/python bench/memory.py --submissions 150 --logins 300   # quick

Results go into docs/benchmarks.md ("Whole-server memory under a flood").
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "tests"))
sys.path.insert(2, str(ROOT / "bench"))

from bench_result import Result, add_json_option, count, machine  # noqa: E402

from intake_server.config import Config  # noqa: E402
from support.flood import (  # noqa: E402
    TreeWatch,
    configured_memory_kib,
    login_flood,
    submission_flood,
)
from support.procstat import sample_tree  # noqa: E402
from support.server_process import ServerProcess, free_port  # noqa: E402

MiB = 1024 * 1024


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="amana-bench-memory-") as tmp:
        server = ServerProcess(Path(tmp), free_port())
        server.start()
        try:
            if server.proc is None:
                raise RuntimeError("the server did not start")
            config = Config.load(server.demo_dir / "intake-server.toml")
            # The tree at rest: the codename reserve derived at start-up has settled.
            await asyncio.sleep(args.settle)
            rest = sample_tree(server.proc.pid)
            watch = TreeWatch(server.proc.pid)
            began = time.monotonic()
            sent, logins = await asyncio.gather(
                submission_flood(server, args.submissions, big_bytes=args.big_mib * MiB),
                login_flood(server, args.logins))
            took = time.monotonic() - began
            await watch.stop()
        finally:
            server.stop()
    bound = configured_memory_kib(config.max_concurrent_uploads,
                                  config.max_concurrent_derivations,
                                  config.max_concurrent_logins,
                                  connections=args.submissions + 50)
    statuses = sorted({one.status for one in sent})
    received = sum(one.status == 200 for one in sent)
    result = Result(
        "memory",
        f"a real `intake-server demo` with the default limits "
        f"({config.max_concurrent_uploads} upload slots, {config.max_concurrent_derivations} "
        f"codename workers, {config.max_concurrent_logins} login worker) gets "
        f"{count(args.submissions, 'report')} at once (one in ten with a {args.big_mib} MiB "
        f"attachment) beside {count(args.logins, 'wrong login')}, the process tree sampled "
        f"every 0.1 s; the reference is the same tree at rest before the flood. "
        f"{received} received (statuses {statuses}), {logins.count(403)} logins derived, "
        f"{logins.count(429)} refused, {took:.0f} s",
        ["", "at rest", "peak under the flood"])
    mib = 1024
    result.row("whole tree, PSS summed", f"{rest.pss_kib // mib} MiB",
               f"**{watch.peak_pss_kib // mib} MiB**")
    result.row("whole tree, RSS summed", f"{rest.rss_kib // mib} MiB",
               f"{watch.peak_rss_kib // mib} MiB")
    result.row("server process RSS", f"{rest.server_rss_kib // mib} MiB",
               f"{watch.peak_server_rss_kib // mib} MiB")
    result.row("processes", rest.processes, watch.peak_processes)
    result.row("server's open files", rest.server_fds, watch.peak_fds)
    result.row("bound for this configuration (docs/operations.md)", "",
               f"{bound // mib} MiB")
    result.metrics.update(peak_pss_mib=watch.peak_pss_kib // mib,
                          peak_server_rss_mib=watch.peak_server_rss_kib // mib,
                          bound_mib=bound // mib, received=received,
                          peak_open_files=watch.peak_fds)
    print(f"machine: {machine()}")
    print(result.setup)
    print("| " + " | ".join(result.columns) + " |")
    print("|" + "---|" * len(result.columns))
    for row in result.rows:
        print("| " + " | ".join(row) + " |")
    if args.json:
        result.write(args.json)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=1000)
    parser.add_argument("--logins", type=int, default=500)
    parser.add_argument("--big-mib", type=int, default=4)
    parser.add_argument("--settle", type=float, default=8.0,
                        help="seconds to wait after start-up before sampling the tree")
    add_json_option(parser)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
