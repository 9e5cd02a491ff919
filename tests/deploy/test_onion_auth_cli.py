"""`intake-keys onion-auth`: the thin command over keys.onion, end to end.

Skipped (with the reason) until the command is wired into keys/cli.py.
"""

from __future__ import annotations

import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from keys.onion import onion_public_key, parse_auth_line, parse_auth_private_line

ONION = "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid.onion"
INTAKE_KEYS = Path(sys.executable).with_name("intake-keys")


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(INTAKE_KEYS), *args], capture_output=True, text=True,
                          timeout=60, check=False, cwd=cwd)


@pytest.fixture(scope="module", autouse=True)
def _wired() -> None:
    if not INTAKE_KEYS.exists() or _run("onion-auth", "--help").returncode != 0:
        pytest.skip("onion-auth not wired into intake-keys yet")


def test_help_has_an_example() -> None:
    result = _run("onion-auth", "--help")
    assert "--name" in result.stdout
    assert "--onion" in result.stdout
    assert re.search(r"^\s+intake-keys onion-auth --name ", result.stdout, re.M)


def test_makes_both_halves_and_the_torrc_lines(tmp_path: Path) -> None:
    out = tmp_path / "keys"
    result = _run("onion-auth", "--name", "transfer-1", "--onion", ONION, "--out", str(out))
    assert result.returncode == 0, result.stderr
    auth = (out / "transfer-1.auth").read_text()
    private = (out / "transfer-1.auth_private").read_text()
    assert re.fullmatch(r"descriptor:x25519:[A-Z2-7]{52}\n", auth)
    label = ONION.removesuffix(".onion")
    assert re.fullmatch(rf"{label}:descriptor:x25519:[A-Z2-7]{{52}}\n", private)
    address, _ = parse_auth_private_line(private)
    assert onion_public_key(address) == onion_public_key(ONION)
    assert len(parse_auth_line(auth)) == 32
    for name in ("transfer-1.auth", "transfer-1.auth_private", "transfer-1.torrc"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600
    # The operator is told where each half goes, and the transfer machine's torrc line.
    assert "authorized_clients" in result.stdout
    assert "ClientOnionAuthDir /var/lib/tor/onion_auth" in result.stdout
    # The secret never appears on the terminal.
    assert private.split(":")[-1].strip() not in result.stdout + result.stderr


def test_without_onion_keeps_the_private_key_apart(tmp_path: Path) -> None:
    result = _run("onion-auth", "--name", "t", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.auth", "t.torrc", "t.x25519"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "t", "--onion", "3" + ONION[1:]], "checksum"),
        (["--name", "t", "--onion", "example.com"], "v3 onion"),
        (["--name", "../t"], "client name"),
    ],
)
def test_refusals_are_one_line_and_write_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = _run("onion-auth", *args, "--out", str(tmp_path / "o"))
    assert result.returncode == 1
    assert message in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "o").exists()


def test_an_existing_key_is_not_replaced(tmp_path: Path) -> None:
    assert _run("onion-auth", "--name", "t", "--out", str(tmp_path)).returncode == 0
    before = (tmp_path / "t.auth").read_text()
    result = _run("onion-auth", "--name", "t", "--out", str(tmp_path))
    assert result.returncode == 1
    assert "already exists" in result.stderr
    assert (tmp_path / "t.auth").read_text() == before
