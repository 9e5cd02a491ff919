"""intake-server: what init and demo create, every command's help, and the exit statuses."""

from __future__ import annotations

import subprocess
import sys

import pytest

from intake_server.__main__ import build_parser, main
from intake_server.config import Config
from keys.age import parse_identity_file
from keys.keyring import Keyring
from keys.signing import SigningKey
from support.intake import cli_commands

COMMANDS = [name for name, _ in cli_commands(build_parser())]


def test_the_command_list_is_read_from_the_parser() -> None:
    assert {"init", "serve", "demo", "export", "import", "desk add-transfer-key",
            "desk remove-transfer-key", "desk drop-lost-key-items"} == set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_an_example(command) -> None:
    out = subprocess.run([sys.executable, "-m", "intake_server", *command.split(), "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "example:" in out
    assert f"\n  intake-server {command} " in out


def test_every_command_runs_a_function() -> None:
    for name, parser in cli_commands(build_parser()):
        assert callable(parser.get_default("func")), name


@pytest.mark.parametrize("argv", [[], ["init"], ["serve", "--config"], ["desk"],
                                  ["export", "--config", "x.toml", "--desk", "triage"],
                                  ["nonsense"]])
def test_a_usage_error_exits_2(argv, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage: intake-server" in capsys.readouterr().err


def test_init_creates_layout_config_and_signing_key(tmp_path, capsys) -> None:
    target = tmp_path / "inst"
    assert main(["init", "--dir", str(target), "--port", "9123"]) == 0
    cfg = Config.load(target / "intake-server.toml")
    assert cfg.port == 9123
    assert cfg.data_dir == target / "data"
    for d in ("data", "data/incoming", "data/store"):
        assert (target / d).stat().st_mode & 0o777 == 0o700
    key_text = (target / "server-signing.key").read_text()
    assert (target / "server-signing.key").stat().st_mode & 0o777 == 0o600
    key = SigningKey.from_text(key_text.splitlines()[-1])
    assert str(key.verify_key) in (target / "server-verify.key").read_text()
    assert "serve --config" in capsys.readouterr().out
    # Never overwrites an installation: a runtime error, exit status 1.
    assert main(["init", "--dir", str(target)]) == 1


def test_demo_install(tmp_path) -> None:
    from intake_server.install import init_demo

    config_path = init_demo(tmp_path / "demo", port=8181)
    keyring = Keyring.load(tmp_path / "demo" / "keyring.json")
    assert [d.id for d in keyring.desks] == ["triage", "forensics"]
    for desk in keyring.desks:
        text = (tmp_path / "demo" / "desks" / desk.id / "identity.txt").read_text()
        assert "DEMO ONLY" in text
        identities = parse_identity_file(text)
        assert str(identities[0].recipient()) == desk.recipient
    cfg = Config.load(config_path)
    assert cfg.default_desk == "triage"
    assert cfg.port == 8181
    # Idempotent: a second run keeps the same keys.
    before = (tmp_path / "demo" / "keyring.json").read_bytes()
    init_demo(tmp_path / "demo", port=8181)
    assert (tmp_path / "demo" / "keyring.json").read_bytes() == before


def test_serve_without_keyring_fails_clearly(tmp_path, capsys) -> None:
    main(["init", "--dir", str(tmp_path)])
    assert main(["serve", "--config", str(tmp_path / "intake-server.toml")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("intake-server: error: ")
    assert "keyring.json" in err
