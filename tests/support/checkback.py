"""Check-back helpers for tests against the real server process.

A reply is made as a desk makes one: an amana-reply document age-encrypted (keys/)
to the source's reply recipient and the desk, stored through StaffStore.store_reply
in the running server's data dir (SQLite in WAL mode takes the second writer).
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from pathlib import Path

from intake_server.config import Config
from intake_server.install import CONFIG_NAME
from intake_server.staff.store import StaffStore
from intake_server.storage import Storage
from keys import fs
from keys.age import encrypt, parse_identity_file, parse_recipient

CODENAME_RE = re.compile(r'<p class="codename"[^>]*>(.*?)</p>', re.DOTALL)


def codename_from(page: str) -> str:
    match = CODENAME_RE.search(page)
    assert match, "no codename on the page"
    return " ".join(re.findall(r"<span>([a-z-]+)</span>", match.group(1)))


def reply_recipients(demo_dir: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(demo_dir / "data" / "intake.db")) as conn:
        return [r[0] for r in conn.execute("SELECT reply_recipient FROM sources")]


def store_reply(demo_dir: Path, reply_recipient: str, desk: str, body: str) -> str:
    config = Config.load(demo_dir / CONFIG_NAME)
    desk_identity = parse_identity_file((demo_dir / "desks" / desk / "identity.txt").read_text())
    doc = json.dumps({"format": "amana-reply", "version": 1, "desk": desk,
                      "day": "2026-11-28", "body": body}, ensure_ascii=False).encode("utf-8")
    ciphertext = encrypt(doc, [parse_recipient(reply_recipient),
                               desk_identity[0].recipient()])

    def write(path: Path) -> None:
        with fs.create_exclusive(path.parent, path.name) as f:
            f.write(ciphertext)

    storage = Storage(config)
    # As an operator command does: beside the running server, never its cleanup.
    storage.open(serving=False)
    try:
        store = StaffStore(storage)
        store.open()
        return store.store_reply(reply_recipient=reply_recipient, desk=desk, write=write)
    finally:
        storage.close()


def reply_file(demo_dir: Path, reply_id: str) -> Path:
    return demo_dir / "data" / "replies" / f"{reply_id}.age"


def followups(demo_dir: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(demo_dir / "data" / "intake.db")) as conn:
        return [r[0] for r in conn.execute(
            "SELECT id FROM submissions WHERE type = 'followup'")]


def files_of(demo_dir: Path, submission_id: str) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {"report": [], "attachment": []}
    with contextlib.closing(sqlite3.connect(demo_dir / "data" / "intake.db")) as conn:
        for file_id, kind in conn.execute(
                "SELECT id, kind FROM files WHERE submission_id = ? ORDER BY position",
                (submission_id,)):
            out[kind].append(demo_dir / "data" / "store" / f"{file_id}.age")
    return out
