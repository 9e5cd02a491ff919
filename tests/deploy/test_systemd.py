"""deploy/systemd/intake-server.service, checked by systemd's own tools, and the claim
in its comments that the server runs under MemoryDenyWriteExecute=yes.
"""

from __future__ import annotations

import asyncio
import io
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from intake_server.install import init_demo
from support.deploy import UNIT

INSTALLED_BINARY = "/opt/amana/current/bin/intake-server"
MDWE_EXEC = Path(__file__).with_name("mdwe_exec.py")


@pytest.fixture(scope="module")
def systemd_analyze(system_tool: Callable[[str], str]) -> str:
    return system_tool("systemd-analyze")


def _unit_for_this_machine(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's intake-server.

    `systemd-analyze verify` checks that the ExecStart binary exists and is executable;
    on a build machine /opt/amana/current does not exist, so a copy of the unit points at
    the intake-server entry point of the venv running the tests. Nothing else changes.
    """
    text = UNIT.read_text()
    assert f"ExecStart={INSTALLED_BINARY} " in text
    local = Path(sys.executable).with_name("intake-server")
    assert local.exists(), f"{local}: the project is not installed in this venv"
    unit = tmp_path / "intake-server.service"
    unit.write_text(text.replace(INSTALLED_BINARY, str(local)))
    return unit


def _directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_systemd_analyze_verify_is_silent(systemd_analyze: str, tmp_path: Path) -> None:
    unit = _unit_for_this_machine(tmp_path)
    result = subprocess.run([systemd_analyze, "verify", str(unit)], capture_output=True,
                            text=True, timeout=60, check=False, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_verify_catches_a_typo(systemd_analyze: str, tmp_path: Path) -> None:
    # The control for the test above: a misspelt directive is reported.
    unit = _unit_for_this_machine(tmp_path)
    unit.write_text(unit.read_text().replace("ProtectSystem=strict", "ProtectSytem=strict"))
    result = subprocess.run([systemd_analyze, "verify", str(unit)], capture_output=True,
                            text=True, timeout=60, check=False, cwd=tmp_path)
    assert "ProtectSytem" in result.stderr


def test_exposure_is_at_most_2(systemd_analyze: str, tmp_path: Path) -> None:
    unit = _unit_for_this_machine(tmp_path)
    result = subprocess.run(
        [systemd_analyze, "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout


def test_the_unit_has_the_promised_settings() -> None:
    d = _directives(UNIT.read_text())

    def one(key: str) -> str:
        assert key in d, f"{key}= missing"
        return d[key][-1]

    assert one("User") == "amana"
    assert one("StateDirectory") == "amana"
    assert one("UMask") == "0077"
    assert one("ProtectSystem") == "strict"
    assert one("ProtectHome") == "yes"
    for key in ("PrivateTmp", "PrivateDevices", "PrivateIPC", "NoNewPrivileges",
                "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
                "ProtectControlGroups", "MemoryDenyWriteExecute"):
        assert one(key) == "yes", key
    assert one("CapabilityBoundingSet") == ""
    assert one("RestrictAddressFamilies") == "AF_INET AF_UNIX"
    assert d["SystemCallFilter"][0] == "@system-service"
    assert one("IPAddressDeny") == "any"
    assert one("IPAddressAllow") == "localhost"
    assert re.fullmatch(r"\d+[KMG]", one("MemoryMax"))
    assert int(one("TasksMax")) > 0
    assert one("ExecStart").startswith(f"{INSTALLED_BINARY} serve --config /var/lib/amana/")


# --- MemoryDenyWriteExecute=yes --------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _submit_through(port: int) -> tuple[int, int]:
    """Front page (QR codes), form, and one submission with a file; (status, words)."""
    base = f"http://127.0.0.1:{port}"
    # unsafe=True: aiohttp's jar otherwise drops cookies set by an IP address, and the
    # form's CSRF token is a cookie.
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.get(f"{base}/en/") as resp:
            assert resp.status == 200
            assert "<svg" in await resp.text()
        async with http.get(f"{base}/en/submit") as resp:
            match = re.search(r'name="csrf" value="([^"]+)"', await resp.text())
            assert match
        form = aiohttp.FormData(default_to_multipart=True)
        for name, value in (("csrf", match.group(1)), ("category", "spyware"),
                            ("desks", "triage"), ("description", "under MDWE")):
            form.add_field(name, value)
        form.add_field("files", io.BytesIO(bytes(300_000)), filename="evidence.bin",
                       content_type="application/octet-stream")
        async with http.post(f"{base}/en/submit", data=form) as resp:
            words = re.findall(r"<span>([a-z-]+)</span>", await resp.text())
            return resp.status, len(words)


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"intake-server exited with {proc.returncode} under the filter")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(f"intake-server did not listen on {port} within {timeout} s")


needs_x86_64_linux = pytest.mark.skipif(
    platform.system() != "Linux" or platform.machine() != "x86_64",
    reason="the MemoryDenyWriteExecute filter in mdwe_exec.py is written for x86-64 Linux",
)


@needs_x86_64_linux
def test_the_mdwe_filter_is_really_applied() -> None:
    # Without this, the test below could pass because the filter did nothing.
    result = subprocess.run([sys.executable, str(MDWE_EXEC), "--self-test"],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "refused with EPERM" in result.stdout


def _expand(systemd_analyze: str, group: str, seen: set[str] | None = None) -> set[str]:
    """The system calls in a systemd syscall group, nested groups included."""
    seen = set() if seen is None else seen
    seen.add(group)
    out = subprocess.run([systemd_analyze, "syscall-filter", "--no-pager", group],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    calls: set[str] = set()
    for line in out.splitlines()[1:]:
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        if item.startswith("@"):
            if item not in seen:
                calls |= _expand(systemd_analyze, item, seen)
        else:
            calls.add(item)
    return calls


class ServerRun:
    def __init__(self, code: int, words: int, stored: int, output: str,
                 syscalls: set[str] | None) -> None:
        self.code, self.words, self.stored, self.output = code, words, stored, output
        self.syscalls = syscalls


@pytest.fixture(scope="module")
def server_run(tmp_path_factory: pytest.TempPathFactory) -> ServerRun:
    """One run of `intake-server serve` under the MemoryDenyWriteExecute rule, traced by
    strace (if installed) to list every system call it makes, with a full submission
    (front page with QR codes, a codename from Argon2id in a worker process, a streamed
    age encryption of a report and a file) and a clean SIGTERM shutdown."""
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        pytest.skip("the MemoryDenyWriteExecute filter in mdwe_exec.py is for x86-64 Linux")
    root = tmp_path_factory.mktemp("served")
    port = _free_port()
    config = init_demo(root / "demo", port=port)
    server = Path(sys.executable).with_name("intake-server")
    command = [sys.executable, str(MDWE_EXEC), "--", str(server), "serve", "--config",
               str(config)]
    strace = shutil.which("strace")
    summary = root / "strace.txt"
    if strace:
        command = [strace, "-f", "-qq", "-c", "-o", str(summary), "--", *command]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            cwd=root)
    try:
        _wait_for_port(port, proc, timeout=60)
        code, words = asyncio.run(_submit_through(port))
        alive = proc.poll() is None
    finally:
        # SIGTERM to the server itself (under strace, the tracer's child), as systemd
        # does, so that the shutdown path is traced too.
        target = _server_pid(proc.pid) if strace else proc.pid
        os.kill(target, signal.SIGTERM)
        try:
            out = proc.communicate(timeout=30)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            proc.kill()
            out = proc.communicate()[0].decode(errors="replace")
    assert alive, out
    syscalls = None
    if strace:
        # strace -c: a table whose last column is the system call's name.
        rows = summary.read_text().splitlines()
        syscalls = {r.split()[-1] for r in rows
                    if r.strip() and not r.startswith(("%", "-")) and r.split()[-1] != "total"}
    stored = len(list((root / "demo" / "data" / "store").iterdir()))
    return ServerRun(code, words, stored, out, syscalls)


def _server_pid(tracer: int) -> int:
    children = Path(f"/proc/{tracer}/task/{tracer}/children").read_text().split()
    return int(children[0]) if children else tracer


def test_the_server_runs_under_memory_deny_write_execute(server_run: ServerRun) -> None:
    """Under systemd 252's MemoryDenyWriteExecute seccomp rule, pages with QR codes, a
    codename (Argon2id, libsodium) and streamed age encryption (cryptography) all work,
    so the unit can keep the setting."""
    assert (server_run.code, server_run.words) == (200, 7), server_run.output
    assert server_run.stored == 2, server_run.output  # the report and the attachment
    assert "Traceback" not in server_run.output, server_run.output


def test_the_server_needs_no_system_call_the_unit_forbids(
    server_run: ServerRun, systemd_analyze: str, system_tool: Callable[[str], str]
) -> None:
    """Every call the traced run made is in SystemCallFilter=@system-service minus
    ~@privileged @resources: the unit's filter would not break it."""
    system_tool("strace")
    assert server_run.syscalls, "strace recorded nothing"
    d = _directives(UNIT.read_text())
    assert d["SystemCallFilter"] == ["@system-service", "~@privileged @resources"]
    allowed = _expand(systemd_analyze, "@system-service")
    for group in ("@privileged", "@resources"):
        allowed -= _expand(systemd_analyze, group)
    used = set(server_run.syscalls)
    if os.geteuid() == 0:
        # SQLite fchown()s its journal files to the database's owner only when the
        # process runs as root (os_unix.c, robustFchown); the unit runs it as amana.
        used.discard("fchown")
    assert used - allowed == set(), f"blocked by the unit: {sorted(used - allowed)}"
    assert {"accept4", "openat", "write"} <= used  # it did trace the server
