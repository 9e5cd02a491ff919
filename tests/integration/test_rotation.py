"""Issue 17, item 1: a desk replaces its keys, through the real server, transfer machine
and vault, with reports in flight on both keys; nothing is lost or stuck.

The desk `triage` starts on its first keys. Report A1 is fetched and imported, its ack
and a reply to it still on the transfer stick; report A2 waits on the server, encrypted
to the old key. The desk makes its next keys (`intake-keys rotate`), the operator puts
them in the server's keyring with the transition statement (`keyring replace`) and
restarts the server; report B1 arrives, encrypted to the new key. Then, in the order a
real desk might: the old ack and reply are pushed (the server still takes the old key
for what was encrypted to it), the transfer machine learns the new keyring from the
next export, the not-yet-rotated vault imports A2 (and sets B1 aside, not its key yet),
acks with the old key, moves to the new keys (`rotate-keys`), and retries B1. A last
report on the new key goes through, the server is empty, and the old key, drained, is
refused from then on. (That the old key cannot release what came on a later day than
its replacement is tested in tests/intake_server/staff/test_rotation_acks.py, where the
day of a submission can be chosen.)
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp

from intake_server.install import init_install
from keys.bundle import write_bundle_file
from keys.identity import generate_desk, load_desk
from keys.keyring import Keyring
from support.e2e import BIN, PASSPHRASE, run
from support.server_process import CSRF_RE, free_port

DESKS = {"triage": "Triage", "forensics": "Forensics"}


@contextlib.contextmanager
def serve(root: Path, config: Path, n: int) -> Iterator[None]:
    """`intake-server serve` on the install at ``config`` until the block ends; the n-th
    start (a restart reads the keyring again)."""
    log = root / f"server-{n}.out"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(BIN / "intake-server"), "serve", "--config", str(config)],
                                stdout=out, stderr=subprocess.STDOUT, cwd=root)
        try:
            deadline = time.monotonic() + 30
            while b"staff app listening" not in log.read_bytes():
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.05)
            yield
        finally:
            proc.terminate()
            proc.wait(timeout=10)


async def submit(port: int, text: str) -> None:
    jar = aiohttp.CookieJar(unsafe=True)  # cookies from 127.0.0.1
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", cookie_jar=jar) as http:
        async with http.get("/en/submit") as resp:
            csrf = CSRF_RE.search(await resp.text()).group(1)
        form = aiohttp.FormData(quote_fields=False, default_to_multipart=True)
        for name, value in (("csrf", csrf), ("category", "spyware"), ("desks", "triage"),
                            ("consent_share", "yes"), ("description", text)):
            form.add_field(name, value)
        form.add_field("files", f"screenshot of {text}".encode(), filename="shot.png",
                       content_type="image/png")
        async with http.post("/en/submit", data=form) as resp:
            assert resp.status == 200


def push(root: Path, transfer: Path, staff_url: str, *files: Path
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "journalist-transfer"), "push", "--dir", str(transfer), "--server",
         staff_url, *map(str, files)],
        capture_output=True, text=True, cwd=root, timeout=120, check=False)


def ids_in(listing: str) -> set[str]:
    return set(re.findall(r"^\s*([0-9a-f]{12})\b", listing, re.MULTILINE))


async def test_rotation_with_reports_in_flight_on_both_keys(tmp_path: Path) -> None:
    root = tmp_path
    (root / "desks").mkdir()
    desks = [generate_desk(d, {"en": n, "ar": n, "fr": n}, root / "desks" / d, PASSPHRASE,
                           work_factor=10) for d, n in DESKS.items()]
    port, staff_port = free_port(), free_port()
    config = init_install(root / "server", port=port, staff_port=staff_port,
                          default_desk="triage")
    keyring = config.parent / "keyring.json"
    Keyring(desks).save(keyring)
    pw = root / "pw"
    pw.write_text(PASSPHRASE + "\n")
    store = config.parent / "data" / "store"
    server_key = (config.parent / "server-verify.key").read_text().split()[-1]
    staff_url = f"http://127.0.0.1:{staff_port}"
    transfer = root / "transfer"
    vault = ["journalist-client", "--vault", str(root / "vault"), "--passphrase-file", str(pw)]

    def fetch(n: int) -> tuple[Path, str]:
        out = run("journalist-transfer", "fetch", "--dir", str(transfer), "--server",
                  staff_url, "--out", str(root / f"usb-{n}"), cwd=root)
        (bundle,) = (root / f"usb-{n}").glob("export-*.bundle")
        return bundle, out

    with serve(root, config, 1):
        await submit(port, "A1 old key, imported before the rotation")
        printed = run("journalist-transfer", "init", "--dir", str(transfer), "--desk", "triage",
                      "--server-key", server_key, "--keyring", str(keyring), cwd=root)
        key = re.search(r"ed25519:[A-Za-z0-9_-]{43}", printed).group(0)
        run("intake-server", "desk", "add-transfer-key", "--config", str(config),
            "--desk", "triage", key, cwd=root)
        bundle1, _ = fetch(1)
        run(*vault, "init", "--import-keys", str(root / "desks" / "triage"),
            "--keyring", str(keyring), "--server-key", server_key, cwd=root)
        ack1 = root / "usb-1" / "ack.bundle"
        run(*vault, "import", "--no-progress", "--ack-out", str(ack1), str(bundle1), cwd=root)
        (a1,) = ids_in(run(*vault, "list", cwd=root))
        (root / "reply.txt").write_text("Thank you, we are looking at it.\n")
        run(*vault, "reply", a1, "--file", str(root / "reply.txt"), cwd=root)
        outbox1 = root / "usb-1" / "outbox.bundle"
        run(*vault, "outbox", "bundle", "--out", str(outbox1), cwd=root)
        # Report A2, encrypted to the old key, waits on the server.
        await submit(port, "A2 old key, fetched after the rotation")

    # The desk makes its next keys; the operator replaces its entry and restarts.
    rotated = run("intake-keys", "rotate", "--desk", str(root / "desks" / "triage"),
                  "--out", str(root / "desks" / "triage-2"), "--passphrase-file", str(pw),
                  cwd=root)
    assert "transition.txt" in rotated
    new_dir = root / "desks" / "triage-2"
    run("intake-keys", "keyring", "replace", str(keyring), str(new_dir / "desk.json"),
        "--transition", str(new_dir / "transition.txt"), cwd=root)
    checked = run("intake-keys", "keyring", "check", str(keyring), cwd=root)
    assert "transition signed by old and new key" in checked
    new_fp = json.loads((new_dir / "desk.json").read_text())["fingerprint"]

    with serve(root, config, 2):
        await submit(port, "B1 new key, arrived after the rotation")
        assert len(list(store.iterdir())) == 6  # A1, A2 and B1, each a report and a file

        # The old vault's ack and reply, signed by the old key, are still taken: A1 is
        # encrypted to that key and was waiting for this very ack.
        pushed = push(root, transfer, staff_url, ack1, outbox1)
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        assert len(list((config.parent / "data" / "replies").iterdir())) == 1

        # The transfer machine learns the new keyring from the server-signed export.
        bundle2, fetched = fetch(2)
        assert f"desk triage: new keys {new_fp} adopted" in fetched
        settings = json.loads((transfer / "transfer.json").read_text())
        (entry,) = [d for d in settings["keyring"]["desks"] if d["id"] == "triage"]
        assert entry["fingerprint"] == new_fp

        # The vault, not yet moved to the new keys, opens A2 and sets B1 aside.
        ack2 = root / "usb-2" / "ack.bundle"
        imported = run(*vault, "import", "--no-progress", "--ack-out", str(ack2),
                       str(bundle2), cwd=root)
        assert "1 imported, 0 already here, 1 quarantined" in imported
        assert f"new keys {new_fp} adopted" in imported
        assert "rotate-keys" in imported
        pushed = push(root, transfer, staff_url, ack2)
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        assert list(store.iterdir()) == []  # everything encrypted before is acknowledged

        # The vault moves to its new keys, keeping the old identity.
        moved = run(*vault, "rotate-keys", "--import-keys", str(new_dir), cwd=root)
        assert new_fp in moved
        assert (root / "vault" / "keys" / "previous" / "1" / "identity.age").exists()
        assert not (root / "vault" / "keys" / "previous" / "1" / "signing.age").exists()
        retried = run(*vault, "quarantine", "--retry", cwd=root)
        assert "1" in retried
        listing = run(*vault, "list", cwd=root)
        assert len(ids_in(listing)) == 3
        for item in ids_in(listing):  # old-key and new-key reports alike open
            shown = run(*vault, "show", item, cwd=root)
            assert re.search(r"(A1|A2|B1) (old|new) key", shown), shown
            assert "shot.png" in shown

        # A report on the new key goes the whole way with the new key's ack.
        await submit(port, "B2 new key, after the vault moved")
        bundle3, _ = fetch(3)
        ack3 = root / "usb-3" / "ack.bundle"
        imported = run(*vault, "import", "--no-progress", "--ack-out", str(ack3),
                       str(bundle3), cwd=root)
        assert "1 imported, 0 already here, 0 quarantined" in imported
        pushed = push(root, transfer, staff_url, ack3)
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        assert list(store.iterdir()) == []
        (b2,) = ids_in(run(*vault, "list", cwd=root)) - ids_in(listing)
        assert "B2 new key" in run(*vault, "show", b2, cwd=root)

        # Drained (nothing encrypted to it waits any more): the old key is refused from
        # now on, whatever it signs.
        old = load_desk(root / "desks" / "triage", PASSPHRASE)
        body = json.dumps({"format": "amana-ack", "version": 1, "desk": "triage",
                           "ids": ["0" * 32]}).encode()
        late = root / "late-ack.bundle"
        write_bundle_file(late, "ack", "triage", [("ack.json", io.BytesIO(body))],
                          old.signing_key)
        pushed = push(root, transfer, staff_url, late)
        assert pushed.returncode != 0
        assert "not trusted" in pushed.stdout + pushed.stderr
