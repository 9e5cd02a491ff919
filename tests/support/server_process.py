"""Start, stop and kill a real `python -m intake_server demo` process for tests."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import aiohttp

CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


class ServerProcess:
    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        # A free port of its own for the staff app: port + 1 may be taken.
        self.staff_port = free_port()
        self.demo_dir = root / "demo"
        self.tmpdir = root / "tmp"
        self.tmpdir.mkdir(exist_ok=True)
        self.stdout_path = root / "server.stdout"
        self.stderr_path = root / "server.stderr"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def store_dir(self) -> Path:
        return self.demo_dir / "data" / "store"

    @property
    def incoming_dir(self) -> Path:
        return self.demo_dir / "data" / "incoming"

    def identity(self, desk: str) -> Path:
        return self.demo_dir / "desks" / desk / "identity.txt"

    def start(self, timeout: float = 30.0) -> None:
        offset = self.stdout_path.stat().st_size if self.stdout_path.exists() else 0
        env = dict(os.environ, TMPDIR=str(self.tmpdir), PYTHONDONTWRITEBYTECODE="1")
        with self.stdout_path.open("ab") as out, self.stderr_path.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "intake_server", "demo", "--dir", str(self.demo_dir),
                 "--port", str(self.port), "--staff-port", str(self.staff_port)],
                stdout=out, stderr=err, env=env, cwd=self.root)
        deadline = time.monotonic() + timeout
        marker = f"listening on http://127.0.0.1:{self.port}/".encode()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited: " + self.stderr_path.read_text())
            if marker in self.stdout_path.read_bytes()[offset:]:
                return
            time.sleep(0.05)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def children(self) -> list[int]:
        assert self.proc is not None
        pids = []
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            pids += [int(p) for p in (task / "children").read_text().split()]
        return pids

    def kill9(self) -> list[int]:
        """SIGKILL the server; returns the pids its children had."""
        assert self.proc is not None
        kids = self.children()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None
        return kids

    def session(self) -> aiohttp.ClientSession:
        # unsafe=True: keep cookies for an IP-address host (127.0.0.1).
        return aiohttp.ClientSession(self.url, cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def csrf(self, session: aiohttp.ClientSession, lang: str = "en") -> str:
        async with session.get(f"/{lang}/submit") as resp:
            assert resp.status == 200
            match = CSRF_RE.search(await resp.text())
            assert match
            return match.group(1)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the tests never listen anywhere else)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def report_document(plain: dict[str, bytes]) -> dict[str, Any]:
    """The one report JSON among a submission's decrypted files.

    Told apart by parsing, not by a first byte: a random attachment starts with "{"
    one time in 256.
    """
    docs = []
    for data in plain.values():
        try:
            doc = json.loads(data)
        except ValueError:  # includes UnicodeDecodeError
            continue
        if isinstance(doc, dict) and doc.get("schema") == "amana.report":
            docs.append(doc)
    (doc,) = docs
    return doc


class Received(Protocol):
    """A submission whose client got the "received" page: its report's description
    starts with ``marker``, and its one attachment, ``{marker}.bin``, has this hash and
    size."""

    @property
    def marker(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def size(self) -> int: ...


def assert_received_intact(age: str, identity: Path, store_dir: Path,
                           received: Iterable[Received], *, nothing_else: bool) -> None:
    """Every file in ``store_dir`` decrypts with the reference `age` binary, and every
    submission in ``received`` is there: its report, and its attachment to the exact
    bytes sent. With ``nothing_else``, no other submission is stored (two files each);
    without, others may be (a crash after the commit, before the client read "received")."""
    received = list(received)
    paths = sorted(store_dir.iterdir())
    if nothing_else:
        assert len(paths) == 2 * len(received), (len(paths), len(received))

    def decrypt(path: Path) -> bytes:
        return subprocess.run([age, "-d", "-i", str(identity), str(path)],
                              capture_output=True, check=True).stdout

    with ThreadPoolExecutor(max_workers=2) as pool:
        plain = dict(zip((p.name.removesuffix(".age") for p in paths),
                         pool.map(decrypt, paths), strict=True))
    reports = {}
    for data in plain.values():
        with contextlib.suppress(ValueError):  # an attachment, not JSON
            doc = json.loads(data)
            if isinstance(doc, dict) and doc.get("schema") == "amana.report":
                reports[doc["answers"]["description"].split()[0]] = doc
    for one in received:
        doc = reports.get(one.marker)
        assert doc is not None, f"{one.marker} was received and is gone"
        (att,) = doc["attachments"]
        assert (att["name"], att["sha256"], att["size"]) == \
            (f"{one.marker}.bin", one.sha256, one.size)
        assert hashlib.sha256(plain[att["file_id"]]).hexdigest() == one.sha256
