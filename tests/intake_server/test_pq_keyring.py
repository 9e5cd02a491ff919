"""The source app with a post-quantum keyring (docs/adr/0008-post-quantum-desks.md).

Reports and follow-ups carry the source's post-quantum reply recipient beside the
X25519 one, which stays the source's address; a reply encrypted to the post-quantum
recipient (and the desk) is read in the inbox. A classic keyring's documents carry no
post-quantum recipient. The end-to-end run with the real processes is
tests/integration/test_pq_desks.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from intake_server.state import REPLIES
from journalist_client.schema import parse_document
from keys import fs
from keys.age import HybridIdentity, Identity, decrypt, encrypt
from keys.codename import derive_source
from keys.keyring import Desk, Keyring
from keys.signing import SigningKey
from support.intake import Install, form, make_install
from support.source import login, page_csrf, reply_document, source_row, submit_report


def _documents(inst: Install, identity: Identity) -> list[dict[str, Any]]:
    """The report or follow-up documents among the stored files (no attachments here)."""
    return [json.loads(decrypt(p.read_bytes(), [identity]))
            for p in inst.config.store_dir.iterdir()]


async def test_pq_keyring_documents_and_replies(tmp_path: Path,
                                                make_client: Callable[..., Any]) -> None:
    inst = make_install(tmp_path)
    triage = HybridIdentity.generate()
    desks = [Desk.create(d, {"en": d, "ar": d, "fr": d}, str(i.recipient()),
                         str(SigningKey.generate().verify_key))
             for d, i in (("triage", triage), ("forensics", HybridIdentity.generate()))]
    inst.config.keyring.write_bytes(Keyring(desks).to_json())
    client = await make_client(inst)

    codename = await submit_report(client)
    keys = derive_source(codename, post_quantum=True)
    assert keys.reply_pq_identity is not None
    pq_recipient = str(keys.reply_pq_identity.recipient())
    x25519_recipient = str(keys.reply_identity.recipient())
    (report,) = _documents(inst, triage)
    assert report["reply_recipient_pq"] == pq_recipient
    assert report["reply_recipient"] == x25519_recipient
    assert parse_document(report_bytes(report), expected_type="report") == report
    # The server keeps the X25519 recipient as the address, nothing post-quantum.
    assert source_row(client)["reply_recipient"] == x25519_recipient

    ciphertext = encrypt(reply_document("triage", "A post-quantum reply"),
                         [keys.reply_pq_identity.recipient(), triage.recipient()])

    def write(path: Path) -> None:
        with fs.create_exclusive(path.parent, path.name) as f:
            f.write(ciphertext)

    client.server.app[REPLIES].store_reply(reply_recipient=x25519_recipient, desk="triage",
                                           write=write)
    assert (await login(client, codename)).status == 303
    assert "A post-quantum reply" in await (await client.get("/en/inbox")).text()

    for p in inst.config.store_dir.iterdir():
        fs.safe_unlink(p.parent, p.name)
    csrf = await page_csrf(client)
    resp = await client.post("/en/followup", data=form([("csrf", csrf), ("message", "more")]))
    assert resp.status == 200
    (followup,) = _documents(inst, triage)
    assert followup["schema"] == "amana.followup"
    assert followup["reply_recipient_pq"] == pq_recipient
    assert parse_document(report_bytes(followup), expected_type="followup") == followup


async def test_classic_keyring_documents_carry_no_pq_recipient(
        install: Install, client: Any) -> None:
    await submit_report(client)
    (report,) = _documents(install, install.identities["triage"])
    assert "reply_recipient_pq" not in report


def report_bytes(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")
