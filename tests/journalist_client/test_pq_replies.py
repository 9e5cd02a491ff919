"""A post-quantum desk's replies (docs/adr/0008-post-quantum-desks.md).

The desk encrypts to the source's post-quantum reply recipient (``reply_recipient_pq``,
the newest of the thread) and to itself, never to the X25519 ``reply_recipient``; with
no post-quantum recipient in the thread it refuses and queues nothing. The documents'
two reply recipients are checked for their kind at import.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from journalist_client import replies
from journalist_client.importer import import_bundle
from journalist_client.replies import OutboxError
from journalist_client.schema import DocumentError, parse_document
from journalist_client.vault import Vault, create_vault, unlock
from keys.age import HybridIdentity, NoMatchError, X25519Identity, decrypt
from keys.identity import generate_desk, load_desk
from keys.keyring import Keyring

from .conftest import FAST_SCRYPT, PASSPHRASE, Server, report_doc


@pytest.fixture
def pq_vault(tmp_path: Path, fast_scrypt: None) -> tuple[Vault, Server]:
    names = {"en": "Triage", "ar": "الفرز", "fr": "Tri"}
    triage = generate_desk("triage", names, tmp_path / "triage-keys", PASSPHRASE, pq=True,
                           work_factor=FAST_SCRYPT)
    lab = generate_desk("lab", {"en": "Lab", "ar": "مختبر", "fr": "Labo"},
                        tmp_path / "lab-keys", PASSPHRASE, pq=True, work_factor=FAST_SCRYPT)
    Keyring([triage, lab]).save(tmp_path / "keyring.json")
    server = Server(tmp_path, triage.recipient)
    create_vault(tmp_path / "vault", PASSPHRASE, import_keys=tmp_path / "triage-keys",
                 keyring_path=tmp_path / "keyring.json", server_key=str(server.key.verify_key),
                 user="rania").close()
    return unlock(tmp_path / "vault", PASSPHRASE), server


def _outbox_file(vault: Vault, reply_id: str) -> bytes:
    return (vault.dir("outbox") / f"{reply_id}.reply.age").read_bytes()


def test_pq_desk_replies_to_the_newest_pq_reply_recipient(
        pq_vault: tuple[Vault, Server], tmp_path: Path) -> None:
    vault, server = pq_vault
    classic = X25519Identity.generate()
    first, newer = HybridIdentity.generate(), HybridIdentity.generate()
    report = report_doc()
    report.update(reply_recipient=str(classic.recipient()),
                  reply_recipient_pq=str(first.recipient()))
    followup = {k: v for k, v in report.items() if k != "answers"}
    followup.update(schema="amana.followup", message="more", submission_id="ab" * 16,
                    reply_recipient_pq=str(newer.recipient()))
    item = server.item(report)
    import_bundle(vault, server.bundle([item, server.item(followup, type="followup")]),
                  progress=False)

    reply_id = replies.add_reply(vault, item.id, "Which phone model is it?")
    ciphertext = _outbox_file(vault, reply_id)
    header = ciphertext.split(b"\n---", 1)[0]
    assert header.count(b"-> mlkem768x25519 ") == 2  # the source and the desk
    assert b"-> X25519 " not in header
    assert json.loads(decrypt(ciphertext, [newer]))["body"] == "Which phone model is it?"
    desk = load_desk(tmp_path / "triage-keys", PASSPHRASE)
    assert json.loads(decrypt(ciphertext, [desk.identity]))["desk"] == "triage"
    with pytest.raises(NoMatchError):
        decrypt(ciphertext, [classic, first])
    # The outbox still addresses the source by its X25519 reply recipient (the server's).
    (to,) = vault.conn.execute("SELECT to_recipient FROM outbox WHERE id = ?",
                               (reply_id,)).fetchone()
    assert to == str(classic.recipient())


def test_pq_desk_refuses_a_thread_without_pq_reply_recipient(
        pq_vault: tuple[Vault, Server]) -> None:
    vault, server = pq_vault
    item = server.item(report_doc())  # from a server whose keyring was classic
    import_bundle(vault, server.bundle([item]), progress=False)
    with pytest.raises(OutboxError, match="no post-quantum reply key"):
        replies.add_reply(vault, item.id, "hello")
    assert list(vault.dir("outbox").iterdir()) == []
    assert vault.conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0


@pytest.mark.parametrize(("field", "value", "message"), [
    ("reply_recipient", lambda: str(HybridIdentity.generate().recipient()),
     "reply_recipient must be an X25519 recipient"),
    ("reply_recipient_pq", lambda: str(X25519Identity.generate().recipient()),
     "reply_recipient_pq must be a post-quantum recipient"),
    ("reply_recipient_pq", lambda: "age1pq1" + "q" * 50, "reply_recipient_pq is not an age"),
])
def test_reply_recipients_are_checked_for_their_kind(field: str, value, message: str) -> None:
    doc = report_doc()
    doc[field] = value()
    with pytest.raises(DocumentError, match=message):
        parse_document(json.dumps(doc).encode(), expected_type="report")
