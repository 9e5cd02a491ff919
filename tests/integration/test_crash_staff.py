"""Issue 18, crashes on the staff side: the real server killed with SIGKILL while it
builds an export, applies an ack, or applies a desk's outbox of replies and referrals.

Each round kills at a point chosen at random (seeded; the seed is printed, and
AMANA_CRASH_SEED replays it), found by watching the files the operation writes: the
export's hidden partial bundle growing in outgoing/, store/ emptying as acknowledged
reports are deleted, replies/ and store/ filling as an outbox is applied. Some rounds
let the operation finish before the kill. After every kill:

- the database passes ``PRAGMA integrity_check`` and store/ holds exactly the files it
  lists, before and after the restart; after it, incoming/ and staff-incoming/ are
  empty and outgoing/ holds no half-built bundle (nothing half-written is visible to
  export);
- the transfer machine's retry succeeds: the export verifies and holds every report
  not yet acknowledged, the ack deletes what it names, and every reply and referral of
  the outbox is there exactly once (nothing the desk sent is lost).

`make test` runs 3 rounds of each; `make soak` runs AMANA_SOAK_KILLS of each.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from keys.age import X25519Identity
from keys.bundle import open_bundle
from keys.signing import SigningKey
from support.kills import ROUNDS, KillPoints
from support.server_process import ServerProcess, free_port
from support.staff import DemoStaff, add_transfer_key, submit_offline

REPORTS = 12  # for the desk at each round's start, each with a 1 MiB attachment
REPLIES = 40  # replies in each outbox bundle, and two referrals


def _db(server: ServerProcess) -> sqlite3.Connection:
    return sqlite3.connect(server.demo_dir / "data" / "intake.db")


def _consistent(server: ServerProcess) -> None:
    """The database is sound and store/ and replies/ hold exactly what it lists."""
    with contextlib.closing(_db(server)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        files = {r[0] for r in conn.execute("SELECT id FROM files")}
        replies = {r[0] for r in conn.execute("SELECT id FROM replies")}
    stored = {p.name.removesuffix(".age") for p in server.store_dir.iterdir()}
    assert stored >= files, "a file the database lists is missing"
    if server.proc is not None:  # up again: the crash's leftovers are gone
        assert stored == files
        assert {p.name.removesuffix(".age")
                for p in (server.demo_dir / "data" / "replies").iterdir()} == replies
        data = server.demo_dir / "data"
        assert list(server.incoming_dir.iterdir()) == []
        assert list((data / "staff-incoming").iterdir()) == []
        assert [p.name for p in (data / "outgoing").iterdir() if p.name.startswith(".")] == []


def _outbox(staff: DemoStaff) -> tuple[bytes, list[str]]:
    """REPLIES replies to new sources and two referrals; and the reply recipients."""
    items: list[dict[str, Any]] = []
    files: dict[str, bytes] = {}
    recipients = []
    for _ in range(REPLIES):
        rid, to = secrets.token_hex(16), str(X25519Identity.generate().recipient())
        recipients.append(to)
        items.append({"type": "reply", "id": rid, "to": to, "file": f"{rid}.reply.age"})
        files[f"{rid}.reply.age"] = secrets.token_bytes(2000)
    for _ in range(2):
        rid = secrets.token_hex(16)
        names = [f"{rid}.json.age", f"{rid}.a1.age"]
        items.append({"type": "referral", "id": rid, "to_desk": "forensics", "files": names})
        files.update({n: secrets.token_bytes(5000) for n in names})
    return staff.outbox(items, files), recipients


def _unacked(server: ServerProcess) -> set[str]:
    with contextlib.closing(_db(server)) as conn:
        return {r[0] for r in conn.execute(
            "SELECT submission_id FROM submission_desks d WHERE desk_id = 'triage' AND NOT "
            "EXISTS (SELECT 1 FROM acks a WHERE a.submission_id = d.submission_id "
            "AND a.desk_id = 'triage')")}


def _referred(server: ServerProcess) -> int:
    """How many items the forensics desk holds: only referrals from triage go there."""
    with contextlib.closing(_db(server)) as conn:
        return int(conn.execute("SELECT count(*) FROM submission_desks "
                                "WHERE desk_id = 'forensics'").fetchone()[0])


async def _kill_when(server: ServerProcess, op: asyncio.Task[Any],
                     reached: Callable[[], bool]) -> bool:
    """SIGKILL the server as soon as ``reached()`` (or once ``op`` has its answer);
    whether the kill came before the answer."""
    while not op.done() and not reached():
        await asyncio.sleep(0.001)
    mid = not op.done()
    server.kill9()
    with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
        await op
    return mid


def _count(directory: Path, hidden: bool = False) -> int:
    return sum(1 for p in directory.iterdir() if p.name.startswith(".") == hidden)


def _partial_size(outgoing: Path) -> int:
    with contextlib.suppress(FileNotFoundError):
        return max((p.stat().st_size for p in outgoing.iterdir() if p.name.startswith(".")),
                   default=-1)
    return -1


@pytest.mark.slow
async def test_sigkill_during_export_ack_and_outbox_loses_nothing(tmp_path: Path) -> None:
    rng = KillPoints("staff")
    print(rng)  # shown with a failure: replays the same kill points
    server = ServerProcess(tmp_path, free_port())
    server.start()
    transfer = SigningKey.generate()
    add_transfer_key(server.demo_dir, "triage", transfer.verify_key)
    staff = DemoStaff(server, transfer)
    data = server.demo_dir / "data"
    mid_kills = {"export": 0, "ack": 0, "outbox": 0}
    try:
        for _ in range(ROUNDS):
            for kind in ("export", "ack", "outbox"):
                # Beside the running server, as an operator command would.
                await submit_offline(server.demo_dir, ("triage",), secrets.token_bytes(300),
                                     (secrets.token_bytes(1024 * 1024),),
                                     count=max(0, REPORTS - len(_unacked(server))))
                pending = sorted(_unacked(server))
                if kind == "export":
                    path = "/v1/desks/triage/bundle?after=0"
                    op = asyncio.create_task(staff.request("GET", path))
                    at = rng.below(14 * 1024 * 1024)  # past the end: after the answer
                    mid = await _kill_when(server, op, lambda at=at: _partial_size(
                        data / "outgoing") >= at)
                    retry = ("GET", path, b"")
                elif kind == "ack":
                    body = staff.ack(pending)
                    before = _count(server.store_dir)
                    k = rng.below(2 * len(pending) + 2)  # files go two per report
                    op = asyncio.create_task(staff.request(
                        "POST", "/v1/desks/triage/acks", body))
                    mid = await _kill_when(server, op, lambda k=k, before=before: _count(
                        server.store_dir) <= before - k)
                    retry = ("POST", "/v1/desks/triage/acks", body)
                else:
                    body, recipients = _outbox(staff)
                    referred = _referred(server)
                    k = rng.below(REPLIES + 6)
                    op = asyncio.create_task(staff.request(
                        "POST", "/v1/desks/triage/outbox", body))
                    mid = await _kill_when(server, op, lambda k=k: _count(
                        data / "replies") >= k)
                    retry = ("POST", "/v1/desks/triage/outbox", body)
                mid_kills[kind] += mid
                _consistent(server)
                server.start()
                _consistent(server)

                status, answer = await staff.request(*retry)
                if kind == "export":
                    assert status == 200, answer
                    bundle = tmp_path / "export.bundle"
                    bundle.write_bytes(answer)
                    with open_bundle(bundle, {"server": staff.server_key},
                                     kind="desk-export") as b:
                        index = json.loads(b.read("index.json"))
                    assert {it["id"] for it in index["items"]} == set(pending)
                    bundle.unlink()
                elif kind == "ack":
                    assert status == 200, answer
                    assert _unacked(server) == set()
                    with contextlib.closing(_db(server)) as conn:
                        left = {r[0] for r in conn.execute("SELECT id FROM submissions")}
                    assert left.isdisjoint(pending)
                else:
                    # Delivered again, or refused as delivered if the first one finished.
                    assert status == 200 or b"already delivered" in answer, answer
                    with contextlib.closing(_db(server)) as conn:
                        got = [r[0] for r in conn.execute(
                            "SELECT reply_recipient FROM replies")]
                    missing = set(recipients) - set(got)
                    assert not missing, f"{len(missing)} replies lost ({rng})"
                    assert sorted(r for r in got if r in set(recipients)) == sorted(recipients)
                    assert _referred(server) == referred + 2
    finally:
        server.stop()
    print(f"kills before the answer: {mid_kills}")
    # The kill points are drawn so that most land mid-operation; if none did, the
    # rounds tested only restarts.
    assert sum(mid_kills.values()) > 0
