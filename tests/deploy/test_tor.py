"""deploy/tor/torrc, checked by the real tor: the configuration is valid and says what
the guide promises, and the onion services it declares come up with the addresses and
client keys keys.onion computes.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keys.onion import (
    generate_client_auth,
    onion_address,
    onion_public_key,
    public_key_from_hs_file,
)
from support.deploy import (
    TOR_DEFAULTS,
    TORRC,
    offline_torrc,
    run_tor_offline,
    service_names,
    warnings_in,
)

SOURCE, STAFF = "amana-source", "amana-staff"
# Any valid v3 address will do for a client key file: tor loads it without looking up
# the service (RFC 8032 test 1 public key).
SOME_ONION = "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid.onion"


def _verify(tor: str, torrc: Path) -> subprocess.CompletedProcess[str]:
    defaults = TOR_DEFAULTS if TOR_DEFAULTS.exists() else Path("/dev/null")
    return subprocess.run(
        [tor, "--verify-config", "--defaults-torrc", str(defaults), "-f", str(torrc)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _options(torrc: str) -> list[tuple[str, str]]:
    """(option, value) per configuration line, comments and blank lines dropped."""
    out = []
    for line in torrc.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            out.append((key, value.strip()))
    return out


def _sections(torrc: str) -> dict[str, list[tuple[str, str]]]:
    """Per-service options, keyed by the HiddenServiceDir's last path component."""
    sections: dict[str, list[tuple[str, str]]] = {"": []}
    current = ""
    for key, value in _options(torrc):
        if key == "HiddenServiceDir":
            current = Path(value).name
            sections[current] = []
        sections[current].append((key, value))
    return sections


def test_tor_verifies_the_torrc_without_warnings(tor: str) -> None:
    # Debian's defaults file is read first, as tor@default.service does. As root,
    # verify-config neither creates nor checks /var/lib/tor/amana-*, so the real paths
    # can be verified here unchanged.
    result = _verify(tor, TORRC)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Configuration was valid" in output
    assert warnings_in(output) == [], output


def test_a_typo_in_the_torrc_fails_verification(tor: str, tmp_path: Path) -> None:
    # Guards against a check that cannot fail: one misspelt option must be refused.
    broken = tmp_path / "torrc"
    text = TORRC.read_text()
    assert "HiddenServicePoWDefensesEnabled 1" in text
    broken.write_text(text.replace("HiddenServicePoWDefensesEnabled 1",
                                   "HiddenServicePoWDefenseEnabled 1"))
    result = _verify(tor, broken)
    assert result.returncode != 0
    assert "HiddenServicePoWDefenseEnabled" in result.stdout + result.stderr


def test_the_torrc_says_what_the_guide_promises() -> None:
    text = TORRC.read_text()
    sections = _sections(text)
    instance = dict(sections[""])
    assert instance["SocksPort"] == "0"
    assert instance["SafeLogging"] == "1"
    assert service_names(text) == [SOURCE, STAFF]

    source = dict(sections[SOURCE])
    assert source["HiddenServiceVersion"] == "3"
    assert source["HiddenServicePort"] == "80 127.0.0.1:8080"
    assert source["HiddenServicePoWDefensesEnabled"] == "1"
    assert int(source["HiddenServicePoWQueueRate"]) > 0
    assert int(source["HiddenServicePoWQueueBurst"]) >= int(source["HiddenServicePoWQueueRate"])
    assert source["HiddenServiceEnableIntroDoSDefense"] == "1"
    assert 0 < int(source["HiddenServiceMaxStreams"]) <= 64
    assert source["HiddenServiceMaxStreamsCloseCircuit"] == "1"

    staff = dict(sections[STAFF])
    assert staff["HiddenServiceVersion"] == "3"
    assert staff["HiddenServicePort"] == "80 127.0.0.1:8081"

    options = _options(text)
    for key, value in options:
        # Every target is loopback; nothing single-hop or non-anonymous.
        if key == "HiddenServicePort":
            assert value.split()[1].startswith("127.0.0.1:"), value
        assert key not in ("HiddenServiceSingleHopMode", "HiddenServiceNonAnonymousMode")
    for key in ("ORPort", "ExitRelay"):
        assert instance[key] == "0"


def _auth_file(out: Path, name: str) -> tuple[Path, str]:
    """A client key pair, made by `intake-keys onion-auth` when it is wired, else by
    keys.onion directly (the command is a thin layer over it)."""
    cli = Path(sys.executable).with_name("intake-keys")
    if cli.exists() and subprocess.run([cli, "onion-auth", "--help"], capture_output=True,
                                       check=False).returncode == 0:
        subprocess.run([cli, "onion-auth", "--name", name, "--onion", SOME_ONION,
                        "--out", str(out)], check=True, capture_output=True)
        return out / f"{name}.auth", "intake-keys onion-auth"
    key = generate_client_auth(name)
    out.mkdir(exist_ok=True)
    (out / f"{name}.auth").write_text(key.auth_line() + "\n")
    (out / f"{name}.auth_private").write_text(key.auth_private_line(SOME_ONION) + "\n")
    return out / f"{name}.auth", "keys.onion"


def test_offline_tor_publishes_both_onions_with_the_derived_addresses(
    tor: str, tor_root: Path, tmp_path: Path
) -> None:
    # The staff onion gets a client key before tor starts, as the guide says to do;
    # the same tor also loads the matching .auth_private as a client would.
    made, by = _auth_file(tmp_path / "made", "transfer-1")
    authorized = tor_root / STAFF / "authorized_clients"
    authorized.mkdir(parents=True, mode=0o700)
    (tor_root / STAFF).chmod(0o700)
    shutil.copy(made, authorized / "transfer-1.auth")
    client_dir = tor_root / "onion_auth"
    client_dir.mkdir(mode=0o700)
    shutil.copy(made.with_suffix(".auth_private"), client_dir / "transfer-1.auth_private")

    torrc = tor_root / "torrc"
    torrc.write_text(offline_torrc(TORRC.read_text(), tor_root)
                     + f"ClientOnionAuthDir {client_dir}\n")
    hostnames = [tor_root / name / "hostname" for name in (SOURCE, STAFF)]
    log = run_tor_offline(tor, torrc, tor_root, hostnames)

    addresses = []
    for name in (SOURCE, STAFF):
        hostname = (tor_root / name / "hostname").read_text().strip()
        key_file = (tor_root / name / "hs_ed25519_public_key").read_bytes()
        assert hostname == onion_address(public_key_from_hs_file(key_file))
        assert onion_public_key(hostname) == key_file[32:]
        addresses.append(hostname)
    assert addresses[0] != addresses[1]

    # tor read both key files (it says so at info level) and had nothing to complain of.
    assert re.search(r"Loaded a client authorization key file transfer-1\.auth\.", log), log
    assert "Loaded a client authorization key file transfer-1.auth_private" in log, log
    assert warnings_in(log) == [], f"key files made by {by}:\n{log}"


def test_a_reload_picks_up_a_new_client_key(tor: str, tor_root: Path) -> None:
    # The guide adds transfer machines with `systemctl reload tor@default` (SIGHUP).
    torrc = tor_root / "torrc"
    torrc.write_text(offline_torrc(TORRC.read_text(), tor_root))
    log_file = tor_root / "tor.log"

    def wait_for_log(text: str) -> None:
        deadline = time.monotonic() + 20
        while text not in log_file.read_text():
            assert time.monotonic() < deadline, f"no {text!r} in tor's log"
            time.sleep(0.1)

    def add_key_and_reload(proc: subprocess.Popen[str]) -> None:
        # The hostname files appear before tor installs its signal handlers; a SIGHUP
        # that early would kill it. Its main loop is running once it logs this.
        wait_for_log("Delaying directory fetches")
        auth = tor_root / STAFF / "authorized_clients" / "late.auth"
        auth.write_text(generate_client_auth("late").auth_line() + "\n")
        auth.chmod(0o600)
        proc.send_signal(signal.SIGHUP)
        wait_for_log("Loaded a client authorization key file late.auth.")
        assert proc.poll() is None

    log = run_tor_offline(tor, torrc, tor_root, [tor_root / STAFF / "hostname"],
                          then=add_key_and_reload)
    assert "Loaded a client authorization key file late.auth." in log
    assert warnings_in(log) == [], log


def test_tor_warns_about_a_malformed_client_key(tor: str, tor_root: Path) -> None:
    # The control for the test above: the same log check does see a bad key file.
    authorized = tor_root / STAFF / "authorized_clients"
    authorized.mkdir(parents=True, mode=0o700)
    (tor_root / STAFF).chmod(0o700)
    good = generate_client_auth("x").auth_line()
    (authorized / "broken.auth").write_text(good[:-1] + "\n")  # one base32 letter short
    torrc = tor_root / "torrc"
    torrc.write_text(offline_torrc(TORRC.read_text(), tor_root))
    log = run_tor_offline(tor, torrc, tor_root, [tor_root / STAFF / "hostname"])
    assert any("Client authorization" in w for w in warnings_in(log)), log


@pytest.mark.parametrize("name", ["amana-source", "amana-staff"])
def test_service_directories_are_under_var_lib_tor(name: str) -> None:
    # Debian's AppArmor profile for tor (system_tor) lets it write only below
    # /var/lib/tor; a HiddenServiceDir elsewhere fails at start on a real install.
    assert f"HiddenServiceDir /var/lib/tor/{name}/" in TORRC.read_text()
