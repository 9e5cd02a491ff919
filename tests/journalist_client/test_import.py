"""Import of desk-export bundles: signature first, strict documents, quarantine, ack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from journalist_client.importer import ImportRefused, import_bundle
from journalist_client.vault import Vault, unlock
from keys.age import X25519Identity, encrypt
from keys.bundle import open_bundle
from keys.signing import SigningKey

from .conftest import PASSPHRASE, Server, attachment_meta, report_doc


def _ids(v: Vault, table: str = "items") -> set[str]:
    col = "id" if table == "items" else "item_id"
    return {r[0] for r in v.conn.execute(f"SELECT {col} FROM {table}")}  # noqa: S608


def test_import_stores_ciphertext_and_writes_a_signed_ack(desk_vault: Vault, server: Server,
                                                         vault_dir: Path) -> None:
    data = b"\x89PNG fake screenshot bytes"
    doc = report_doc()
    doc["attachments"] = [attachment_meta(data)]
    it = server.item(doc, [data])
    result = import_bundle(desk_vault, server.bundle([it]), progress=False)
    assert result.imported == [it.id]
    assert result.quarantined == []
    # The ciphertext is kept as received; the vault was saved before the ack was written.
    assert (vault_dir / "files" / f"{it.id}.json.age").read_bytes().startswith(b"age-encryption")
    assert (vault_dir / "files" / f"{it.id}.a1.age").exists()
    desk_vault.close()
    assert it.id in _ids(unlock(vault_dir, PASSPHRASE))
    ack = open_bundle(result.ack_path, {"triage": desk_vault.keys.signing_key.verify_key},
                      kind="ack")
    assert json.loads(ack.read("ack.json")) == {
        "format": "amana-ack", "version": 1, "desk": "triage", "ids": [it.id]}


def test_importing_twice_changes_nothing(desk_vault: Vault, server: Server,
                                         vault_dir: Path) -> None:
    it = server.item(report_doc())
    bundle = server.bundle([it])
    import_bundle(desk_vault, bundle, progress=False)
    before = (vault_dir / "triage.vault").read_bytes()
    again = import_bundle(desk_vault, bundle, progress=False)
    assert again.repeated_bundle
    assert again.imported == []
    assert (vault_dir / "triage.vault").read_bytes() == before
    # The same item in a new bundle (a re-sent export) is acked but not duplicated.
    third = import_bundle(desk_vault, server.bundle([it]), progress=False)
    assert third.already == [it.id]
    assert third.imported == []
    assert desk_vault.conn.execute("SELECT count(*) FROM items").fetchone()[0] == 1


@pytest.mark.parametrize("case", ["other-key", "wrong-kind", "truncated", "flipped"])
def test_bad_bundles_are_refused_whole(desk_vault: Vault, server: Server, case: str) -> None:
    it = server.item(report_doc())
    if case == "other-key":
        path = server.bundle([it], key=SigningKey.generate())
    elif case == "wrong-kind":
        path = server.bundle([it], kind="ack")
    else:
        path = server.bundle([it])
        data = bytearray(path.read_bytes())
        if case == "truncated":
            data = data[:-40]
        else:
            data[40] ^= 1
        path.write_bytes(bytes(data))
    with pytest.raises(ImportRefused, match="Nothing was imported"):
        import_bundle(desk_vault, path, progress=False)
    assert _ids(desk_vault) == set()
    assert list((desk_vault.path / "acks").iterdir()) == []


def test_bundle_for_another_desk_is_refused(desk_vault: Vault, server: Server) -> None:
    with pytest.raises(ImportRefused, match="for desk 'lawyers'"):
        import_bundle(desk_vault, server.bundle([server.item(report_doc())], desk="lawyers"),
                      progress=False)


def test_index_must_list_exactly_the_files(desk_vault: Vault, server: Server) -> None:
    it = server.item(report_doc())
    index = {"format": "amana-desk-export", "version": 1, "desk": "triage", "cursor": "1",
             "items": []}
    with pytest.raises(ImportRefused, match="disagree"):
        import_bundle(desk_vault, server.bundle([it], index=index), progress=False)


def _flip_mac(ct: bytes) -> bytes:
    head, _, rest = ct.partition(b"\n---")
    mac_line, nl, payload = rest.partition(b"\n")
    mac = bytearray(mac_line)
    mac[-2] = ord("A") if mac[-2] != ord("A") else ord("B")
    return head + b"\n---" + bytes(mac) + nl + payload


def _age_cases() -> dict[str, tuple[object, str]]:
    other = X25519Identity.generate().recipient()
    return {
        "not-age": (lambda ct: b"this is not an age file\n" + ct, "not a valid age file"),
        "no-match": ([other], "not encrypted to this desk"),
        "hmac": (_flip_mac, "header was altered"),
        "payload": (lambda ct: ct[:-5], "damaged or truncated"),
        "payload-flip": (lambda ct: ct[:-3] + bytes([ct[-3] ^ 1]) + ct[-2:],
                         "damaged or truncated"),
    }


@pytest.mark.parametrize("layer", list(_age_cases()))
@pytest.mark.parametrize("which", ["document", "attachment"])
def test_age_failures_at_each_layer_are_quarantined(desk_vault: Vault, server: Server,
                                                    layer: str, which: str) -> None:
    how, message = _age_cases()[layer]
    data = b"attachment bytes " * 100
    doc = report_doc()
    doc["attachments"] = [attachment_meta(data)]
    bad = server.item(doc, [data])
    good = server.item(report_doc())
    index = 0 if which == "document" else 1
    if isinstance(how, list):
        if which == "attachment" and layer == "no-match":
            bad.mangle[1] = lambda ct: encrypt(data, how)
        else:
            bad.recipients = how
    else:
        bad.mangle[index] = how
    if which == "attachment" and layer.startswith("payload"):
        # The attachment payload is only read on export; import checks its header.
        result = import_bundle(desk_vault, server.bundle([bad, good]), progress=False)
        assert set(result.imported) == {bad.id, good.id}
        return
    result = import_bundle(desk_vault, server.bundle([bad, good]), progress=False)
    assert result.imported == [good.id]
    [(qid, reason)] = result.quarantined
    assert qid == bad.id
    assert message in reason
    assert which in reason
    # Nothing lost: the ciphertext is kept, and the item is acked as held.
    kept = list((desk_vault.path / "quarantine").iterdir())
    assert len(kept) == 2
    assert not list((desk_vault.path / "files").glob(f"{bad.id}*"))
    ack = open_bundle(result.ack_path, {"triage": desk_vault.keys.signing_key.verify_key})
    assert set(json.loads(ack.read("ack.json"))["ids"]) == {bad.id, good.id}


def test_attachment_count_must_match(desk_vault: Vault, server: Server) -> None:
    doc = report_doc()
    doc["attachments"] = [attachment_meta(b"a"), attachment_meta(b"b")]
    it = server.item(doc, [b"a"])
    result = import_bundle(desk_vault, server.bundle([it]), progress=False)
    assert "lists 2 attachment(s) but the bundle carries 1" in result.quarantined[0][1]


def test_no_server_key_means_no_import(desk_vault: Vault, server: Server) -> None:
    desk_vault.conn.execute("DELETE FROM meta WHERE key = 'server_key'")
    with pytest.raises(ImportRefused, match="trust-server"):
        import_bundle(desk_vault, server.bundle([server.item(report_doc())]), progress=False)


def test_an_existing_ack_path_is_refused_before_any_work(desk_vault: Vault, server: Server,
                                                         tmp_path: Path) -> None:
    taken = tmp_path / "ack.bundle"
    taken.write_bytes(b"mine")
    with pytest.raises(ImportRefused, match="already exists"):
        import_bundle(desk_vault, server.bundle([server.item(report_doc())]), ack_out=taken,
                      progress=False)
    assert _ids(desk_vault) == set()
    assert taken.read_bytes() == b"mine"


def test_quarantined_items_can_be_retried(desk_vault: Vault, server: Server) -> None:
    from journalist_client.importer import retry_quarantined

    data = b"evidence"
    doc = report_doc()
    doc["attachments"] = [attachment_meta(data)]
    it = server.item(doc, [data])
    it.mangle[0] = lambda ct: b"broken" + ct
    bad = server.item(b"\xff")
    result = import_bundle(desk_vault, server.bundle([it, bad]), progress=False)
    assert len(result.quarantined) == 2
    # Repair the ciphertext in quarantine (as a fixed client or key would "repair" it).
    [doc_file] = [p for p in (desk_vault.path / "quarantine").iterdir()
                  if p.name.endswith(f"{it.id}.json.age")]
    doc_file.write_bytes(doc_file.read_bytes().removeprefix(b"broken"))
    done, still = retry_quarantined(desk_vault)
    assert done == [it.id]
    assert [i for i, _ in still] == [bad.id]
    assert (desk_vault.path / "files" / f"{it.id}.a1.age").exists()
    assert _ids(desk_vault, "quarantine") == {bad.id}
    assert it.id in _ids(desk_vault)


def test_an_oversized_index_is_refused_cleanly(desk_vault: Vault, server: Server) -> None:
    index = {"format": "amana-desk-export", "version": 1, "desk": "triage",
             "cursor": "x" * (2 * 1024 * 1024), "items": []}
    with pytest.raises(ImportRefused, match="Nothing was imported"):
        import_bundle(desk_vault, server.bundle([], index=index), progress=False)
    assert desk_vault.conn.execute("SELECT count(*) FROM bundles").fetchone()[0] == 0


def test_a_lost_ack_is_written_again(desk_vault: Vault, server: Server) -> None:
    it = server.item(report_doc())
    bundle = server.bundle([it])
    first = import_bundle(desk_vault, bundle, progress=False)
    assert first.ack_path is not None
    first.ack_path.unlink()  # as if the machine died between the save and the ack
    again = import_bundle(desk_vault, bundle, progress=False)
    assert again.repeated_bundle
    ack = open_bundle(again.ack_path, {"triage": desk_vault.keys.signing_key.verify_key})
    assert json.loads(ack.read("ack.json"))["ids"] == [it.id]


def test_an_interrupted_import_can_be_run_again(desk_vault: Vault, server: Server,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from journalist_client import importer

    bad = server.item(b"not json")
    good = server.item(report_doc())
    bundle = server.bundle([bad, good])
    real = importer._import_item
    calls = []

    def dies_on_second(vault: Vault, b: object, it: object) -> None:
        calls.append(it)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(vault, b, it)  # type: ignore[arg-type]

    monkeypatch.setattr(importer, "_import_item", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        import_bundle(desk_vault, bundle, progress=False)
    assert _ids(desk_vault, "quarantine") == set()  # rolled back
    monkeypatch.setattr(importer, "_import_item", real)
    result = import_bundle(desk_vault, bundle, progress=False)
    assert result.imported == [good.id]
    assert [q for q, _ in result.quarantined] == [bad.id]
