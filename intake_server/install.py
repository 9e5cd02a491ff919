"""What `intake-server init` and `intake-server demo` create on disk.

init: a commented config file, the data layout and the server's Ed25519 signing
key (for export bundles). It writes no desk key: desks generate theirs on their
own air-gapped machines and the operator installs the coalition keyring.

demo: init plus two demo desks whose age identities are written UNPROTECTED to
DIR/desks/<desk>/identity.txt so that `age -d -i` opens their reports. That is
only acceptable for a demonstration on one machine; the files say so loudly.
"""

from __future__ import annotations

from pathlib import Path

from keys.age import X25519Identity
from keys.keyring import Desk, Keyring
from keys.signing import SigningKey

from . import _fs
from .config import CONFIG_TEMPLATE, Config

__all__ = ["CONFIG_NAME", "DEMO_DESKS", "init_install", "init_demo"]

CONFIG_NAME = "intake-server.toml"
SIGNING_KEY_NAME = "server-signing.key"
VERIFY_KEY_NAME = "server-verify.key"

DEMO_DESKS: tuple[tuple[str, dict[str, str]], ...] = (
    ("triage", {"en": "Coalition triage desk (demo)",
                "ar": "مكتب الفرز في التحالف (تجريبي)",
                "fr": "Bureau de tri de la coalition (démo)"}),
    ("forensics", {"en": "Forensic lab desk (demo)",
                   "ar": "مكتب المختبر الجنائي الرقمي (تجريبي)",
                   "fr": "Bureau du laboratoire forensique (démo)"}),
)

DEMO_WARNING = """\
# DEMO ONLY - DO NOT USE FOR REAL REPORTS.
# This age identity is stored UNENCRYPTED on the same machine as the server, so
# anyone who can read this file can read every report sent to this demo desk.
# Real desks generate their identity on an air-gapped machine (intake-keys).
"""


def init_install(directory: Path, *, port: int = 8080, default_desk: str = "",
                 staff_port: int | None = None) -> Path:
    """Create DIR/intake-server.toml, DIR/data/ and the server signing key.

    Returns the config path.
    """
    directory = directory.resolve()
    _fs.safe_mkdir(directory)
    config_path = directory / CONFIG_NAME
    _fs.safe_write_text_atomic(
        config_path,
        CONFIG_TEMPLATE.format(port=port, default_desk=default_desk,
                               staff_port=staff_port or port + 1),
        exclusive=True)
    config = Config.load(config_path)
    for d in (config.data_dir, config.incoming_dir, config.store_dir):
        _fs.safe_mkdir(d)
    key = SigningKey.generate()
    _fs.safe_write_text_atomic(
        directory / SIGNING_KEY_NAME,
        "# Amana intake server Ed25519 signing key (signs export bundles). Keep secret.\n"
        f"{key.to_text()}\n", exclusive=True)
    _fs.safe_write_text_atomic(
        directory / VERIFY_KEY_NAME,
        "# Amana intake server Ed25519 verify key: give this to the desks.\n"
        f"{key.verify_key}\n", mode=0o644, exclusive=True)
    return config_path


def init_demo(directory: Path, *, port: int) -> Path:
    """A complete demo install in DIR, created only if absent. Returns the config path."""
    directory = directory.resolve()
    config_path = directory / CONFIG_NAME
    if config_path.exists():
        return config_path
    init_install(directory, port=port, default_desk=DEMO_DESKS[0][0])
    desks_dir = directory / "desks"
    _fs.safe_mkdir(desks_dir)
    desks = []
    for desk_id, names in DEMO_DESKS:
        identity = X25519Identity.generate()
        signing = SigningKey.generate()
        recipient = str(identity.recipient())
        desk_dir = _fs.safe_join(desks_dir, desk_id)
        _fs.safe_mkdir(desk_dir)
        _fs.safe_write_text_atomic(
            desk_dir / "identity.txt",
            f"{DEMO_WARNING}# public key: {recipient}\n{identity}\n", exclusive=True)
        _fs.safe_write_text_atomic(
            desk_dir / "signing.key", f"{DEMO_WARNING}{signing.to_text()}\n", exclusive=True)
        desks.append(Desk.create(desk_id, names, recipient, str(signing.verify_key)))
    _fs.safe_write_text_atomic(directory / "keyring.json",
                               Keyring(desks).to_json().decode("utf-8"), mode=0o644,
                               exclusive=True)
    return config_path
