"""Issue 18, crashes on the triage machine: journalist-client killed with SIGKILL during
an import, a vault save (the whole image, and a session's journal record), an outbox
bundle and the local UI's triage actions.

Each is a real process; where to kill it is drawn at random (support.kills: seeded,
printed, replayable with AMANA_CRASH_SEED) and found by watching what the process
writes: ciphertext arriving in files/, the hidden partial file of the image, the ack
or the outbox bundle, the confirmations it prints. Some draws let it finish first.
After every kill the vault opens with its passphrase, and:

- import: an ack bundle, if one was written, names only items the vault holds (the
  server deletes what it names): import, then save, then ack, whatever the moment of
  the kill. Run again, the import completes and its ack names everything.
- save: every save the process confirmed is there, and each came whole.
- outbox bundle: every queued reply is still in the outbox or in a complete, signed
  bundle on the stick: none is marked sent without having been written.
- the UI: every note whose POST was answered is in the vault.

`make test` runs 3 kills of each; `make soak` runs AMANA_SOAK_KILLS.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from journalist_client import replies, triage
from journalist_client.vault import DB_FILE, Vault, unlock
from keys.bundle import open_bundle
from support.kills import NOTE_SAVER, ROUNDS, KillPoints, kill_when

from .conftest import PASSPHRASE, Server, attachment_meta, report_doc

pytestmark = pytest.mark.slow
ITEMS = 60  # in the bundle each import round imports; every other one with an attachment


def _client(vault: Path, passfile: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "journalist_client.cli", "--vault", str(vault),
         "--passphrase-file", str(passfile), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1", AMANA_VAULT=""))


def _hidden(directory: Path, name: str) -> bool:
    """Whether an AtomicWriter is writing ``name`` in ``directory`` (its partial file)."""
    return any(p.name.startswith(f".{name}.") for p in directory.iterdir())


def _held(v: Vault) -> set[str]:
    return {r[0] for r in v.conn.execute(
        "SELECT id FROM items UNION SELECT item_id FROM quarantine")}


def _acked(ack: Path, v: Vault) -> list[str]:
    with open_bundle(ack, {v.desk_id: v.keys.signing_key.verify_key}, kind="ack") as b:
        return list(json.loads(b.read("ack.json"))["ids"])


def _copy(template: Path, to: Path) -> Path:
    shutil.rmtree(to, ignore_errors=True)
    shutil.copytree(template, to)
    return to


def test_kill_9_during_import_never_acks_what_the_vault_lacks(
        desk_vault: Vault, vault_dir: Path, server: Server, passfile: Path,
        tmp_path: Path) -> None:
    desk_vault.close()
    rng = KillPoints("import")
    print(rng)
    items = []
    for n in range(ITEMS):
        doc = report_doc(description=f"report {n}")
        data = os.urandom(20_000) if n % 2 else b""
        if data:
            doc["attachments"] = [attachment_meta(data)]
        items.append(server.item(doc, [data] if data else []))
    items.append(server.item(b"{not json"))  # quarantined, and acknowledged all the same
    bundle = server.bundle(items)
    every = {it.id for it in items}
    files_total = sum(1 + len(it.attachments) for it in items)
    mid = 0
    for r in range(ROUNDS):
        work = _copy(vault_dir, tmp_path / f"v{r}")
        usb = tmp_path / f"usb{r}"
        usb.mkdir()
        ack = usb / "ack.bundle"
        proc = _client(work, passfile, "import", "--no-progress", "--ack-out", str(ack),
                       str(bundle))
        point = rng.below(4)
        if point == 0:  # while ciphertext arrives in files/
            k = rng.below(files_total)
            mid += kill_when(proc, lambda k=k, work=work: len(os.listdir(work / "files")) > k)
        elif point == 1:  # while the image is written
            mid += kill_when(proc, lambda work=work: _hidden(work, DB_FILE))
        elif point == 2:  # while the ack is written
            mid += kill_when(proc, lambda usb=usb, ack=ack: _hidden(usb, ack.name))
        else:
            mid += kill_when(proc, lambda: False)
        v = unlock(work, PASSPHRASE)
        try:
            if ack.exists():
                assert set(_acked(ack, v)) <= _held(v), f"acknowledged, not held ({rng})"
            assert _held(v) <= every
        finally:
            v.close()
        # Run again as a triager would; an ack already written is never replaced (and
        # a repeated import points to it).
        again = usb / "ack-again.bundle" if ack.exists() else ack
        done = _client(work, passfile, "import", "--no-progress", "--ack-out", str(again),
                       str(bundle))
        out, err = done.communicate(timeout=120)
        assert done.returncode == 0, err
        v = unlock(work, PASSPHRASE)
        try:
            assert _held(v) == every
            assert set(_acked(ack, v)) == every
            for name in os.listdir(work / "files"):
                assert not name.startswith("."), name
        finally:
            v.close()
    print(f"kills before the import ended: {mid} of {ROUNDS}")




@pytest.mark.parametrize("mode", ["image", "journal"])
def test_kill_9_during_a_save_keeps_every_confirmed_one(
        desk_vault: Vault, vault_dir: Path, server: Server, mode: str) -> None:
    """A save outside a session rewrites the image (AtomicWriter); in a session it appends
    a record to the journal (ADR 0010). Killed at the k-th confirmation plus a drawn
    number of further partial-file sightings, so that kills land inside the write."""
    its = [server.item(report_doc(description=f"r{i}")) for i in range(3)]
    from journalist_client.importer import import_bundle

    import_bundle(desk_vault, server.bundle(its), progress=False)
    desk_vault.close()
    ids = [it.id for it in its]
    rng = KillPoints(f"save-{mode}")
    print(rng)
    last = 0
    for _ in range(ROUNDS):
        proc = subprocess.Popen([sys.executable, "-c", NOTE_SAVER, str(vault_dir), PASSPHRASE,
                                 mode, *ids], stdout=subprocess.PIPE)
        assert proc.stdout is not None
        confirmed = 0
        for _ in range(1 + rng.below(12)):
            confirmed = int(proc.stdout.readline())
        at_once = rng.below(3) == 0
        if mode == "image":
            # Inside the next image write, or between two.
            kill_when(proc, lambda at_once=at_once: at_once or _hidden(vault_dir, DB_FILE))
        else:
            journal = vault_dir / "triage.journal"
            size = journal.stat().st_size if journal.exists() else 0
            # Once the next record has begun to grow the journal, or at once.
            kill_when(proc, lambda at_once=at_once, journal=journal, size=size: at_once or (
                journal.exists() and journal.stat().st_size > size))
        v = unlock(vault_dir, PASSPHRASE)
        try:
            counter = int(v.meta("counter") or 0)
            assert counter >= confirmed > last, rng
            notes = v.conn.execute("SELECT count(*) FROM notes WHERE text LIKE 'note %'"
                                   ).fetchone()[0]
            assert notes == counter, f"a save came in part ({rng})"
            last = counter
        finally:
            v.close()
        assert not [p for p in vault_dir.iterdir() if p.name.startswith(f".{DB_FILE}.")]


def test_kill_9_during_outbox_bundle_marks_nothing_sent_unwritten(
        desk_vault: Vault, vault_dir: Path, server: Server, passfile: Path,
        tmp_path: Path) -> None:
    its = [server.item(report_doc(description=f"r{i}")) for i in range(4)]
    from journalist_client.importer import import_bundle

    import_bundle(desk_vault, server.bundle(its), progress=False)
    queued = [replies.add_reply(desk_vault, it.id, f"reply {n} " + "x" * 30_000)
              for n, it in enumerate(its * 5)]
    desk_vault.save()
    desk_vault.close()
    rng = KillPoints("outbox")
    print(rng)
    for r in range(ROUNDS):
        work = _copy(vault_dir, tmp_path / f"v{r}")
        usb = tmp_path / f"usb{r}"
        usb.mkdir()
        out = usb / "outbox.bundle"
        proc = _client(work, passfile, "outbox", "bundle", "--out", str(out))
        point = rng.below(3)
        if point == 0:
            kill_when(proc, lambda usb=usb, out=out: _hidden(usb, out.name))
        elif point == 1:
            kill_when(proc, lambda out=out: out.exists())
        else:
            kill_when(proc, lambda: False)
        v = unlock(work, PASSPHRASE)
        try:
            pending = {e.id for e in replies.list_outbox(v)}
            written: set[str] = set()
            if out.exists():
                with open_bundle(out, {v.desk_id: v.keys.signing_key.verify_key},
                                 kind="outbox") as b:
                    written = {i["id"] for i in json.loads(b.read("outbox.json"))["items"]}
            # Every reply is either still to send or on the stick, whole and signed.
            assert pending | written == set(queued), rng
            sent = {e.id for e in replies.list_outbox(v, include_sent=True)} - pending
            assert sent <= written, f"marked sent, never written ({rng})"
        finally:
            v.close()


def _ui(vault: Path, passfile: Path) -> tuple[subprocess.Popen[bytes], str]:
    proc = _client(vault, passfile, "ui", "--no-browser")
    assert proc.stdout is not None
    url = proc.stdout.readline().decode().strip()
    assert url.startswith("http://127.0.0.1:"), url
    return proc, url


def _request(port: int, method: str, path: str, headers: dict[str, str],
             body: str | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        hdrs = {"Host": f"127.0.0.1:{port}", "Origin": f"http://127.0.0.1:{port}", **headers}
        if body is not None:
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def test_kill_9_during_ui_triage_actions_keeps_every_answered_one(
        desk_vault: Vault, vault_dir: Path, server: Server, passfile: Path) -> None:
    """Notes and status changes posted one after another while the UI is killed after a
    drawn number of answers and a drawn number of further writes to the journal."""
    its = [server.item(report_doc(description=f"r{i}")) for i in range(2)]
    from journalist_client.importer import import_bundle

    import_bundle(desk_vault, server.bundle(its), progress=False)
    desk_vault.close()
    rng = KillPoints("ui")
    print(rng)
    answered: list[str] = []
    # Each item's status as last saved: the in-flight action must change it, or it would
    # save nothing (and an action killed before its save did not change it).
    statuses = {it.id: "new" for it in its}
    for r in range(ROUNDS):
        proc, url = _ui(vault_dir, passfile)
        try:
            parts = urllib.parse.urlsplit(url)
            port = int(parts.port or 0)
            status, headers, _ = _request(port, "GET", f"/login?{parts.query}", {})
            assert status == 303
            cookie = (headers.get("Set-Cookie") or "").split(";", 1)[0]
            _, _, page = _request(port, "GET", "/", {"Cookie": cookie})
            match = re.search(rb'name="csrf" value="([^"]+)"', page)
            assert match is not None
            csrf = match.group(1).decode()
            journal = vault_dir / "triage.journal"
            for n in range(1 + rng.below(8)):
                text = f"ui note {r}-{n}"
                body = urllib.parse.urlencode({"csrf": csrf, "text": text})
                status, _, _ = _request(port, "POST", f"/item/{its[n % 2].id}/note",
                                        {"Cookie": cookie}, body)
                assert status == 303
                answered.append(text)
            # The next action is in flight when the kill comes, or has just been sent.
            size = journal.stat().st_size if journal.exists() else 0
            item = its[r % 2].id
            new = "closed" if statuses[item] != "closed" else "triaged"
            body = urllib.parse.urlencode({"csrf": csrf, "status": new})
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", f"/item/{item}/set", body=body, headers={
                "Host": f"127.0.0.1:{port}", "Origin": f"http://127.0.0.1:{port}",
                "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
            wait = rng.below(2)
            kill_when(proc, lambda size=size, wait=wait, journal=journal: wait == 0 or (
                journal.exists() and journal.stat().st_size > size), timeout=20)
            conn.close()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        v = unlock(vault_dir, PASSPHRASE)
        try:
            shown = [triage.show_item(v, it.id) for it in its]
            kept = {n.text for item_ in shown for n in item_.notes}
            missing = [a for a in answered if a not in kept]
            assert not missing, f"answered and lost: {missing} ({rng})"
            statuses = {it.id: item_.status for it, item_ in zip(its, shown, strict=True)}
        finally:
            v.close()
