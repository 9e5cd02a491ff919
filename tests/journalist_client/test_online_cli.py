"""journalist-transfer's own command line: init needs no vault, errors exit 1, usage 2."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from journalist_client.online.cli import main

from .conftest import Desks, Server


def test_init_needs_no_vault_and_push_names_the_missing_step(
        tmp_path: Path, desks: Desks, server: Server,
        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["init", "--dir", str(tmp_path / "t"), "--desk", "triage",
                 "--server-key", str(server.key.verify_key),
                 "--keyring", str(desks.keyring_path)])
    assert code == 0, capsys.readouterr().err
    assert "Register its public key" in capsys.readouterr().out
    code = main(["push", "--dir", str(tmp_path / "nowhere"), "--server", "http://127.0.0.1:9",
                 str(tmp_path / "x.bundle")])
    assert code == 1
    assert "journalist-transfer init" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["fetch", "--dir", "d"])
    assert exc.value.code == 2
    assert "--server" in capsys.readouterr().err


def test_init_makes_the_directory_0700_whatever_the_umask(
        tmp_path: Path, desks: Desks, server: Server) -> None:
    # mkdir(mode=0o700) under umask 0o277 would make it 0500: the credential could not
    # even be written into it. keys.fs sets the mode after creating.
    old = os.umask(0o277)
    try:
        code = main(["init", "--dir", str(tmp_path / "t" / "desk"), "--desk", "triage",
                     "--server-key", str(server.key.verify_key),
                     "--keyring", str(desks.keyring_path)])
    finally:
        os.umask(old)
    assert code == 0
    assert stat.S_IMODE((tmp_path / "t" / "desk").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "t" / "desk" / "transfer.key").stat().st_mode) == 0o600
