"""Issue 18, floods: many submissions at once and a login flood, against the real server.

Every Tor client arrives from 127.0.0.1, so a flood looks like many sources. While
SUBMISSIONS reports (one in ten with a 1 MiB attachment, in English, Arabic and
French in turn) are sent at once and LOGINS wrong logins run beside them:

- every source gets either the "received" page with a codename, or the translated
  "busy, try again" page of its language (429, `Retry-After`): never "too slow", a
  500 or a dropped connection;
- nothing acknowledged is lost: every report whose source got "received" is in
  store/, and the reference `age` binary decrypts it and its attachment to the exact
  bytes sent; nothing else is there;
- intake is back at once: a report sent after the flood is received;
- the whole server (its process, the codename and login worker processes, and
  multiprocessing's helper), summed as PSS, stays within what the default
  configuration allows (docs/operations.md); bench/memory.py measures it.

And the systemd unit (deploy/) leaves the server that much memory, and open files for
a thousand connections at once: its MemoryMax of 1G was sized for the two codename
workers and forgot the login worker, below what the flood measures (bench/memory.py:
981 MiB PSS), and its LimitNOFILE of 1024 was below the 1,089 files the server held
with 1,000 connections, where a file or pipe the server needs would fail.

Past the free-space floor (a real tmpfs as the data directory, so the test needs root
and is skipped with the reason otherwise): nine concurrent 5 MiB uploads, three in each
language, with room above the floor for two. Those that fit are received and decrypt;
the others get the 503 page in their language, and nothing of them is kept. When the
space comes back, the next upload is received, without a restart. (Past the quota:
test_concurrent_quota.py.)

Each received report costs two Argon2id runs (its codename), a second or more of a
core, so what a flood can get through is what the codename workers derive: `make
test` sends 6 reports at once beside 40 logins (about 15 s; all three Argon2id
workers busy at once, the case the memory bound is about); `make soak` sends 1,000
beside 500 (AMANA_SOAK_FLOOD_SUBMISSIONS, AMANA_SOAK_FLOOD_LOGINS), where all but
the few dozen the workers serve in the queue's 30 s get the busy page.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from intake_server.config import Config
from support.checkback import codename_from
from support.flood import (
    BUSY_TITLE,
    FULL_TITLE,
    LANGS,
    NOTHING_KEPT,
    Sent,
    TreeWatch,
    configured_memory_kib,
    login_flood,
    submission_flood,
)
from support.server_process import ServerProcess, assert_received_intact, free_port

SUBMISSIONS = int(os.environ.get("AMANA_SOAK_FLOOD_SUBMISSIONS", "6"))
LOGINS = int(os.environ.get("AMANA_SOAK_FLOOD_LOGINS", "40"))
MiB = 1024 * 1024
UNIT = Path(__file__).resolve().parents[2] / "deploy" / "systemd" / "intake-server.service"
# Connections the unit must allow at once (each is an open file), beyond the server's
# own files: its database, the upload slots' files, the worker pools' pipes.
CONNECTIONS = 1000
OWN_FILES = 256


def _unit_setting(name: str) -> str:
    (value,) = re.findall(rf"(?m)^{name}=(\S+)$", UNIT.read_text())
    return value


def test_the_unit_leaves_room_for_the_configured_memory_and_connections() -> None:
    config = Config(data_dir=Path("/nonexistent"), keyring=Path("/nonexistent"))
    files = int(_unit_setting("LimitNOFILE"))
    assert files >= CONNECTIONS + OWN_FILES
    bound = configured_memory_kib(config.max_concurrent_uploads,
                                  config.max_concurrent_derivations,
                                  config.max_concurrent_logins, connections=files)
    memory_max = _unit_setting("MemoryMax")
    unit = {"K": 1, "M": 1024, "G": 1024 * 1024}[memory_max[-1]]
    assert int(memory_max[:-1]) * unit >= bound, (memory_max, bound // 1024)


@pytest.mark.slow
async def test_a_flood_of_submissions_and_logins_loses_nothing_received(
        server: ServerProcess, age_binary: str) -> None:
    assert server.proc is not None
    config = Config.load(server.demo_dir / "intake-server.toml")
    watch = TreeWatch(server.proc.pid)
    sent, logins = await asyncio.gather(submission_flood(server, SUBMISSIONS),
                                        login_flood(server, LOGINS))
    # Intake is back as soon as the flood is over.
    (after,) = await submission_flood(server, 1, big_every=1)
    await watch.stop()

    assert after.status == 200, after.status
    received = [one for one in [*sent, after] if one.status == 200]
    for one in sent:
        assert f'<html lang="{one.lang}"' in one.page
        if one.status == 200:
            assert len(codename_from(one.page).split()) == 7
        else:
            assert one.status == 429, (one.status, one.page[:200])
            assert BUSY_TITLE[one.lang] in one.page
    assert set(logins) <= {403, 429}, set(logins)
    print(f"\nflood: {len(sent)} reports at once, {len(received) - 1} received, "
          f"{sum(one.status == 429 for one in sent)} busy; {len(logins)} logins, "
          f"{logins.count(403)} derived; whole server at most "
          f"{watch.peak_pss_kib // 1024} MiB PSS ({watch.peak_rss_kib // 1024} MiB RSS "
          f"summed), server process {watch.peak_server_rss_kib // 1024} MiB, "
          f"{watch.peak_processes} processes, {watch.peak_fds} open files; "
          f"{watch.samples} samples")

    # Nothing acknowledged is lost, and nothing else was kept.
    assert_received_intact(age_binary, server.identity("triage"), server.store_dir, received,
                           nothing_else=True)
    assert list(server.incoming_dir.iterdir()) == []

    # The whole server, worker pools included, within what its configuration allows.
    bound = configured_memory_kib(config.max_concurrent_uploads,
                                  config.max_concurrent_derivations,
                                  config.max_concurrent_logins, connections=CONNECTIONS)
    assert watch.peak_pss_kib <= bound, (watch.peak_pss_kib, bound)
    stderr = server.stderr_path.read_text()
    assert "Traceback" not in stderr
    assert "internal error" not in stderr


FLOOR_MIB = 72  # the least the config allows: 8 MiB per upload slot
UPLOAD_MIB = 5
PAST_THE_FLOOR = 9  # concurrent uploads, three in each language
ROOM_MIB = 12  # left above the floor by the filler: two uploads fit, not three


async def _upload(server: ServerProcess, lang: str, size: int) -> Sent:
    attachment = os.urandom(size)
    one = Sent(lang, f"floor-{os.urandom(8).hex()}", hashlib.sha256(attachment).hexdigest(),
               size)
    async with server.session() as s:
        csrf = await server.csrf(s, lang)
        data = aiohttp.FormData(quote_fields=False)
        for name, value in (("csrf", csrf), ("category", "spyware"), ("desks", "triage"),
                            ("description", f"{one.marker} disque")):
            data.add_field(name, value)
        data.add_field("files", attachment, filename=f"{one.marker}.bin",
                       content_type="application/octet-stream")
        async with s.post(f"/{lang}/submit", data=data) as resp:
            one.status, one.page = resp.status, await resp.text()
    return one


@pytest.mark.slow
async def test_a_flood_past_the_free_space_floor_is_refused_and_intake_returns_with_space(
        tmp_path: Path, tmpfs, age_binary: str) -> None:  # type: ignore[no-untyped-def]
    data_dir = tmpfs(f"{FLOOR_MIB + 24}m")
    server = ServerProcess(tmp_path, free_port())
    server.start()  # creates the demo installation
    server.stop()
    config_path = server.demo_dir / "intake-server.toml"
    text = config_path.read_text()
    for key, value in (("data_dir", f'"{data_dir}"'), ("min_free_bytes", FLOOR_MIB * MiB)):
        text, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
        assert n == 1
    config_path.write_text(text)
    server.start()
    filler = data_dir / "filler"
    try:
        # Someone else's file takes the disk down to ROOM_MIB above the floor.
        free = os.statvfs(data_dir)
        take = free.f_bavail * free.f_frsize - (FLOOR_MIB + ROOM_MIB) * MiB
        with filler.open("wb") as f:
            f.truncate(0)
            for _ in range(take // MiB):
                f.write(b"\0" * MiB)
        flood = await asyncio.gather(*(_upload(server, LANGS[i % 3], UPLOAD_MIB * MiB)
                                       for i in range(PAST_THE_FLOOR)))
        # Space returns (the operator cleared it): intake is back at once, no restart.
        filler.unlink()
        after = await _upload(server, "ar", UPLOAD_MIB * MiB)
    finally:
        server.stop()
    statuses = [one.status for one in flood]
    print(f"\npast the floor: {statuses.count(200)} of {len(flood)} received, "
          f"{statuses.count(503)} refused; after space returned: {after.status}")
    assert set(statuses) <= {200, 503}, statuses
    assert 1 <= statuses.count(200) <= ROOM_MIB // UPLOAD_MIB
    for one in flood:
        assert f'<html lang="{one.lang}"' in one.page
        if one.status == 503:
            assert FULL_TITLE[one.lang] in one.page
            assert NOTHING_KEPT[one.lang] in one.page
    assert after.status == 200
    # Every report acknowledged is whole, and nothing else was kept.
    received = [one for one in [*flood, after] if one.status == 200]
    assert_received_intact(age_binary, server.identity("triage"), data_dir / "store", received,
                           nothing_else=True)
    assert list((data_dir / "incoming").iterdir()) == []
    with contextlib.closing(sqlite3.connect(data_dir / "intake.db")) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert "Traceback" not in server.stderr_path.read_text()
