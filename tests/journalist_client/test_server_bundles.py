"""The intake server's own export, fed to the client's importer.

This test (not the client) imports intake_server: it builds a report with the server's
build_report, stores it through the server's streaming Storage, and exports it with the
staff side's build_export, exactly as a desk's fetch would receive it. The client must
import it unchanged, show it, and export the attachment bit for bit.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from journalist_client import attachments, triage
from journalist_client.importer import import_bundle
from journalist_client.vault import Vault
from keys.age import X25519Identity, parse_recipient

intake_server = pytest.importorskip("intake_server")
from intake_server.config import Config  # noqa: E402
from intake_server.report import build_report  # noqa: E402
from intake_server.staff.bundles import build_export  # noqa: E402
from intake_server.staff.store import StaffStore  # noqa: E402
from intake_server.storage import Storage, new_id  # noqa: E402

from .conftest import Desks, Server  # noqa: E402


def test_a_real_server_export_imports(desk_vault: Vault, desks: Desks, server: Server,
                                      tmp_path: Path) -> None:
    config = Config(data_dir=tmp_path / "data", keyring=desks.keyring_path)
    storage = Storage(config)
    storage.open()
    store = StaffStore(storage)
    store.open()
    recipients = [parse_recipient(desk_vault.keys.desk.recipient),
                  parse_recipient(desks.lawyers.desk.recipient)]
    evidence = b"\x89PNG\r\n" + bytes(range(256)) * 300
    reply_recipient = str(X25519Identity.generate().recipient())

    async def submit() -> str:
        txn = storage.begin(recipients)
        f = txn.new_file("attachment")
        f.write(evidence)
        await f.finish()
        meta = {"file_id": f.id, "name": "صورة الرسالة.png", "media_type": "image/png",
                "size": len(evidence), "sha256": f.sha256()}
        sid = new_id()
        doc = build_report(
            submission_id=sid, day=txn.day.isoformat(), lang="ar",
            answers={"category": "spyware", "secondary": ["msg"], "country": "AE",
                     "description": "وصلتني رسالة فيها رابط بعد اعتقال زميلي",
                     "links": "hxxps://bad.example/x", "consent_share": True},
            desks=["triage", "lawyers"], reply_recipient=reply_recipient, attachments=[meta])
        r = txn.new_file("report")
        r.write(json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True).encode())
        await txn.commit(submission_id=sid, desks=["triage", "lawyers"], source_id="0" * 64,
                         reply_recipient=reply_recipient)
        return sid

    sid = asyncio.run(submit())
    path, _, items = build_export(store, "triage", 0, server.key, out=tmp_path / "x.bundle")
    result = import_bundle(desk_vault, path, progress=False)
    assert result.quarantined == []
    assert result.imported == [items[0].id]
    item = triage.get_item(desk_vault, items[0].id)
    assert json.loads(item["doc"])["submission_id"] == sid
    assert triage.run_search(desk_vault, "اعتقال")
    out, size = attachments.export_attachment(desk_vault, item["id"], 1, tmp_path / "e.png")
    assert out.read_bytes() == evidence
