"""What a seized server's file system still tells (issue 13, item 17), through the real
demo server process.

Asserted, because user space can fix it: after reports and a clean stop (SIGINT),
every file and directory under data/ (intake.db, data/ itself and .server.lock
included) has its atime and mtime at midnight UTC, and intake.db* are 0600 although
the server ran under umask 022.

Measured, because user space cannot set it: the ctime and the birth time of each
stored file against the moment the source saw the "received" page. The numbers are
printed (``pytest -s``) and docs/adr/0006-seized-disk.md records what they were and
what is done about them.

After every kind of operation (issue 18): submission, fetch, reply, login, follow-up,
ack, the operator's USB export, a clean stop and retention at the next start, the whole
install, the server's TMPDIR and its stdout and stderr are walked (support.files_at_rest):
no canary from any text, file name or file (in any encoding), no header value or IP
address the requests carried, no codename, no reply text, no temp file, no atime or
mtime under data/ finer than the day, and no value in the database that looks like a
time finer than the day. What stays, ctime, birth time and inode order, is the residual
docs/threat-model.md lists with its measured size.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import secrets
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from keys.age import encrypt, parse_recipient
from keys.bundle import open_bundle
from keys.signing import SigningKey
from support.canary import encodings
from support.checkback import codename_from, reply_recipients
from support.files_at_rest import (
    fine_times_in_database,
    looks_like_a_time,
    read_quietly,
    search,
    times_finer_than_the_day,
)
from support.intake import eventually
from support.server_process import CSRF_RE, ServerProcess, free_port
from support.source import submit_report
from support.staff import DemoStaff, add_transfer_key, demo_desk_keys, submit_offline


def _birth_time(path: Path) -> float | None:
    """The birth time (statx btime) via GNU stat; None where the file system keeps none."""
    out = subprocess.run(["stat", "--format=%.9W", str(path)], capture_output=True,
                         text=True, check=True).stdout.strip()
    return float(out) or None


async def test_a_clean_stop_leaves_day_level_times_and_private_database_files(
    tmp_path: Path,
) -> None:
    server = ServerProcess(tmp_path, free_port())
    old_umask = os.umask(0o022)
    try:
        server.start()
    finally:
        os.umask(old_umask)
    received: list[float] = []
    try:
        async with server.session() as client:
            for n in range(3):
                await submit_report(client, files=(("log.txt", b"%d" % n * 5000),))
                received.append(time.time())
                time.sleep(0.3)  # noqa: ASYNC251 -- spacing the reports, nothing to serve
    finally:
        server.stop()
    data = server.demo_dir / "data"

    assert times_finer_than_the_day(data) == []
    db_files = sorted(data.glob("intake.db*"))
    assert db_files
    for path in db_files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name

    # The residual leak, measured: ctime and birth time of the stored files against the
    # moments the "received" pages were seen (docs/adr/0006-seized-disk.md).
    print("\nfile  ctime-received  birth-received  inode")
    for path in sorted((data / "store").iterdir(), key=lambda p: p.stat().st_ino):
        st = path.stat()
        ctime = min(abs(st.st_ctime - r) for r in received)
        birth = _birth_time(path)
        btime = "n/a" if birth is None else f"{min(abs(birth - r) for r in received):.3f}s"
        print(f"{path.name[:8]}  {ctime:.3f}s  {btime}  {st.st_ino}")
    assert len(list((data / "store").iterdir())) == 6  # three reports, one file each


# -- issue 18: what a seized server shows after each kind of operation -----------------

# Header values a source's browser, or a proxy in front of the server, might send: none
# may reach the disk, the temp dir or the logs. The addresses are documentation ranges.
IP_ADDRESSES = ("203.0.113.77", "198.51.100.23", "192.0.2.44", "2001:db8::7")


def _hostile_headers(marker: str) -> dict[str, str]:
    return {
        "User-Agent": f"Mozilla/5.0 (UA-{marker}) Gecko/20100101 Firefox/115.0",
        "Accept-Language": f"ar-{marker[:8]},fr;q=0.8",
        "Referer": f"http://referer-{marker}.onion/",
        "X-Forwarded-For": f"{IP_ADDRESSES[0]}, {IP_ADDRESSES[3]}",
        "Forwarded": f"for={IP_ADDRESSES[1]};proto=http",
        "X-Real-IP": IP_ADDRESSES[2],
        "Via": f"1.1 via-{marker}",
        "X-Client-Tag": f"custom-{marker}",
    }


def _needles(secrets_: dict[str, str]) -> dict[str, bytes | re.Pattern[bytes]]:
    needles: dict[str, bytes | re.Pattern[bytes]] = {}
    for what, value in secrets_.items():
        needles.update({f"{what} ({enc})": v for enc, v in encodings(value).items()})
    for ip in IP_ADDRESSES:
        needles[f"ip {ip}"] = ip.encode()
    return needles


# Any IPv4 address in text; 127.0.0.1 only where the server says where it listens.
IPV4 = re.compile(rb"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")


class Seizure:
    """Walks everything a seized server holds, after each operation: the install (data
    dir, config, keyring), the server's TMPDIR, its stdout and stderr."""

    def __init__(self, server: ServerProcess, needles: dict[str, bytes | re.Pattern[bytes]],
                 scratch: Path) -> None:
        self.server, self.needles, self.scratch = server, needles, scratch
        self.steps: list[str] = []

    def check(self, step: str) -> None:
        self.steps.append(step)
        s = self.server
        data = s.demo_dir / "data"
        problems = [f"time: {t}" for t in times_finer_than_the_day(data)]
        problems += [f"temp file: {p.name}" for p in s.tmpdir.iterdir()]
        problems += search([s.demo_dir, s.tmpdir, s.stdout_path, s.stderr_path], self.needles)
        problems += search([data, s.tmpdir], {"an IPv4 address": IPV4})
        for log in (s.stdout_path, s.stderr_path):
            text = read_quietly(log).replace(b"127.0.0.1", b"")
            problems += [f"{log.name}: an IPv4 address" for _ in IPV4.findall(text)[:1]]
        problems += [f"database: {v}" for v in fine_times_in_database(data / "intake.db",
                                                                     self.scratch)]
        assert not problems, f"after {step}:\n" + "\n".join(problems)


async def _source_session(server: ServerProcess, headers: dict[str, str]
                          ) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(server.url, headers=headers,
                                 cookie_jar=aiohttp.CookieJar(unsafe=True))


@pytest.mark.parametrize(("value", "is_time"), [
    ("2026-12-05T06:20Z", True),
    ("2026-12-05T06", True),
    ("20261205T0620", True),
    ("at 6:20", True),
    ("6h20", True),
    (1764915600, True),
    ("2026-12-05", False),
    # A transfer key CI printed as a time of day: base64 holds "T92" by chance.
    ("ed25519:968DdjWKlDRzU3Iu3kkedNUeQFDgX5SOU1TC92s0bQw", False),
    ("ed25519:" + "T00" * 14, False),
    ("ed25519:59Dd", False),
])
def test_the_time_finder_takes_times_and_not_key_text(value: object, is_time: bool) -> None:
    assert bool(looks_like_a_time(value)) is is_time


@pytest.mark.slow
async def test_after_every_operation_a_seized_server_shows_no_plaintext_person_or_time(
        tmp_path: Path, age_binary: str) -> None:
    """Submission, fetch, reply, login, follow-up, ack, the operator's USB export, a clean
    stop and retention at the next start, each followed by the whole walk. A canary is
    in every text, a file name and a file's content; hostile headers carry IP addresses
    and markers; the codename and the reply's text are searched for too."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (tmp_path / "site").mkdir()
    server = ServerProcess(tmp_path / "site", free_port())
    server.start()
    server.stop()
    transfer = SigningKey.generate()
    add_transfer_key(server.demo_dir, "triage", transfer.verify_key)
    marker = secrets.token_hex(8)
    canary = f"CANARY{secrets.token_hex(10)}é ü"
    reply_text = f"REPLYCANARY{secrets.token_hex(10)} ردّ"
    file_name = f"ORIGINALNAME{secrets.token_hex(6)}.jpg"
    headers = _hostile_headers(marker)
    found = {"canary": canary, "reply": reply_text, "file name": file_name,
             "header marker": marker}
    seizure = Seizure(server, _needles(found), scratch)
    # Controls: the walk finds each kind of thing where it is planted.
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / f"x-{file_name}").write_bytes(
        f"{headers['User-Agent']} {IP_ADDRESSES[1]} {canary}".encode("utf-16-le"))
    assert {h.split("(")[1].split(" ")[0] for h in search(planted, seizure.needles)} \
        >= {"canary", "file", "header"}
    with contextlib.closing(sqlite3.connect(planted / "t.db")) as c:
        c.execute("CREATE TABLE t (day TEXT, at TEXT, n INTEGER)")
        c.execute("INSERT INTO t VALUES ('2026-12-05', '2026-12-05T06:20Z', ?)",
                  (time.time_ns(),))
        c.commit()
    assert len(fine_times_in_database(planted / "t.db", scratch)) == 2
    server.start()
    try:
        seizure.check("start-up")
        async with await _source_session(server, headers) as s:
            csrf = await server.csrf(s)
            data = aiohttp.FormData(quote_fields=False)
            for name, value in (("csrf", csrf), ("category", "spyware"), ("desks", "triage"),
                                ("description", canary), ("links", canary)):
                data.add_field(name, value)
            data.add_field("files", canary.encode() * 3, filename=file_name,
                           content_type="image/jpeg")
            async with s.post("/en/submit", data=data) as resp:
                assert resp.status == 200
                codename = codename_from(await resp.text())
        seizure.needles.update(_needles({"codename": codename}))
        seizure.check("submission")

        staff = DemoStaff(server, transfer)
        status, bundle = await staff.request("GET", "/v1/desks/triage/bundle?after=0")
        assert status == 200
        # The server dates the bundle once sending has ended, which may be a moment
        # after the client has read its last byte.
        await eventually(lambda: not times_finer_than_the_day(server.demo_dir / "data"),
                         timeout=5)
        seizure.check("fetch")

        (recipient,) = reply_recipients(server.demo_dir)
        desk = demo_desk_keys(server.demo_dir, "triage")
        doc = json.dumps({"format": "amana-reply", "version": 1, "desk": "triage",
                          "day": "2026-12-05", "body": reply_text}).encode()
        rid = secrets.token_hex(16)
        body = staff.outbox([{"type": "reply", "id": rid, "to": recipient,
                              "file": f"{rid}.reply.age"}],
                            {f"{rid}.reply.age": encrypt(doc, [parse_recipient(recipient),
                                                               desk.identity.recipient()])})
        status, answer = await staff.request("POST", "/v1/desks/triage/outbox", body)
        assert status == 200, answer
        seizure.check("reply")

        async with await _source_session(server, headers) as s:
            async with s.get("/en/login") as resp:
                token = CSRF_RE.search(await resp.text()).group(1)
            async with s.post("/en/login", data={"csrf": token, "codename": codename}) as resp:
                page = await resp.text()
                assert reply_text in page  # control: the reply was read, in memory
            seizure.check("login")
            data = aiohttp.FormData(quote_fields=False)
            data.add_field("csrf", CSRF_RE.search(page).group(1))
            data.add_field("message", f"follow-up {canary}")
            data.add_field("files", canary.encode(), filename=f"2-{file_name}",
                           content_type="text/plain")
            async with s.post("/en/followup", data=data) as resp:
                assert resp.status == 200
        seizure.check("follow-up")

        status, bundle = await staff.request("GET", "/v1/desks/triage/bundle?after=0")
        assert status == 200
        (tmp_path / "fetched.bundle").write_bytes(bundle)
        with open_bundle(tmp_path / "fetched.bundle", {"server": staff.server_key}) as b:
            ids = [it["id"] for it in json.loads(b.read("index.json"))["items"]]
        assert len(ids) == 2  # the report and the follow-up
        status, answer = await staff.request("POST", "/v1/desks/triage/acks", staff.ack(ids))
        assert status == 200, answer
        seizure.check("ack")

        usb = tmp_path / "usb"
        usb.mkdir()
        await submit_offline(server.demo_dir, ("forensics",), canary.encode())
        subprocess.run([str(Path(sys.executable).parent / "intake-server"), "export",
                        "--config", str(server.demo_dir / "intake-server.toml"),
                        "--desk", "forensics", "--out", str(usb / "export.bundle")],
                       check=True, capture_output=True, timeout=60)
        seizure.check("operator's USB export")
        assert times_finer_than_the_day(usb / "export.bundle") == []

        server.stop()
        seizure.check("clean stop")
        # Retention: a report from before the retention period goes at the next start.
        old = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=31)
        (gone,) = await submit_offline(server.demo_dir, ("triage",), canary.encode(), day=old)
        server.start()
        seizure.check("retention at start-up")
    finally:
        server.stop()
    seizure.check("the last clean stop")
    with contextlib.closing(sqlite3.connect(server.demo_dir / "data" / "intake.db")) as c:
        assert c.execute("SELECT 1 FROM submissions WHERE id = ?", (gone,)).fetchone() is None
    assert len(seizure.steps) == 11
