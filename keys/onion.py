"""Tor v3 onion services: addresses, and the x25519 keys of client authorization.

Scope: the two text formats tor reads for client authorization and the derivation of a
v3 onion address from its ed25519 public key, so that ``intake-keys onion-auth`` can
make the staff onion's keys and the tests can check the ``hostname`` tor writes. Nothing
here talks to tor or to the network. The formats are those of tor's rend-spec-v3
("Client authorization") and tor(1) (``HiddenServiceDir/authorized_clients/``,
``ClientOnionAuthDir``):

- the onion service holds ``authorized_clients/NAME.auth`` containing
  ``descriptor:x25519:<base32 public key>``;
- the client (a transfer machine) holds ``NAME.auth_private`` in its ``ClientOnionAuthDir``
  containing ``<56-letter address, no .onion>:descriptor:x25519:<base32 private key>``;
- base32 is RFC 4648 without ``=`` padding: 52 characters for a 32-byte key.

A v3 address is ``base32(pubkey || checksum || version)`` in lower case, 56 characters,
with ``checksum = SHA3-256(".onion checksum" || pubkey || version)[:2]`` and
``version = 0x03``.

Why the private key stays where it is made: only the transfer machine needs it. Run
``intake-keys onion-auth`` there and copy just the public ``NAME.auth`` to the server;
if the server is seized, its ``authorized_clients/`` lets nobody reach the staff onion.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from keys.age._primitives import x25519_base
from keys.fs import atomic_write_bytes, safe_mkdir

__all__ = [
    "HS_PUBLIC_KEY_HEADER",
    "ClientAuthKey",
    "OnionError",
    "check_client_name",
    "client_auth_files",
    "generate_client_auth",
    "onion_address",
    "onion_public_key",
    "parse_auth_line",
    "parse_auth_private_line",
    "public_key_from_hs_file",
    "transfer_torrc",
    "write_client_auth",
]

_VERSION: Final = b"\x03"
_CHECKSUM_PREFIX: Final = b".onion checksum"
_ADDRESS_LEN: Final = 56  # base32 of 32 + 2 + 1 = 35 bytes
_KEY_B32_LEN: Final = 52  # base32 of 32 bytes, no padding
# tor's hs_ed25519_public_key file: a 32-byte tagged header, then the raw key.
HS_PUBLIC_KEY_HEADER: Final = b"== ed25519v1-public: type0 ==\x00\x00\x00"
_ADDRESS_RE: Final = re.compile(r"[a-z2-7]{56}")
# The name becomes a file name on both machines and appears in logs: keep it boring.
_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class OnionError(ValueError):
    """A malformed onion address, key, key file or client name."""


def _b32encode(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=")


def _b32decode(text: str, length: int) -> bytes:
    if len(text) != -(-length * 8 // 5) or not re.fullmatch(r"[A-Z2-7]+", text.upper()):
        raise OnionError(f"expected {length} bytes in base32")
    padded = text.upper() + "=" * (-len(text) % 8)
    try:
        data = base64.b32decode(padded)
    except binascii.Error:
        raise OnionError("invalid base32") from None
    # Non-canonical text (spare bits set in the last character) would decode to the same
    # key as another string: refuse it, as tor's own round-trip would not match.
    if _b32encode(data) != text.upper():
        raise OnionError("non-canonical base32")
    return data


def _checksum(public_key: bytes) -> bytes:
    return hashlib.sha3_256(_CHECKSUM_PREFIX + public_key + _VERSION).digest()[:2]


def onion_address(public_key: bytes) -> str:
    """The v3 address (``….onion``) of an onion service's 32-byte ed25519 public key."""
    if len(public_key) != 32:
        raise OnionError("an ed25519 public key is 32 bytes")
    raw = public_key + _checksum(public_key) + _VERSION
    return base64.b32encode(raw).decode("ascii").lower() + ".onion"


def onion_public_key(address: str) -> bytes:
    """The ed25519 public key in a v3 address, after checking its version and checksum.

    Accepts the address with or without ``.onion`` and in either case, so that a
    mistyped or truncated address is caught here rather than by an unreachable service.
    """
    label = address.strip().lower().removesuffix(".onion")
    if not _ADDRESS_RE.fullmatch(label):
        raise OnionError(f"{address!r} is not a v3 onion address (56 letters a-z, 2-7)")
    raw = base64.b32decode(label.upper())
    public_key, checksum, version = raw[:32], raw[32:34], raw[34:]
    if version != _VERSION:
        raise OnionError(f"{address!r}: not a version 3 onion address")
    if not secrets.compare_digest(checksum, _checksum(public_key)):
        raise OnionError(f"{address!r}: checksum mismatch (a typo in the address?)")
    return public_key


def public_key_from_hs_file(data: bytes) -> bytes:
    """The key in tor's ``HiddenServiceDir/hs_ed25519_public_key`` file."""
    if len(data) != 64 or not data.startswith(HS_PUBLIC_KEY_HEADER):
        raise OnionError("not a tor hs_ed25519_public_key file (64 bytes, tagged header)")
    return data[32:]


def _clamp(scalar: bytes) -> bytes:
    # RFC 7748 clamping. x25519 clamps on use anyway, so the public key is the same;
    # storing the clamped form matches the keys tor itself generates.
    k = bytearray(scalar)
    k[0] &= 248
    k[31] &= 127
    k[31] |= 64
    return bytes(k)


def check_client_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise OnionError(
            f"client name {name!r}: use 1-64 letters, digits, '-' or '_' (starting "
            "with a letter or digit); it becomes the file name NAME.auth"
        )
    return name


@dataclass(frozen=True)
class ClientAuthKey:
    """One onion client-authorization keypair (x25519) and its name."""

    name: str
    private_key: bytes
    public_key: bytes

    def __post_init__(self) -> None:
        check_client_name(self.name)
        if len(self.private_key) != 32 or len(self.public_key) != 32:
            raise OnionError("x25519 keys are 32 bytes")
        if x25519_base(self.private_key) != self.public_key:
            raise OnionError("the public key does not match the private key")

    def __repr__(self) -> str:
        # Never print the private key by accident (logs, tracebacks, test output).
        return f"ClientAuthKey(name={self.name!r}, public={self.public_b32})"

    @classmethod
    def from_private(cls, name: str, private_key: bytes) -> ClientAuthKey:
        if len(private_key) != 32:
            raise OnionError("an x25519 private key is 32 bytes")
        private_key = _clamp(private_key)
        return cls(name, private_key, x25519_base(private_key))

    @property
    def public_b32(self) -> str:
        return _b32encode(self.public_key)

    def auth_line(self) -> str:
        """The content of the service's ``authorized_clients/NAME.auth``."""
        return f"descriptor:x25519:{self.public_b32}"

    def auth_private_line(self, address: str) -> str:
        """The content of the client's ``ClientOnionAuthDir/NAME.auth_private``."""
        label = onion_address(onion_public_key(address)).removesuffix(".onion")
        return f"{label}:descriptor:x25519:{_b32encode(self.private_key)}"


def generate_client_auth(name: str) -> ClientAuthKey:
    """A fresh client-authorization keypair from the OS's CSPRNG."""
    return ClientAuthKey.from_private(name, secrets.token_bytes(32))


def parse_auth_line(text: str) -> bytes:
    """The x25519 public key in an ``authorized_clients/*.auth`` line."""
    parts = text.strip().split(":")
    if len(parts) != 3 or parts[:2] != ["descriptor", "x25519"]:
        raise OnionError("expected descriptor:x25519:<base32 public key>")
    return _b32decode(parts[2], 32)


def parse_auth_private_line(text: str) -> tuple[str, bytes]:
    """(address, private key) of a ``ClientOnionAuthDir/*.auth_private`` line."""
    parts = text.strip().split(":")
    if len(parts) != 4 or parts[1:3] != ["descriptor", "x25519"]:
        raise OnionError("expected <onion>:descriptor:x25519:<base32 private key>")
    address = onion_address(onion_public_key(parts[0]))
    return address, _b32decode(parts[3], 32)


def transfer_torrc(name: str, auth_dir: str = "/var/lib/tor/onion_auth") -> str:
    """The torrc lines a transfer machine needs to reach the staff onion."""
    return (
        "# Amana transfer machine: reach the staff onion with client authorization.\n"
        f"# Put {name}.auth_private in {auth_dir}/ (owner debian-tor, directory 0700,\n"
        "# file 0600). Tor refuses to use a directory others can read.\n"
        f"ClientOnionAuthDir {auth_dir}\n"
    )


def client_auth_files(key: ClientAuthKey, address: str | None) -> dict[str, bytes]:
    """The files to write, by name: public, private (if the address is known), torrc.

    Without the onion address the private key is kept alone in ``NAME.x25519`` (one
    base32 line) so that it is not lost; prefix it with ``<address>:descriptor:x25519:``
    to make ``NAME.auth_private`` once the address is known.
    """
    files = {f"{key.name}.auth": (key.auth_line() + "\n").encode("ascii")}
    if address is not None:
        files[f"{key.name}.auth_private"] = (key.auth_private_line(address) + "\n").encode("ascii")
    else:
        files[f"{key.name}.x25519"] = (_b32encode(key.private_key) + "\n").encode("ascii")
    files[f"{key.name}.torrc"] = transfer_torrc(key.name).encode("ascii")
    return files


def write_client_auth(key: ClientAuthKey, out_dir: str | Path, address: str | None) -> list[Path]:
    """Write :func:`client_auth_files` into ``out_dir`` (created 0700 if missing), 0600 each.

    Refuses to replace an existing file: a second key under the same name would silently
    lock out the machine that holds the first.
    """
    if address is not None:
        onion_public_key(address)  # fail before writing anything
    out = safe_mkdir(out_dir, exist_ok=True)
    files = client_auth_files(key, address)
    for name in files:
        if (out / name).exists():
            raise OnionError(f"{out / name} already exists")
    return [atomic_write_bytes(out / name, data) for name, data in files.items()]
