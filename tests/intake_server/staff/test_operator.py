"""The operator's commands: transfer keys, and the USB route (export / import)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from intake_server.__main__ import main
from intake_server.install import init_install
from intake_server.operator import load_signing_key
from intake_server.staff import store as store_module
from intake_server.staff.store import StaffStore
from intake_server.storage import Storage
from keys.bundle import open_bundle
from keys.keyring import Keyring
from keys.signing import SigningKey
from support.files_at_rest import times_finer_than_the_day
from support.staff import DESKS, Site, ack_bundle, make_site, submit


@pytest.fixture
def installed(tmp_path: Path) -> tuple[Site, Path]:
    """A site whose config file was written by `intake-server init`."""
    config_path = init_install(tmp_path / "srv", port=18080)
    site = make_site(tmp_path)
    Keyring.load(site.config.keyring).save(config_path.parent / "keyring.json")
    from intake_server.config import Config

    config = Config.load(config_path)
    site.storage.close()
    storage = Storage(config)
    storage.open()
    site.storage = storage
    site.config = config
    site.server_key = load_signing_key(config_path)
    return site, config_path


async def test_usb_export_then_import_of_acks(
    installed: tuple[Site, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site, config_path = installed
    sid = await submit(site, DESKS, b"report", (b"attachment",))
    out = tmp_path / "usb" / "triage.bundle"
    out.parent.mkdir()
    assert (
        main(["export", "--config", str(config_path), "--desk", "triage", "--out", str(out)]) == 0
    )
    assert "1 item(s) for desk triage" in capsys.readouterr().out
    with open_bundle(out, {"server": site.server_key.verify_key}, kind="desk-export") as b:
        assert [i["id"] for i in json.loads(b.read("index.json"))["items"]] == [sid]
    assert (
        main(["export", "--config", str(config_path), "--desk", "triage", "--out", str(out)]) == 1
    )  # never overwrites: a runtime error, exit status 1
    assert "refusing to overwrite" in capsys.readouterr().err

    for desk, left in (("triage", 2), ("forensics", 0)):
        ack = tmp_path / "usb" / f"ack-{desk}.bundle"
        ack.write_bytes(ack_bundle(site, desk, [sid]))
        assert main(["import", "--config", str(config_path), str(ack)]) == 0
        assert len(list(site.config.store_dir.iterdir())) == left


async def test_the_usb_export_is_dated_to_the_day(
    installed: tuple[Site, Path], tmp_path: Path
) -> None:
    """The bundle on the operator's stick keeps no time finer than the day, like the
    bundles the transfer machine and the client write (a seized stick would otherwise
    say to the nanosecond when the operator exported; found by test_seized_disk.py)."""
    site, config_path = installed
    await submit(site, DESKS, b"report")
    out = tmp_path / "usb" / "triage.bundle"
    out.parent.mkdir()
    assert main(["export", "--config", str(config_path), "--desk", "triage",
                 "--out", str(out)]) == 0
    assert times_finer_than_the_day(out) == []


async def test_usb_export_says_when_more_is_waiting(
    installed: tuple[Site, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    site, config_path = installed
    monkeypatch.setattr(store_module, "EXPORT_MAX_BYTES", 150_000)
    ids = [await submit(site, ("triage",), b"report", (b"x" * 100_000,)) for _ in range(3)]
    seen: list[str] = []
    after = "0"
    for n in range(3):
        out = tmp_path / f"export-{n}.bundle"
        argv = ["export", "--config", str(config_path), "--desk", "triage", "--out", str(out),
                "--after", after]
        assert main(argv) == 0
        said = capsys.readouterr().out
        assert "1 item(s) for desk triage" in said
        assert ("More is waiting" in said) == (n < 2)
        after = said.split("--after ")[1].split()[0].rstrip(".")
        with open_bundle(out, {"server": site.server_key.verify_key}) as b:
            seen += [i["id"] for i in json.loads(b.read("index.json"))["items"]]
    # Each exactly once. Within a day the order is the random ids', not the order of
    # arrival, which the database no longer keeps (schema version 3).
    assert sorted(seen) == sorted(ids)


async def test_import_refuses_what_no_desk_signed(
    installed: tuple[Site, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site, config_path = installed
    sid = await submit(site, ("triage",), b"report")
    forged = tmp_path / "forged.bundle"
    forged.write_bytes(ack_bundle(site, "triage", [sid], key=SigningKey.generate()))
    assert main(["import", "--config", str(config_path), str(forged)]) == 1
    assert "intake-server: error:" in capsys.readouterr().err
    assert len(list(site.config.store_dir.iterdir())) == 1


def test_transfer_keys_are_registered_and_removed(
    installed: tuple[Site, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    site, config_path = installed
    key = str(SigningKey.generate().verify_key)
    base = ["--config", str(config_path), "--desk", "triage", key]
    assert main(["desk", "add-transfer-key", *base]) == 0
    assert main(["desk", "add-transfer-key", *base]) == 0
    assert "already registered" in capsys.readouterr().out
    store = StaffStore(site.storage)
    store.open()
    assert [str(k) for k in store.transfer_keys("triage")] == [key]
    assert main(["desk", "remove-transfer-key", *base]) == 0
    assert store.transfer_keys("triage") == []
    assert (
        main(["desk", "add-transfer-key", "--config", str(config_path), "--desk", "nobody", key])
        == 1
    )
    assert (
        main(
            [
                "desk",
                "add-transfer-key",
                "--config",
                str(config_path),
                "--desk",
                "triage",
                "not-a-key",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "not in the keyring" in err
    assert "not a transfer key" in err


def test_operator_commands_never_clean_up_beside_a_running_server(
    installed: tuple[Site, Path],
) -> None:
    # The fixture's storage is open as the server's. Files of an upload in flight (in
    # incoming/) and files renamed into store/ but not yet committed must survive an
    # operator command run meanwhile; only the server cleans up, at its own start.
    site, config_path = installed
    in_flight = site.config.incoming_dir / ("a" * 32 + ".age")
    about_to_commit = site.config.store_dir / ("b" * 32 + ".age")
    in_flight.write_bytes(b"age ciphertext in flight")
    about_to_commit.write_bytes(b"age ciphertext before its row")
    key = str(SigningKey.generate().verify_key)
    assert (
        main(["desk", "add-transfer-key", "--config", str(config_path), "--desk", "triage", key])
        == 0
    )
    assert in_flight.exists()
    assert about_to_commit.exists()


def test_a_second_server_on_the_same_data_is_refused(installed: tuple[Site, Path]) -> None:
    from intake_server.storage import StorageError

    site, _ = installed
    with pytest.raises(StorageError, match="already serving"):
        Storage(site.config).open()
