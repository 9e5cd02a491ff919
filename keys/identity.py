"""A desk's key material: generating it, storing it encrypted, loading it back.

``generate_desk`` writes three files into a new (or empty) directory, mode 0600 in a
0700 directory, never replacing anything:

* ``identity.age``: the desk's age identity file (``# created: <day>``,
  ``# public key: age1…``, ``AGE-SECRET-KEY-1…``), encrypted to a passphrase with an
  age scrypt stanza and armored, so the reference tool opens it: ``age -d identity.age``
  or ``age -d -i identity.age report.age``;
* ``signing.age``: the Ed25519 signing seed (``AMANA-ED25519-SECRET-KEY:…``), encrypted
  the same way;
* ``desk.json``: the public keyring entry (keys/keyring.py).

The identity is X25519 by default. ``pq=True`` makes it the post-quantum hybrid
(``age1pq1…``), which protects stored evidence against a future quantum adversary but
which Debian's age 1.1 cannot read; see docs/keyring-format.md.

``rotate_desk`` makes a desk's next keys in a new directory, with the same three files
and a fourth, ``transition.txt``: the statement, signed by the old and the new signing
key, that the new keys succeed the old (keys/transition.py, docs/key-rotation.md).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from keys.age import (
    AgeError,
    HybridIdentity,
    Identity,
    NoMatchError,
    ScryptIdentity,
    ScryptRecipient,
    X25519Identity,
    decrypt,
    encrypt,
    parse_identity_file,
)
from keys.age._format import Stanza
from keys.fs import (
    FileExistsRefused,
    FsError,
    atomic_write_bytes,
    read_quietly,
    safe_mkdir,
    safe_remove,
)
from keys.keyring import (
    MAX_KEYRING_BYTES,
    Desk,
    KeyringError,
    desk_entry_from_json,
)
from keys.signing import KeyFormatError, SigningKey
from keys.transition import sign_transition

__all__ = [
    "DESK_FILE",
    "IDENTITY_FILE",
    "MIN_PASSPHRASE_CHARS",
    "SIGNING_FILE",
    "TRANSITION_FILE",
    "DeskError",
    "DeskKeys",
    "IdentityList",
    "WrongPassphrase",
    "generate_desk",
    "load_desk",
    "load_identity",
    "read_identities",
    "rotate_desk",
]

IDENTITY_FILE: Final = "identity.age"
SIGNING_FILE: Final = "signing.age"
DESK_FILE: Final = "desk.json"
TRANSITION_FILE: Final = "transition.txt"
#: A desk passphrase guards the key to every report sent to the desk. scrypt slows a
#: guesser down, but only length makes guessing hopeless; a 6-word diceware passphrase
#: is the recommendation in docs/cli.md.
MIN_PASSPHRASE_CHARS: Final = 12
_MAX_KEY_FILE: Final = 64 * 1024
_SCRYPT_WORK_FACTOR: Final = 18  # what `age -p` uses


class DeskError(Exception):
    """The desk directory cannot be created or opened."""


class WrongPassphrase(DeskError):
    """A key file did not open with the passphrase given (the one failure worth a retry)."""


@dataclass(frozen=True, repr=False)
class DeskKeys:
    desk: Desk
    identity: Identity
    signing_key: SigningKey

    def __repr__(self) -> str:
        return f"DeskKeys(desk={self.desk.id!r}, <secret keys>)"


class IdentityList:
    """Several identities as one: a desk's current identity, then its previous ones
    (a rotated desk still opens what was encrypted to its older keys)."""

    def __init__(self, identities: Sequence[Identity]) -> None:
        if not identities:
            raise ValueError("an IdentityList needs at least one identity")
        self.identities = tuple(identities)

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        for identity in self.identities:
            key = identity.unwrap(stanzas)
            if key is not None:
                return key
        return None

    def __repr__(self) -> str:
        return f"IdentityList(<{len(self.identities)} secret keys>)"


def _check_passphrase(passphrase: str) -> None:
    if len(passphrase) < MIN_PASSPHRASE_CHARS:
        raise DeskError(f"passphrase too short: use at least {MIN_PASSPHRASE_CHARS} characters")


def generate_desk(
    desk_id: str,
    names: Mapping[str, str],
    out_dir: str | os.PathLike[str],
    passphrase: str,
    *,
    pq: bool = False,
    work_factor: int = _SCRYPT_WORK_FACTOR,
    _previous: DeskKeys | None = None,
) -> Desk:
    """Create a desk's keys in ``out_dir`` and return its public entry."""
    _check_passphrase(passphrase)
    identity: X25519Identity | HybridIdentity = (
        HybridIdentity.generate() if pq else X25519Identity.generate()
    )
    signing_key = SigningKey.generate()
    try:
        desk = Desk.create(desk_id, names, str(identity.recipient()), str(signing_key.verify_key))
    except KeyringError as e:
        raise DeskError(str(e)) from None

    out = Path(out_dir)
    try:
        safe_mkdir(out, exist_ok=True)
    except (FileExistsRefused, NotADirectoryError) as e:
        raise DeskError(str(e)) from None
    targets = [out / IDENTITY_FILE, out / SIGNING_FILE, out / DESK_FILE]
    files = [
        (targets[0], b""),
        (targets[1], b""),
        (targets[2], desk.to_json()),
    ]
    if _previous is not None:
        statement = sign_transition(
            desk_id,
            old_recipient=_previous.desk.recipient,
            old_key=_previous.signing_key,
            new_recipient=desk.recipient,
            new_key=signing_key,
        )
        targets.append(out / TRANSITION_FILE)
        files.append((out / TRANSITION_FILE, statement.encode("ascii") + b"\n"))
    existing = [p.name for p in targets if os.path.lexists(p)]
    if existing:
        raise DeskError(f"{out} already holds {', '.join(existing)}; refusing to overwrite keys")

    # The creation day, not the time: less metadata on a machine that may be seized.
    day = dt.datetime.now(dt.UTC).date().isoformat()
    identity_text = (
        f"# created: {day}\n# public key: {identity.recipient()}\n# desk: {desk_id}\n{identity}\n"
    )
    signing_text = (
        f"# created: {day}\n# verify key: {signing_key.verify_key}\n# desk: {desk_id}\n"
        f"{signing_key.to_text()}\n"
    )
    recipient = [ScryptRecipient(passphrase, work_factor=work_factor)]
    written: list[Path] = []
    try:
        files[0] = (targets[0], encrypt(identity_text.encode("ascii"), recipient, armor=True))
        files[1] = (targets[1], encrypt(signing_text.encode("ascii"), recipient, armor=True))
        for path, data in files:
            atomic_write_bytes(path, data)
            written.append(path)
    except BaseException:
        # Never leave a desk with an identity but no entry (or the reverse).
        for p in written:
            safe_remove(p)
        raise
    return desk


def rotate_desk(
    desk_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    passphrase: str,
    *,
    new_passphrase: str | None = None,
    pq: bool | None = None,
    work_factor: int = _SCRYPT_WORK_FACTOR,
) -> tuple[Desk, str]:
    """Make the next keys of the desk in ``desk_dir`` in ``out_dir``; return the new entry
    and the transition statement (also written to ``out_dir/transition.txt``).

    The old keys are unlocked with ``passphrase`` (so only their holder can rotate) and
    left as they are. The new ones are encrypted to ``new_passphrase`` (default: the
    same), of the same kind as the old unless ``pq`` says otherwise, with the same names.
    """
    old = load_desk(desk_dir, passphrase)
    kind = old.desk.post_quantum if pq is None else pq
    desk = generate_desk(
        old.desk.id,
        dict(old.desk.names),
        out_dir,
        new_passphrase or passphrase,
        pq=kind,
        work_factor=work_factor,
        _previous=old,
    )
    with open(Path(out_dir) / TRANSITION_FILE, "rb") as f:
        statement = f.read(_MAX_KEY_FILE).decode("ascii").strip()
    return desk, statement


def _desk_entry(d: Path) -> Desk:
    path = d / DESK_FILE
    try:
        # Quietly, as the key files: see _read_small.
        return desk_entry_from_json(read_quietly(path, MAX_KEYRING_BYTES), str(path))
    except FileNotFoundError:
        raise DeskError(f"{path} is missing") from None
    except KeyringError as e:  # names the file itself
        raise DeskError(str(e)) from None
    except FsError as e:  # too large, or not a regular file
        raise DeskError(f"{path}: {e}") from None
    except OSError as e:  # a symbolic link in its place (O_NOFOLLOW), or unreadable
        raise DeskError(f"{path} cannot be read: {e.strerror}") from None


def _read_small(path: Path) -> bytes:
    # Quietly: each unlock would otherwise leave its moment in the key files' atimes.
    try:
        return read_quietly(path, _MAX_KEY_FILE)
    except FileNotFoundError:
        raise DeskError(f"{path} is missing") from None
    except FsError as e:  # too large, or not a regular file
        raise DeskError(f"{path} cannot be a key file: {e}") from None
    except OSError as e:  # a symbolic link in its place (O_NOFOLLOW), or unreadable
        raise DeskError(f"{path} cannot be read: {e.strerror}") from None


def _unlock(path: Path, passphrase: str) -> str:
    try:
        plain = decrypt(_read_small(path), [ScryptIdentity(passphrase)])
    except NoMatchError:
        raise WrongPassphrase(
            f"{path.name}: wrong passphrase (or not passphrase-encrypted)"
        ) from None
    except AgeError as e:
        raise DeskError(f"{path.name}: {e}") from None
    try:
        return plain.decode("ascii")
    except UnicodeDecodeError:
        raise DeskError(f"{path.name}: not a key file") from None


def _key_line(text: str, path: Path) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if len(lines) != 1:
        raise DeskError(f"{path.name}: expected exactly one key line, found {len(lines)}")
    return lines[0]


def load_desk(desk_dir: str | os.PathLike[str], passphrase: str) -> DeskKeys:
    """Unlock a desk directory and check that its secret keys match its ``desk.json``."""
    d = Path(desk_dir)
    desk = _desk_entry(d)

    identity_text = _unlock(d / IDENTITY_FILE, passphrase)
    try:
        identities = parse_identity_file(identity_text)
    except ValueError as e:
        raise DeskError(f"{IDENTITY_FILE}: {e}") from None
    if len(identities) != 1:
        raise DeskError(f"{IDENTITY_FILE}: expected one identity, found {len(identities)}")
    identity = identities[0]
    if not isinstance(identity, X25519Identity | HybridIdentity):
        raise DeskError(f"{IDENTITY_FILE}: not an X25519 or hybrid identity")
    if str(identity.recipient()) != desk.recipient:
        raise DeskError(f"{IDENTITY_FILE} does not belong to desk {desk.id!r} (other key)")

    signing_text = _unlock(d / SIGNING_FILE, passphrase)
    try:
        signing_key = SigningKey.from_text(_key_line(signing_text, d / SIGNING_FILE))
    except KeyFormatError as e:
        raise DeskError(f"{SIGNING_FILE}: {e}") from None
    if str(signing_key.verify_key) != desk.verify_key:
        raise DeskError(f"{SIGNING_FILE} does not belong to desk {desk.id!r} (other key)")
    return DeskKeys(desk=desk, identity=identity, signing_key=signing_key)


def load_identity(
    desk_dir: str | os.PathLike[str], passphrase: str
) -> X25519Identity | HybridIdentity:
    """Unlock only the age identity of a desk directory (a previous key a vault keeps to
    open old reports), checked against the directory's ``desk.json``."""
    d = Path(desk_dir)
    desk = _desk_entry(d)
    text = _unlock(d / IDENTITY_FILE, passphrase)
    try:
        identities = parse_identity_file(text)
    except ValueError as e:
        raise DeskError(f"{d / IDENTITY_FILE}: {e}") from None
    if len(identities) != 1 or not isinstance(identities[0], X25519Identity | HybridIdentity):
        raise DeskError(f"{d / IDENTITY_FILE}: expected one X25519 or hybrid identity")
    if str(identities[0].recipient()) != desk.recipient:
        raise DeskError(f"{d / IDENTITY_FILE} does not belong to {d / DESK_FILE} (other key)")
    return identities[0]


def read_identities(data: bytes, passphrase: Callable[[], str]) -> list[Identity]:
    """The identities in an identity file, unlocking it first if it is itself age-encrypted.

    ``data`` is the file's content: plain ``AGE-SECRET-KEY-…`` lines (``#`` comments
    allowed), or such a file encrypted to a passphrase, binary or armored, as
    :func:`generate_desk` writes. ``passphrase`` is called only in the second case.
    """
    if len(data) > _MAX_KEY_FILE:
        raise DeskError("identity file is too large")
    stripped = data.lstrip(b" \t\r\n")
    if stripped.startswith((b"age-encryption.org/", b"-----BEGIN AGE ENCRYPTED FILE-----")):
        try:
            data = decrypt(data, [ScryptIdentity(passphrase())])
        except NoMatchError:
            raise DeskError(
                "encrypted identity file: wrong passphrase (or not encrypted to a passphrase)"
            ) from None
        except AgeError as e:
            raise DeskError(f"encrypted identity file: {e}") from None
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise DeskError("identity file is not ASCII text") from None
    try:
        return parse_identity_file(text)
    except ValueError as e:
        raise DeskError(f"identity file: {e}") from None
