"""An outbox bundle whose application a crash cut short is delivered whole when the
transfer machine sends it again (issue 18, crashes on the staff side).

The server used to record the bundle as delivered first, in a transaction of its own,
then store each reply and referral in turn: a server killed in between refused the
retry as "already delivered", and the replies it had not stored yet were lost (the
desk's vault had marked them sent). Here a child process applies the bundle and
dies (``os._exit``, no clean-up, as under SIGKILL) just as it is about to store the
third reply; then the same bundle is applied again.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from intake_server.staff.bundles import apply_outbox_bundle
from intake_server.staff.store import StaffStore
from intake_server.storage import Storage
from keys.age import X25519Identity
from keys.keyring import Keyring
from support.staff import Site, make_site, outbox_bundle

_CHILD = """
import os, sys
from pathlib import Path

import pytest
from intake_server.config import Config
from intake_server.staff.bundles import apply_outbox_bundle
from intake_server.staff.store import StaffStore
from intake_server.storage import Storage
from keys.keyring import Keyring

data, keyring, bundle, verify = sys.argv[1:]
storage = Storage(Config(data_dir=Path(data), keyring=Path(keyring), default_desk="triage"))
storage.open()
store = StaffStore(storage)
store.open()
calls = []
real = store.store_reply

def dying(**kw):
    calls.append(1)
    if len(calls) == 3:
        os._exit(9)  # killed: no except, no finally, no close
    return real(**kw)

store.store_reply = dying
from keys.signing import VerifyKey
apply_outbox_bundle(store, Path(bundle), {"triage": VerifyKey.from_text(verify)},
                    Keyring.load(keyring))
"""


def _replies(site: Site, n: int) -> tuple[bytes, list[str]]:
    items, files, recipients = [], {}, []
    for _ in range(n):
        rid, to = secrets.token_hex(16), str(X25519Identity.generate().recipient())
        items.append({"type": "reply", "id": rid, "to": to, "file": f"{rid}.reply.age"})
        files[f"{rid}.reply.age"] = secrets.token_bytes(300)
        recipients.append(to)
    rid = secrets.token_hex(16)
    items.append({"type": "referral", "id": rid, "to_desk": "forensics",
                  "files": [f"{rid}.json.age"]})
    files[f"{rid}.json.age"] = secrets.token_bytes(300)
    return outbox_bundle(site, items, files), recipients


def test_an_outbox_cut_short_by_a_crash_is_delivered_whole_on_retry(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    site.storage.close()
    raw, recipients = _replies(site, 5)
    bundle = tmp_path / "outbox.bundle"
    bundle.write_bytes(raw)
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(site.config.data_dir), str(site.config.keyring),
         str(bundle), str(site.signing["triage"].verify_key)],
        capture_output=True, text=True, timeout=60, check=False)
    assert child.returncode == 9, child.stderr  # died at the third reply, as planned

    storage = Storage(site.config)
    storage.open()  # the restart: removes what the crash left unrecorded
    try:
        store = StaffStore(storage)
        store.open()
        trusted = {"triage": site.signing["triage"].verify_key}
        result = apply_outbox_bundle(store, bundle, trusted, Keyring.load(site.config.keyring))
        assert (result["replies"], result["referrals"]) == (5, 1)
        for to in recipients:
            assert len(store.replies_for(to)) == 1
        stored = {p.name for p in store.replies_dir.iterdir()}
        rows = {f"{r[0]}.age" for r in storage.db.execute("SELECT id FROM replies")}
        assert stored == rows
    finally:
        storage.close()


_HALF_EXTRACTED = r"""
import os, sys
from keys import fs
w = fs.AtomicWriter(sys.argv[1])  # as VerifiedBundle.extract writes a reply or referral
w.write(b"age ciphertext, half of it")
w.file.flush()
os._exit(9)
"""


@pytest.mark.parametrize("where", ["staff-incoming", "incoming"])
def test_a_file_cut_short_by_a_crash_does_not_stop_the_next_start(
        tmp_path: Path, where: str) -> None:
    """A reply (staged in staff-incoming/) or a referral (in incoming/) being extracted
    from an outbox bundle when the server was killed leaves AtomicWriter's hidden
    partial file. Start-up removed those directories' files by name through
    safe_unlink, which refuses a hidden name: the server would not start again until
    an operator deleted the file (found by tests/integration/test_crash_staff.py)."""
    site = make_site(tmp_path)
    StaffStore(site.storage).open()  # makes staff-incoming/
    site.storage.close()
    target = site.config.data_dir / where / f"{secrets.token_hex(16)}.age"
    subprocess.run([sys.executable, "-c", _HALF_EXTRACTED, str(target)], check=False,
                   timeout=60)
    assert [p for p in target.parent.iterdir() if p.name.endswith(".partial")]
    storage = Storage(site.config)
    storage.open()
    try:
        StaffStore(storage).open()
        assert list(target.parent.iterdir()) == []
    finally:
        storage.close()
