"""Fixtures that play the other side: a server that signs desk-export bundles, and desks.

Bundles are built with the real keys.bundle.write_bundle and keys.age.encrypt, exactly
as the server's export does (docs/transfer-format.md), so the importer is tested on the
real container and can be broken at each layer on purpose.
"""

from __future__ import annotations

import copy
import io
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from journalist_client import vault as vault_mod
from journalist_client.cli import main
from journalist_client.vault import Vault, create_vault, unlock
from keys.age import X25519Identity, encrypt, parse_recipient
from keys.bundle import write_bundle_file
from keys.identity import DeskKeys, generate_desk, load_desk
from keys.keyring import Keyring
from keys.signing import SigningKey

PASSPHRASE = "correct horse battery staple"  # noqa: S105 - test vaults only
FAST_SCRYPT = 10  # the real default (18) costs a second per unlock; the format is the same


def report_doc(**answers: Any) -> dict[str, Any]:
    """A valid report document, as intake_server.report.build_report writes one."""
    doc: dict[str, Any] = {
        "schema": "amana.report",
        "version": 1,
        "submission_id": secrets.token_hex(16),
        "received_day": "2026-11-28",
        "language": "ar",
        "desks": ["triage"],
        "reply_recipient": str(X25519Identity.generate().recipient()),
        "answers": {
            "category": "spyware",
            "secondary_categories": ["msg"],
            "country": "AE",
            "incident_date": "last week",
            "description": "وصلتني رسالة مشبوهة على واتساب فيها رابط",
            "indicators": {"links": "https://example.invalid/x", "senders": "+971500000000",
                           "messages": ""},
            "target": "self",
            "profession": "journalist",
            "platforms": ["ios"],
            "device_details": "iPhone 13",
            "consent": {"share_within_coalition": True, "publish_anonymised": False},
        },
        "attachments": [],
    }
    doc["answers"].update(answers)
    return doc


# The reports the statistics are tested on (test_stats.py, ui_tests/test_stats_page.py):
# (received day, country, how many, consent to anonymised figures). 30 consented, in
# October and November 2026; two did not.
COUNTED_REPORTS = (("2026-10-03", "AE", 6, True), ("2026-10-20", "LB", 5, True),
                   ("2026-11-02", "AE", 9, True), ("2026-11-09", "LB", 8, True),
                   ("2026-11-10", "EG", 2, True), ("2026-11-11", "MA", 2, False))


def counted_reports() -> list[dict[str, Any]]:
    """The report documents of COUNTED_REPORTS, for one import bundle."""
    docs = []
    for day, country, n, consent in COUNTED_REPORTS:
        for _ in range(n):
            d = report_doc(country=country)
            d["received_day"] = day
            d["answers"]["consent"]["publish_anonymised"] = consent
            docs.append(d)
    return docs


def attachment_meta(data: bytes, name: str = "screenshot.png") -> dict[str, Any]:
    import hashlib

    return {"file_id": secrets.token_hex(16), "name": name, "media_type": "image/png",
            "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@dataclass
class Item:
    id: str
    type: str
    doc_bytes: bytes
    attachments: list[bytes]
    # Hooks to break a layer: replace a file's ciphertext after encryption.
    mangle: dict[int, Callable[[bytes], bytes]] = field(default_factory=dict)
    recipients: list[Any] | None = None


class Server:
    """Plays the intake server's export: signs desk-export bundles with its key."""

    def __init__(self, tmp: Path, desk_recipient: str) -> None:
        self.key = SigningKey.generate()
        self.tmp = tmp
        self.recipient = parse_recipient(desk_recipient)
        self.count = 0

    def item(self, doc: dict[str, Any] | bytes, attachments: list[bytes] | None = None, *,
             type: str = "report", item_id: str | None = None) -> Item:  # noqa: A002
        raw = doc if isinstance(doc, bytes) else json.dumps(doc, ensure_ascii=False).encode()
        if item_id is None and isinstance(doc, dict) and isinstance(doc.get("submission_id"), str):
            # As the server files it: under the id written inside the document.
            item_id = doc["submission_id"]
        return Item(item_id or secrets.token_hex(16), type, raw, list(attachments or []))

    def bundle(self, items: list[Item], *, desk: str = "triage", kind: str = "desk-export",
               key: SigningKey | None = None, index: dict[str, Any] | None = None) -> Path:
        self.count += 1
        files: list[tuple[str, Any]] = []
        entries = []
        for it in items:
            names = [f"{it.id}.json.age", *(f"{it.id}.a{n}.age"
                                             for n in range(1, len(it.attachments) + 1))]
            entries.append({"id": it.id, "type": it.type, "day": "2026-11-28", "files": names})
            for i, (name, plain) in enumerate(zip(names, [it.doc_bytes, *it.attachments],
                                                  strict=True)):
                ct = encrypt(plain, it.recipients or [self.recipient])
                if i in it.mangle:
                    ct = it.mangle[i](ct)
                files.append((name, io.BytesIO(ct)))
        idx = index if index is not None else {
            "format": "amana-desk-export", "version": 1, "desk": desk,
            "cursor": str(self.count), "items": entries}
        files.insert(0, ("index.json", io.BytesIO(json.dumps(idx).encode())))
        path = self.tmp / f"export-{self.count}.bundle"
        write_bundle_file(path, kind, "server", files, key or self.key)
        return path


@dataclass
class Desks:
    triage_dir: Path
    lawyers: DeskKeys
    keyring_path: Path


@pytest.fixture
def fast_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vault_mod, "SCRYPT_WORK_FACTOR", FAST_SCRYPT)


@pytest.fixture
def passfile(tmp_path: Path) -> Path:
    p = tmp_path / "pass.txt"
    p.write_text(PASSPHRASE + "\n")
    return p


@pytest.fixture
def desks(tmp_path: Path) -> Desks:
    triage = generate_desk("triage", {"en": "Triage", "ar": "الفرز", "fr": "Tri"},
                           tmp_path / "triage-keys", PASSPHRASE, work_factor=FAST_SCRYPT)
    lawyers = generate_desk("lawyers", {"en": "Lawyers", "ar": "محامون", "fr": "Avocats"},
                            tmp_path / "lawyers-keys", PASSPHRASE, work_factor=FAST_SCRYPT)
    ring = tmp_path / "keyring.json"
    Keyring([triage, lawyers]).save(ring)
    return Desks(tmp_path / "triage-keys", load_desk(tmp_path / "lawyers-keys", PASSPHRASE), ring)


@pytest.fixture
def vault_dir(tmp_path: Path) -> Path:
    return tmp_path / "vault"


@pytest.fixture
def server(tmp_path: Path, desks: Desks) -> Server:
    entry = json.loads((desks.triage_dir / "desk.json").read_text())
    return Server(tmp_path, entry["age_recipient"])


@pytest.fixture
def desk_vault(vault_dir: Path, desks: Desks, server: Server, fast_scrypt: None) -> Vault:
    v = create_vault(vault_dir, PASSPHRASE, import_keys=desks.triage_dir,
                     keyring_path=desks.keyring_path, server_key=str(server.key.verify_key),
                     user="rania")
    v.close()
    return unlock(vault_dir, PASSPHRASE)


@pytest.fixture
def report() -> Callable[..., dict[str, Any]]:
    return lambda **kw: copy.deepcopy(report_doc(**kw))


# --- the CLI over a vault with four items in it (test_cli.py, test_json_output.py) --------

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(vault_dir: Path, passfile: Path, capsys: pytest.CaptureFixture[str],
        desk_vault: Vault) -> Run:
    desk_vault.close()  # each command unlocks (and locks) the vault itself

    def _run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
        if stdin is not None:
            import sys

            old = sys.stdin
            sys.stdin = io.StringIO(stdin)
        try:
            code = main(["--vault", str(vault_dir), "--passphrase-file", str(passfile), *args])
        finally:
            if stdin is not None:
                sys.stdin = old
        out, err = capsys.readouterr()
        return code, out, err
    return _run


HOSTILE = "\x1b]0;owned\x07\x1b[2J<script>alert(1)</script>\u202eexe.pdf\r\x9b1m"


@pytest.fixture
def imported(run: Run, server: Server) -> dict[str, str]:
    data = b"%PDF-1.4 fake evidence\n" * 1000
    a = report_doc(description="رسالة مشبوهة من الإمارات عن برنامج Pegasus",
                   country="AE", category="spyware")
    a["attachments"] = [attachment_meta(data, name="../../.bashrc")]
    b = report_doc(description="Phishing page for my Gmail account", country="LB",
                   category="msg")
    b["desks"] = ["triage", "lawyers"]
    c = report_doc(description=HOSTILE, incident_date=HOSTILE, device_details=HOSTILE)
    c["answers"]["indicators"] = {"links": HOSTILE, "senders": HOSTILE, "messages": HOSTILE}
    c["attachments"] = [attachment_meta(b"x", name=HOSTILE)]
    followup = report_doc()
    del followup["answers"]
    followup.update(schema="amana.followup", message="more: they called me again",
                    reply_recipient=a["reply_recipient"])
    items = [server.item(a, [data]), server.item(b), server.item(c, [b"x"]),
             server.item(followup, type="followup")]
    code, out, err = run("import", str(server.bundle(items)))
    assert code == 0, err
    assert "4 imported, 0 already here, 0 quarantined" in out
    return {"a": items[0].id, "b": items[1].id, "c": items[2].id, "f": items[3].id,
            "data": data.hex()}
