"""What `intake-server init` and `intake-server demo` create on disk.

init: a commented config file, the data layout and the server's Ed25519 signing
key (for export bundles). It writes no desk key: desks generate theirs on their
own air-gapped machines and the operator installs the coalition keyring.

demo: init plus two demo desks, each in DIR/desks/<desk>/ as `intake-keys generate`
writes a desk (identity.age, signing.age, desk.json, so that `journalist-client init
--import-keys` takes it), with its passphrase beside it in passphrase.txt and its age
identity also UNPROTECTED in identity.txt, so that `age -d -i` opens its reports. That is
only acceptable for a demonstration on one machine; the files say so loudly.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from keys import fs
from keys.identity import generate_desk, load_desk
from keys.keyring import Keyring
from keys.signing import SigningKey

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

# The demo desks' passphrases sit beside their keys: a slow scrypt would protect
# nothing and only slow every demo start (real desks use age's default, 18).
DEMO_SCRYPT_WORK_FACTOR = 10

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
    fs.private_dir(directory, parents=True)
    config_path = directory / CONFIG_NAME
    fs.atomic_write_text(
        config_path,
        CONFIG_TEMPLATE.format(port=port, default_desk=default_desk,
                               staff_port=staff_port or port + 1))
    config = Config.load(config_path)
    for d in (config.data_dir, config.incoming_dir, config.store_dir):
        fs.private_dir(d, parents=True)
    key = SigningKey.generate()
    fs.atomic_write_text(
        directory / SIGNING_KEY_NAME,
        "# Amana intake server Ed25519 signing key (signs export bundles). Keep secret.\n"
        f"{key.to_text()}\n")
    fs.atomic_write_text(
        directory / VERIFY_KEY_NAME,
        "# Amana intake server Ed25519 verify key: give this to the desks.\n"
        f"{key.verify_key}\n")
    return config_path


def init_demo(directory: Path, *, port: int) -> Path:
    """A complete demo install in DIR, created only if absent. Returns the config path."""
    directory = directory.resolve()
    config_path = directory / CONFIG_NAME
    if config_path.exists():
        return config_path
    init_install(directory, port=port, default_desk=DEMO_DESKS[0][0])
    desks_dir = directory / "desks"
    fs.private_dir(desks_dir, parents=True)
    desks = []
    for desk_id, names in DEMO_DESKS:
        desk_dir = fs.safe_join(desks_dir, desk_id)
        # A desk as a real one is made (keys encrypted to a passphrase), so the client
        # imports it as documented; the passphrase is random, and kept beside it.
        passphrase = secrets.token_urlsafe(18)
        desks.append(generate_desk(desk_id, names, desk_dir, passphrase,
                                   work_factor=DEMO_SCRYPT_WORK_FACTOR))
        fs.atomic_write_text(desk_dir / "passphrase.txt", f"{passphrase}\n")
        keys = load_desk(desk_dir, passphrase)
        fs.atomic_write_text(
            desk_dir / "identity.txt",
            f"{DEMO_WARNING}# public key: {keys.desk.recipient}\n{keys.identity}\n")
    fs.atomic_write_text(directory / "keyring.json", Keyring(desks).to_json().decode("utf-8"))
    return config_path
