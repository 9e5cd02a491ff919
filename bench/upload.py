"""Upload benchmark for the intake server (issue 3).

1. A SIZE (default 1 GiB) random file is uploaded over loopback to a real
   `intake-server` process as one attachment, encrypted to two desks. We report
   throughput and the server's peak RSS (VmHWM), and separately the peak RSS of
   its codename worker processes.
2. In the same run, the reference `age` binary encrypts the same file to the
   same two recipients (`age -r A -r B -o out file`); throughput and peak RSS.
3. Small reports per second with 32 concurrent clients (each report: form GET,
   multipart POST with a few fields and a 2 KiB attachment).

Everything runs in a temporary directory (removed at the end) on 127.0.0.1.

    .venv/bin/python bench/upload.py            # full run
    .venv/bin/python bench/upload.py --size-mib 64 --reports 32   # quick
    .venv/bin/python bench/upload.py --json out.json   # also a result for run_all
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import yarl
from bench_result import Result, add_json_option, count

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from intake_server.install import init_demo  # noqa: E402
from keys.keyring import Keyring  # noqa: E402

CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')
MiB = 1024 * 1024


def machine() -> str:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    return (f"nproc {os.cpu_count()}, {cpu}, RAM {mem_kib / 1024 / 1024:.1f} GiB, "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}")


def vm_hwm_kib(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return 0
    m = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(m.group(1)) if m else 0


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids = (task / "children").read_text().split()
        out += [int(k) for k in kids]
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children's threads so far."""
    total = 0
    for p in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def wait_idle(pid: int, timeout: float = 120.0) -> None:
    """Wait until the server and its codename workers are idle: after a submission
    the server derives a codename for its reserve, and that Argon2id run must not
    land in the middle of the next measurement (of either side)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(0.3)
        if cpu_seconds(pid) - before < 0.02:
            return
    raise SystemExit("the server did not become idle")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(demo: Path, port: int, size: int, rounds: int) -> Path:
    config = demo / "bench.toml"
    limit = size + 16 * MiB
    config.write_text(
        f'[server]\nport = {port}\n[paths]\ndata_dir = "data"\nkeyring = "keyring.json"\n'
        f'[desks]\ndefault_desk = "triage"\n[limits]\nmax_file_bytes = {limit}\n'
        f"max_submission_bytes = {limit}\nmax_concurrent_uploads = 64\n"
        f"max_concurrent_derivations = {os.cpu_count() or 2}\n"
        f"disk_quota_bytes = {(rounds + 2) * limit}\nmin_free_bytes = {512 * MiB}\n")
    return config


async def csrf(session: aiohttp.ClientSession) -> str:
    async with session.get("/en/submit") as resp:
        return CSRF_RE.search(await resp.text()).group(1)  # type: ignore[union-attr]


def form(token: str, files: list[tuple[str, object]]) -> aiohttp.FormData:
    data = aiohttp.FormData(quote_fields=False)
    for name, value in [("csrf", token), ("category", "spyware"), ("description", "bench"),
                        ("desks", "triage"), ("desks", "forensics")]:
        data.add_field(name, value)
    for name, content in files:
        data.add_field("files", content, filename=name, content_type="application/octet-stream")
    return data


async def big_upload(url: str, path: Path, work: Path, latencies: list[float]) -> float:
    """Upload with curl: a native client, so the server (not Python on the client
    side, sharing the same cores) is what gets measured. Meanwhile a second client
    loads the submit page every 50 ms and records in ``latencies`` how long each
    took: the server encrypts on its event loop, and this shows what that costs
    everyone else while a large upload streams in."""
    async with aiohttp.ClientSession(url, cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        token = await csrf(s)
        cookie = s.cookie_jar.filter_cookies(yarl.URL(url))["amana_csrf"].value
    argv = ["curl", "-sS", "-o", str(work / "response.html"), "-w", "%{http_code}",
            "-H", f"Cookie: amana_csrf={cookie}", "-F", f"csrf={token}",
            "-F", "category=spyware", "-F", "description=bench", "-F", "desks=triage",
            "-F", "desks=forensics", "-F", f"files=@{path};type=application/octet-stream",
            f"{url}/en/submit"]
    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
    probe = asyncio.create_task(page_latency(url, latencies))
    status, _ = await proc.communicate()
    elapsed = time.perf_counter() - start
    probe.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await probe
    if status != b"200":
        raise SystemExit(f"upload failed: {status!r}")
    return elapsed


async def page_latency(url: str, out: list[float]) -> None:
    async with aiohttp.ClientSession(url) as s:
        while True:
            start = time.perf_counter()
            async with s.get("/en/submit") as resp:
                await resp.read()
                if resp.status != 200:
                    raise SystemExit(f"page failed during the upload: {resp.status}")
            out.append(time.perf_counter() - start)
            await asyncio.sleep(0.05)


async def small_reports(url: str, total: int, concurrency: int) -> float:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)
    payload = os.urandom(2048)

    async def client() -> None:
        async with aiohttp.ClientSession(url, cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            while True:
                try:
                    queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                token = await csrf(s)
                async with s.post("/en/submit", data=form(token, [("a.txt", payload)])) as r:
                    await r.read()
                    if r.status != 200:
                        raise SystemExit(f"small report failed: {r.status}")

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return time.perf_counter() - start


def run_age(recipients: list[str], src: Path, dst: Path) -> tuple[float, int]:
    argv = ["age"] + [a for r in recipients for a in ("-r", r)] + ["-o", str(dst), str(src)]
    start = time.perf_counter()
    proc = subprocess.Popen(argv)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit("age failed")
    return elapsed, usage.ru_maxrss  # KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--reports", type=int, default=128, help="small reports to send")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternate age and the upload this many times; report medians")
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir)")
    add_json_option(ap)
    args = ap.parse_args()
    for tool in ("age", "curl"):
        if not shutil.which(tool):
            raise SystemExit(f"`{tool}` is needed (apt-get install {tool})")
    size = args.size_mib * MiB
    work = Path(tempfile.mkdtemp(prefix="amana-bench-", dir=args.dir))
    server = None
    try:
        demo = work / "demo"
        init_demo(demo, port=8080)
        port = free_port()
        config = write_config(demo, port, size, args.rounds)
        recipients = [d.recipient for d in Keyring.load(demo / "keyring.json").desks]
        src = work / "input.bin"
        with src.open("wb") as f:
            for _ in range(size // MiB):
                f.write(os.urandom(MiB))
        out = (work / "server.out").open("wb")
        server = subprocess.Popen([sys.executable, "-m", "intake_server", "serve", "--config",
                                   str(config)], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            if b"listening" in (work / "server.out").read_bytes():
                break
            time.sleep(0.05)
        else:
            raise SystemExit("server did not start")
        base_rss = vm_hwm_kib(server.pid)

        age_times, up_times, age_rss = [], [], 0
        latencies: list[float] = []
        for _ in range(args.rounds):
            # Alternate, so that load from elsewhere on the machine hits both alike.
            wait_idle(server.pid)
            t, rss = run_age(recipients, src, work / "age.out")
            (work / "age.out").unlink()
            age_times.append(t)
            age_rss = max(age_rss, rss)
            wait_idle(server.pid)
            up_times.append(asyncio.run(big_upload(url, src, work, latencies)))
        age_time, up_time = statistics.median(age_times), statistics.median(up_times)
        server_rss = vm_hwm_kib(server.pid)
        worker_rss = max((vm_hwm_kib(c) for c in children(server.pid)), default=0)
        src.unlink()
        small_time = asyncio.run(small_reports(url, args.reports, args.concurrency))
        server_rss_after = vm_hwm_kib(server.pid)

        mib = size / MiB
        print(f"machine: {machine()}")
        print(f"file: {mib:.0f} MiB random, 2 recipients, loopback, data on {work}; "
              f"{args.rounds} alternating rounds, medians shown")
        print("age times (s): " + ", ".join(f"{t:.2f}" for t in age_times))
        print("server times (s): " + ", ".join(f"{t:.2f}" for t in up_times))
        print("| what | time (s) | throughput (MiB/s) | peak RSS (MiB) |")
        print("|---|---|---|---|")
        print(f"| `age` binary, `age -r A -r B -o out file` | {age_time:.2f} | "
              f"{mib / age_time:.0f} | {age_rss / 1024:.1f} |")
        print(f"| intake-server upload (curl, multipart, encrypt, fsync, commit) | {up_time:.2f} | "
              f"{mib / up_time:.0f} | {server_rss / 1024:.1f} (at start {base_rss / 1024:.1f}) |")
        print(f"ratio server/age throughput (medians): {age_time / up_time:.2f}; "
              f"fastest of each: {min(age_times) / min(up_times):.2f}")
        lat = sorted(latencies)
        print(f"submit page during the uploads: {len(lat)} loads, median "
              f"{statistics.median(lat) * 1000:.1f} ms, p99 "
              f"{lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000:.1f} ms, "
              f"max {lat[-1] * 1000:.1f} ms")
        print(f"codename worker process peak RSS: {worker_rss / 1024:.1f} MiB")
        print(f"small reports: {args.reports} with {args.concurrency} concurrent clients in "
              f"{small_time:.1f} s = {args.reports / small_time:.1f} reports/s; "
              f"server peak RSS after: {server_rss_after / 1024:.1f} MiB")
        if args.json:
            result = Result(
                "upload",
                f"one {mib:.0f} MiB file of random data, encrypted to two desk recipients, "
                f"{count(args.rounds, 'round')} alternating the reference (`age -r A -r B -o "
                "out file`, same file, same disk) and the upload (curl over loopback to a real "
                "`intake-server`); then small reports",
                ["what", "result", "goal"],
                context={"age": subprocess.run(["age", "--version"], capture_output=True,
                                               text=True, check=False).stdout.strip()})
            result.row("`age -r A -r B -o out file`, s per round (reference)",
                       ", ".join(f"{t:.2f}" for t in age_times)
                       + f" (median {age_time:.2f}, {mib / age_time:.0f} MiB/s)", "")
            result.row("intake-server upload (curl, multipart, encrypt, SHA-256, fsync, "
                       "commit), s per round", ", ".join(f"{t:.2f}" for t in up_times)
                       + f" (median {up_time:.2f}, {mib / up_time:.0f} MiB/s)", "")
            result.row("throughput ratio server / `age`: medians; fastest of each",
                       f"**{age_time / up_time:.2f}**; {min(age_times) / min(up_times):.2f}",
                       "≥ 0.5")
            result.row("server peak RSS (at start)",
                       f"**{server_rss / 1024:.1f} MiB** ({base_rss / 1024:.1f} MiB)",
                       "< 100 MiB")
            result.row("submit page loaded every 50 ms during the uploads",
                       f"median {statistics.median(lat) * 1000:.1f} ms, p99 "
                       f"{lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000:.1f} ms "
                       f"({len(lat)} loads)", "responsive")
            result.row("codename worker process, peak RSS", f"{worker_rss / 1024:.1f} MiB",
                       "outside the server")
            result.row(f"small reports (form GET, POST with a 2 KiB attachment), "
                       f"{args.reports} with {args.concurrency} concurrent clients",
                       f"**{args.reports / small_time:.1f} reports/s** ({small_time:.1f} s); "
                       f"server peak RSS after {server_rss_after / 1024:.1f} MiB", "")
            result.metrics.update({
                "age_median_s": round(age_time, 3), "upload_median_s": round(up_time, 3),
                "ratio_medians": round(age_time / up_time, 3),
                "ratio_fastest": round(min(age_times) / min(up_times), 3),
                "server_peak_rss_kib": server_rss, "age_peak_rss_kib": age_rss,
                "codename_worker_peak_rss_kib": worker_rss,
                "page_median_ms": round(statistics.median(lat) * 1000, 2),
                "small_reports_per_s": round(args.reports / small_time, 2)})
            result.write(args.json)
    finally:
        if server is not None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
