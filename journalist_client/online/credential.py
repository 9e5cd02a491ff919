"""The transfer directory: the desk's transfer credential and what bundles are checked against.

``transfer.json`` holds the desk id, the server's verify key and the coalition keyring;
``transfer.key`` the Ed25519 credential (docs/transfer-format.md). Both are written
once by :func:`init_transfer` and parsed strictly by :func:`load_settings`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from keys import fs, ids
from keys.bundle import VerifiedBundle
from keys.keyring import MAX_KEYRING_BYTES, Keyring, KeyringError, adopt_keyring
from keys.signing import SigningKey, VerifyKey, read_verify_key

__all__ = ["TransferError", "TransferSettings", "adopt_server_keyring", "init_transfer",
           "load_settings"]

CREDENTIAL: Final = "transfer.key"
SETTINGS: Final = "transfer.json"
_MAX_SETTINGS: Final = 4 * 1024 * 1024


class TransferError(Exception):
    """A fetch or push failed; the message says what to do."""


@dataclass(frozen=True)
class TransferSettings:
    directory: Path
    desk: str
    credential: SigningKey
    server_key: VerifyKey
    keyring: Keyring

    @property
    def state_path(self) -> Path:
        return self.directory / "cursor.json"


def init_transfer(directory: Path, *, desk: str, server_key: str, keyring_path: Path) -> VerifyKey:
    """Create a transfer credential for ``desk`` in ``directory``; returns its public key.

    The operator registers the public key on the server
    (``intake-server desk add-transfer-key``). The credential is stored unencrypted
    (mode 0600): it only ever unlocks ciphertext, and the transfer machine must be able
    to run unattended.
    """
    if not ids.is_desk_id(desk):
        raise TransferError(f"desk id {desk!r} must be lower-case letters, digits or '-'")
    try:
        verify = read_verify_key(server_key)
        keyring = Keyring.load(keyring_path)
    except (ValueError, OSError) as exc:
        raise TransferError(str(exc)) from None
    if keyring.get(desk) is None:
        raise TransferError(f"desk {desk!r} is not in the keyring {keyring_path}")
    # A new directory is exactly 0700 (mkdir's mode= is filtered by the umask); an
    # existing one is the user's own and is used as it is.
    fs.safe_mkdir(directory, parents=True, exist_ok=True)
    if (directory / CREDENTIAL).exists():
        raise TransferError(f"{directory / CREDENTIAL} exists; refusing to replace a credential")
    key = SigningKey.generate()
    settings = {
        "format": "amana-transfer",
        "version": 1,
        "desk": desk,
        "server_key": str(verify),
        "keyring": json.loads(keyring.to_json()),
    }
    fs.atomic_write_bytes(directory / SETTINGS, json.dumps(settings, indent=2).encode())
    fs.atomic_write_bytes(directory / CREDENTIAL, (key.to_text() + "\n").encode())
    return key.verify_key


def load_settings(directory: Path) -> TransferSettings:
    try:
        # Quietly: each fetch or push would otherwise leave its moment in their atimes.
        raw = fs.read_quietly(directory / SETTINGS, _MAX_SETTINGS)
        doc = json.loads(raw)
        credential = SigningKey.from_text(
            fs.read_quietly(directory / CREDENTIAL, 4096).decode("ascii").strip())
        if doc.get("format") != "amana-transfer" or doc.get("version") != 1:
            raise ValueError("not an Amana transfer settings file")
        desk = doc["desk"]
        if not ids.is_desk_id(desk):
            raise ValueError("malformed desk id")
        return TransferSettings(
            directory=directory,
            desk=desk,
            credential=credential,
            server_key=VerifyKey.from_text(doc["server_key"]),
            keyring=Keyring.from_json(json.dumps(doc["keyring"]).encode()),
        )
    except FileNotFoundError as exc:
        raise TransferError(
            f"{exc.filename} is missing: run `journalist-transfer init` first"
        ) from None
    except (ValueError, KeyError, TypeError, fs.FsError) as exc:
        raise TransferError(f"{directory}: transfer settings are damaged ({exc})") from None





def adopt_server_keyring(settings: TransferSettings, bundle: VerifiedBundle) -> tuple[str, ...]:
    """Take the key rotations of the keyring a verified desk export carries (index
    version 3, ADR 0011) into transfer.json; what changed or was refused, as sentences.
    Push then checks acks and outboxes against the desk's new key (and its previous
    ones, which the server still accepts while items encrypted to them wait)."""
    if "keyring.json" not in bundle.names:
        return ()
    try:
        offered = Keyring.from_json(bundle.read("keyring.json", max_size=MAX_KEYRING_BYTES))
    except KeyringError as exc:
        return (f"the server's keyring.json is invalid, ignored: {exc}",)
    adoption = adopt_keyring(settings.keyring, offered)
    if adoption.changed:
        path = settings.directory / SETTINGS
        doc = json.loads(path.read_bytes()[:_MAX_SETTINGS])
        doc["keyring"] = json.loads(adoption.keyring.to_json())
        fs.atomic_write_bytes(path, json.dumps(doc, indent=2).encode(), overwrite=True)
    return adoption.notes
