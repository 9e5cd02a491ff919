"""Post-quantum desks end to end (issue 13, item 5; docs/adr/0008-post-quantum-desks.md).

A keyring that mixes classic and post-quantum desks is refused by `intake-keys keyring
check` and by `intake-server serve`: one report to both kinds would leave a classic copy
that a recording adversary decrypts later. An all-post-quantum keyring works with every
real part: a source submits, the transfer machine fetches, the desk's vault imports,
the desk replies, and the source reads the reply after logging in with the codename;
the reply opens only with the post-quantum reply identity derived from the codename.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from integration.test_transfer_e2e import read_inbox, submit

from intake_server.install import init_install
from keys.age import HybridRecipient, X25519Identity, decrypt, parse_recipient
from keys.codename import derive_source
from keys.identity import generate_desk
from support.e2e import BIN, PASSPHRASE, run, serving
from support.server_process import CSRF_RE, free_port

NAMES = {"triage": "Triage", "forensics": "Forensics"}


def _desks(root: Path, pq: dict[str, bool]) -> list:
    (root / "desks").mkdir()
    return [generate_desk(d, {"en": NAMES[d], "ar": NAMES[d], "fr": NAMES[d]},
                          root / "desks" / d, PASSPHRASE, pq=pq[d], work_factor=10)
            for d in NAMES]


def test_mixed_keyring_refused_by_check_and_server(tmp_path: Path) -> None:
    desks = _desks(tmp_path, {"triage": False, "forensics": True})
    config = init_install(tmp_path / "server", port=free_port(), staff_port=free_port(),
                          default_desk="triage")
    keyring = config.parent / "keyring.json"
    # Written as a file by hand, as an operator could: the format itself allows it.
    keyring.write_text(json.dumps({"version": 1, "desks": [d.to_dict() for d in desks]}))

    check = subprocess.run([str(BIN / "intake-keys"), "keyring", "check", str(keyring)],
                           capture_output=True, text=True, timeout=60, check=False)
    assert check.returncode != 0, check.stdout
    assert "post-quantum" in check.stderr
    assert "forensics" in check.stderr

    serve = subprocess.run([str(BIN / "intake-server"), "serve", "--config", str(config)],
                           capture_output=True, text=True, timeout=60, check=False)
    assert serve.returncode != 0
    assert "post-quantum" in serve.stderr
    assert "Traceback" not in serve.stderr


@pytest.fixture
def pq_site(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with serving(tmp_path, _desks(tmp_path, {"triage": True, "forensics": True})) as site:
        yield site


async def test_pq_desk_receives_replies_and_source_reads(pq_site: dict) -> None:
    root, config = pq_site["root"], pq_site["config"]
    codename = await submit(pq_site["port"])  # to both desks, two attachments
    server_key = (config.parent / "server-verify.key").read_text().split()[-1]
    keyring = str(config.parent / "keyring.json")
    staff_url = f"http://127.0.0.1:{pq_site['staff']}"
    for path in (config.parent / "data" / "store").iterdir():
        header = path.read_bytes().split(b"\n---", 1)[0]
        assert b"-> mlkem768x25519 " in header
        assert b"-> X25519 " not in header

    transfer = root / "transfer-triage"
    printed = run("journalist-transfer", "init", "--dir", str(transfer), "--desk", "triage",
                  "--server-key", server_key, "--keyring", keyring, cwd=root)
    key = printed.split("ed25519:", 1)[1].split()[0]
    run("intake-server", "desk", "add-transfer-key", "--config", str(config),
        "--desk", "triage", f"ed25519:{key}", cwd=root)
    run("journalist-transfer", "fetch", "--dir", str(transfer), "--server", staff_url,
        "--out", str(root / "usb"), cwd=root)
    (bundle,) = (root / "usb").glob("export-*.bundle")
    vault = ["journalist-client", "--vault", str(root / "vault"),
             "--passphrase-file", str(root / "pw")]
    run(*vault, "init", "--import-keys", str(root / "desks" / "triage"), "--keyring", keyring,
        "--server-key", server_key, cwd=root)
    run(*vault, "import", "--no-progress", "--ack-out", str(root / "usb" / "ack.bundle"),
        str(bundle), cwd=root)
    listing = run(*vault, "list", cwd=root)
    report_id = re.search(r"\b([0-9a-f]{8,32})\b", listing).group(1)
    assert "A link arrived by WhatsApp" in run(*vault, "show", report_id, cwd=root)
    run("journalist-transfer", "push", "--dir", str(transfer), "--server", staff_url,
        str(root / "usb" / "ack.bundle"), cwd=root)

    (root / "reply.txt").write_text("Thank you. Which phone model is it?\n")
    run(*vault, "reply", report_id, "--file", str(root / "reply.txt"), cwd=root)
    outbox = root / "usb" / "outbox.bundle"
    run(*vault, "outbox", "bundle", "--out", str(outbox), cwd=root)
    run("journalist-transfer", "push", "--dir", str(transfer), "--server", staff_url,
        str(outbox), cwd=root)

    (reply,) = (config.parent / "data" / "replies").iterdir()
    ciphertext = reply.read_bytes()
    header = ciphertext.split(b"\n---", 1)[0]
    assert b"-> mlkem768x25519 " in header
    assert b"-> X25519 " not in header
    source = derive_source(codename, post_quantum=True)
    assert source.reply_pq_identity is not None
    assert isinstance(parse_recipient(str(source.reply_pq_identity.recipient())),
                      HybridRecipient)
    document = json.loads(decrypt(ciphertext, [source.reply_pq_identity]))
    assert document["desk"] == "triage"
    with pytest.raises(Exception, match="none of the given identities"):
        decrypt(ciphertext, [source.reply_identity, X25519Identity.generate()])
    assert "Which phone model is it?" in await read_inbox(pq_site["port"], codename)

    # The source answers with a follow-up: it carries the post-quantum reply recipient the
    # server derived at login, and the desk's second reply goes to it.
    await followup(pq_site["port"], codename, "It is an iPhone 13.")
    run("journalist-transfer", "fetch", "--dir", str(transfer), "--server", staff_url,
        "--out", str(root / "usb2"), cwd=root)
    (bundle,) = (root / "usb2").glob("export-*.bundle")
    run(*vault, "import", "--no-progress", "--ack-out", str(root / "usb2" / "ack.bundle"),
        str(bundle), cwd=root)
    assert "It is an iPhone 13." in run(*vault, "show", report_id, cwd=root)
    (root / "reply2.txt").write_text("Thank you, we will check it.\n")
    run(*vault, "reply", report_id, "--file", str(root / "reply2.txt"), cwd=root)
    run(*vault, "outbox", "bundle", "--out", str(root / "usb2" / "outbox.bundle"), cwd=root)
    run("journalist-transfer", "push", "--dir", str(transfer), "--server", staff_url,
        str(root / "usb2" / "outbox.bundle"), cwd=root)
    assert "we will check it" in await read_inbox(pq_site["port"], codename)


async def followup(port: int, codename: str, message: str) -> None:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", cookie_jar=jar) as http:
        async with http.get("/en/login") as resp:
            csrf = CSRF_RE.search(await resp.text()).group(1)
        async with http.post("/en/login", data={"csrf": csrf, "codename": codename}) as resp:
            assert resp.url.path == "/en/inbox"
            csrf = CSRF_RE.search(await resp.text()).group(1)
        data = aiohttp.FormData(quote_fields=False, default_to_multipart=True)
        data.add_field("csrf", csrf)
        data.add_field("message", message)
        async with http.post("/en/followup", data=data) as resp:
            assert resp.status == 200
            assert resp.url.path == "/en/inbox"
