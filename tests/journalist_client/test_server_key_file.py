"""The desk and the transfer machine take server-verify.key as `intake-server init`
writes it (issue 17, item 2): the path of the file, or its content with the comment
line, in `trust-server`, `init --server-key` and `journalist-transfer init`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from intake_server.install import SIGNING_KEY_NAME, VERIFY_KEY_NAME, init_install
from journalist_client.cli import main as client_main
from journalist_client.online.cli import main as transfer_main
from journalist_client.vault import unlock
from keys.signing import SigningKey

from .conftest import PASSPHRASE, Desks, Run, Server, report_doc


@pytest.fixture
def install(tmp_path: Path) -> Path:
    directory = tmp_path / "server"
    init_install(directory, port=8080)
    return directory


def _signing_key(install: Path) -> SigningKey:
    return SigningKey.from_text((install / SIGNING_KEY_NAME).read_text().splitlines()[-1])


@pytest.mark.parametrize("form", ["path", "content"])
def test_trust_server_takes_the_file_init_wrote(run: Run, server: Server, install: Path,
                                                form: str) -> None:
    file = install / VERIFY_KEY_NAME
    given = str(file) if form == "path" else file.read_text()
    code, out, err = run("trust-server", given)
    assert code == 0, err
    # The trusted key really is the server's: a bundle it signs imports.
    server.key = _signing_key(install)
    code, _, err = run("import", str(server.bundle([server.item(report_doc())])))
    assert code == 0, err


def test_trust_server_refuses_the_signing_key(run: Run, install: Path) -> None:
    code, _, err = run("trust-server", str(install / SIGNING_KEY_NAME))
    assert code == 1
    assert "server-signing.key" in err
    assert len(err.strip().splitlines()) == 1


def test_init_takes_the_file_path(tmp_path: Path, passfile: Path, fast_scrypt: None,
                                  desks: Desks, install: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    vault_dir = tmp_path / "new"
    code = client_main(["--vault", str(vault_dir), "--passphrase-file", str(passfile),
                        "init", "--desk", "smex",
                        "--server-key", str(install / VERIFY_KEY_NAME)])
    assert code == 0, capsys.readouterr().err
    v = unlock(vault_dir, PASSPHRASE)
    try:
        assert v.server_key() == _signing_key(install).verify_key
    finally:
        v.close()


@pytest.mark.parametrize("form", ["path", "content"])
def test_transfer_init_takes_the_file_init_wrote(tmp_path: Path, desks: Desks,
                                                 install: Path, form: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    file = install / VERIFY_KEY_NAME
    given = str(file) if form == "path" else file.read_text()
    code = transfer_main(["init", "--dir", str(tmp_path / "t"), "--desk", "triage",
                          "--server-key", given, "--keyring", str(desks.keyring_path)])
    assert code == 0, capsys.readouterr().err
    settings = json.loads((tmp_path / "t" / "transfer.json").read_text())
    assert settings["server_key"] == str(_signing_key(install).verify_key)


def test_transfer_init_refuses_a_non_key_in_one_line(tmp_path: Path, desks: Desks,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code = transfer_main(["init", "--dir", str(tmp_path / "t"), "--desk", "triage",
                          "--server-key", str(tmp_path / "nothing-here.key"),
                          "--keyring", str(desks.keyring_path)])
    err = capsys.readouterr().err
    assert code == 1
    assert "neither an ed25519: key nor a readable file" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "t").exists()
