"""deploy/README.md agrees with the files it installs and the commands it tells people
to type: a guide that drifts from the torrc or the unit fails here, not on a server.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from support.deploy import DEPLOY, ROOT, TORRC, UNIT, service_names

GUIDE = DEPLOY / "README.md"
BIN = Path(sys.executable).parent
# Wired into keys/cli.py separately; test_onion_auth_cli.py covers it (or says why not).
PENDING = {"intake-keys onion-auth"}
PROGRAMS = ("intake-server", "intake-keys", "journalist-client", "journalist-transfer")


def _guide() -> str:
    return GUIDE.read_text(encoding="utf-8")


def _code(text: str) -> str:
    """Only what is inside ``` blocks and `inline code`."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    return "\n".join(blocks + inline)


def test_linked_files_exist() -> None:
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", _guide()):
        if "://" not in target:
            assert (GUIDE.parent / target).exists(), target


def test_the_guide_installs_what_the_torrc_and_unit_expect() -> None:
    guide = _guide()
    for name in service_names(TORRC.read_text()):
        assert f"/var/lib/tor/{name}/" in guide
    unit = UNIT.read_text()
    exec_start = re.search(r"^ExecStart=(\S+) serve --config (\S+)$", unit, re.M)
    assert exec_start
    venv_bin, config = exec_start.groups()
    # The unit runs the release `current` points at; the guide builds each release's
    # venv under releases/ and switches the link with one rename.
    assert venv_bin == "/opt/amana/current/bin/intake-server"
    assert "python3 -m venv /opt/amana/releases/$VERSION" in guide
    assert "mv -T /opt/amana/current.new /opt/amana/current" in guide
    assert config == "/var/lib/amana/intake-server.toml"
    assert "intake-server init --dir /var/lib/amana" in guide
    assert re.search(r"^User=amana$", unit, re.M)
    assert "adduser --system --group --home /var/lib/amana --no-create-home amana" in guide
    assert "install -m 0644 /opt/amana/src/$VERSION/deploy/tor/torrc /etc/tor/torrc" in guide
    assert "/etc/systemd/system/" in guide
    for port in re.findall(r"HiddenServicePort 80 127\.0\.0\.1:(\d+)", TORRC.read_text()):
        assert f"127.0.0.1:{port}" in guide
        # The note on changing a port names each HiddenServicePort line (item 6).
        assert f"`80 127.0.0.1:{port}`" in guide
    assert "staff_port" in guide


@pytest.mark.parametrize("program", PROGRAMS)
def test_every_command_in_the_guide_exists(program: str) -> None:
    exe = BIN / program
    commands = sorted(set(re.findall(rf"\b{program} ([a-z][a-z-]+)", _code(_guide()))))
    # `for command in intake-server intake-keys` lists programs, not a subcommand.
    commands = [c for c in commands if f"{program} {c}" not in PENDING and c not in PROGRAMS]
    if not commands:
        pytest.skip(f"the guide uses no {program} command")
    probe = subprocess.run([str(exe), "--help"], capture_output=True, check=False,
                           cwd=ROOT, timeout=60)
    if program.startswith("journalist-") and probe.returncode != 0:
        pytest.skip(f"{program} is not installed in this venv yet")
    for command in commands:
        result = subprocess.run([str(exe), command, "--help"], capture_output=True,
                                text=True, check=False, cwd=ROOT, timeout=60)
        assert result.returncode == 0, f"`{program} {command}` in the guide: {result.stderr}"
