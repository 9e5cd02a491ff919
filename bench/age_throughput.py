"""age throughput and peak memory: keys.age (library and `intake-keys`) beside the `age` binary.

Encrypts and then decrypts the same file with each implementation in one run,
each in its own process so that its peak RSS is its own, and prints MB/s and the
ratio to the reference binary. Every output is checked against the input.

    .venv/bin/python bench/age_throughput.py            # 256 MiB
    .venv/bin/python bench/age_throughput.py --mib 64   # quicker
    .venv/bin/python bench/age_throughput.py --json out.json   # also a result for run_all
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_result import Result, add_json_option, package_version

READ_SIZE = 1024 * 1024


def _worker(mode: str, src: str, dst: str, key: str) -> None:
    """The library API, streaming: what an aiohttp handler or the client does.

    Prints the seconds spent in the API, so that interpreter start-up (which the
    binaries do not pay) is not counted against the library; the CLI row shows it.
    """
    from keys.age import Encryptor, decrypt_stream, parse_identity, parse_recipient

    start = time.perf_counter()
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        if mode == "encrypt":
            buffer = memoryview(bytearray(READ_SIZE))
            with Encryptor(fout, [parse_recipient(key)]) as enc:
                while n := fin.readinto(buffer):
                    enc.write(buffer[:n])
        else:
            for chunk in decrypt_stream(fin, [parse_identity(Path(key).read_text().split()[-1])]):
                fout.write(chunk)
    print(time.perf_counter() - start)


def _run(argv: list[str]) -> tuple[float, int]:
    """Seconds and peak RSS (bytes) of one child process: wall time, or the time the
    child reports on stdout (the library worker)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
    reported = proc.stdout.read().strip() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"failed ({status}): {' '.join(argv)}")
    return (float(reported) if reported else elapsed), usage.ru_maxrss * 1024


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(READ_SIZE):
            digest.update(block)
    return digest.hexdigest()


def _machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="file size in MiB (default 256)")
    parser.add_argument(
        "--worker", nargs=4, metavar=("MODE", "SRC", "DST", "KEY"), help=argparse.SUPPRESS
    )
    add_json_option(parser)
    args = parser.parse_args()
    if args.worker:
        _worker(*args.worker)
        return

    age = shutil.which("age")
    keygen = shutil.which("age-keygen")
    cli = shutil.which("intake-keys") or str(Path(sys.executable).with_name("intake-keys"))
    if not age or not keygen:
        raise SystemExit("the reference `age` binary is needed: apt-get install age")
    with tempfile.TemporaryDirectory(prefix="amana-bench-") as tmp:
        work = Path(tmp)
        identity = work / "identity.txt"
        subprocess.run([keygen, "-o", str(identity)], check=True, capture_output=True)
        lines = identity.read_text().splitlines()
        recipient = next(line.split(": ")[1] for line in lines if "public key" in line)
        plain = work / "plain"
        with plain.open("wb") as f:
            block = os.urandom(READ_SIZE)  # incompressible, like real evidence files
            for n in range(args.mib):
                f.write(hashlib.sha256(n.to_bytes(4, "big")).digest() + block[32:])
        expected = _sha256(plain)
        size_mb = plain.stat().st_size / 1e6

        me = [sys.executable, __file__, "--worker"]
        cases = {
            "age binary": (
                [age, "-e", "-r", recipient, "-o", str(work / "{out}"), str(plain)],
                [age, "-d", "-i", str(identity), "-o", str(work / "{out}"), "{in}"],
            ),
            "keys.age library": (
                [*me, "encrypt", str(plain), str(work / "{out}"), recipient],
                [*me, "decrypt", "{in}", str(work / "{out}"), str(identity)],
            ),
        }
        if Path(cli).exists() and importlib.util.find_spec("keys.cli") is not None:
            cases["intake-keys CLI"] = (
                [cli, "encrypt", "-r", recipient, "-o", str(work / "{out}"), str(plain)],
                [cli, "decrypt", "-i", str(identity), "-o", str(work / "{out}"), "{in}"],
            )
        results = {}
        for name, (enc_argv, dec_argv) in cases.items():
            tag = name.split()[0].replace(".", "")
            enc_out, dec_out = f"{tag}.age", f"{tag}.out"
            enc_t, enc_rss = _run([a.replace("{out}", enc_out) for a in enc_argv])
            dec_t, dec_rss = _run(
                [a.replace("{out}", dec_out).replace("{in}", str(work / enc_out)) for a in dec_argv]
            )
            if _sha256(work / dec_out) != expected:
                raise SystemExit(f"{name}: the round trip changed the data")
            # Cross-check: the reference opens what we wrote.
            if name != "age binary":
                _run(
                    [age, "-d", "-i", str(identity), "-o", str(work / "check"), str(work / enc_out)]
                )
                if _sha256(work / "check") != expected:
                    raise SystemExit(f"{name}: age could not read our file")
            results[name] = (size_mb / enc_t, size_mb / dec_t, enc_rss, dec_rss)
            for f in (enc_out, dec_out, "check"):
                (work / f).unlink(missing_ok=True)

    ref_enc, ref_dec = results["age binary"][:2]
    print(f"machine: {_machine()}")
    print(f"file: {args.mib} MiB, random")
    print(
        f"{'implementation':<20} {'encrypt MB/s':>13} {'x age':>6} {'decrypt MB/s':>13} "
        f"{'x age':>6} {'peak RSS enc/dec MiB':>21}"
    )
    for name, (enc, dec, enc_rss, dec_rss) in results.items():
        print(
            f"{name:<20} {enc:>13.0f} {enc / ref_enc:>6.2f} {dec:>13.0f} {dec / ref_dec:>6.2f} "
            f"{enc_rss / 2**20:>10.1f} / {dec_rss / 2**20:<9.1f}"
        )
    if args.json:
        _result(args.mib, results, age).write(args.json)


def _result(mib: int, results: dict[str, tuple[float, float, int, int]], age: str) -> Result:
    ref_enc, ref_dec = results["age binary"][:2]
    version = subprocess.run([age, "--version"], capture_output=True, text=True, check=False)
    result = Result(
        "age_throughput",
        f"one {mib} MiB file of random data, one X25519 recipient, page cache warm; each "
        "implementation in its own process, every round trip checked and every file we "
        "write opened by `age`; the reference is the `age` binary in the same run",
        ["implementation", "encrypt MB/s", "× age", "decrypt MB/s", "× age",
         "peak RSS enc / dec"],
        context={"age": version.stdout.strip() or "unknown",
                 "cryptography": package_version("cryptography")},
    )
    labels = {"age binary": "`age` binary (reference)",
              "keys.age library": "`keys.age` library (streaming API, time inside the API)",
              "intake-keys CLI": "`intake-keys` CLI (whole process, start-up included)"}
    for name, (enc, dec, enc_rss, dec_rss) in results.items():
        key = name.split()[0].replace(".", "_").replace("-", "_")
        result.row(labels.get(name, name), f"{enc:.0f}", f"{enc / ref_enc:.2f}", f"{dec:.0f}",
                   f"{dec / ref_dec:.2f}", f"{enc_rss / 2**20:.1f} / {dec_rss / 2**20:.1f} MiB")
        result.metrics.update({f"{key}_encrypt_mb_s": round(enc, 1),
                               f"{key}_decrypt_mb_s": round(dec, 1),
                               f"{key}_encrypt_peak_rss_bytes": enc_rss,
                               f"{key}_decrypt_peak_rss_bytes": dec_rss})
    return result

if __name__ == "__main__":
    main()
