"""The scrypt passphrase recipient type, as `age -p` writes it.

A passphrase stanza must be the only stanza in its file: otherwise anyone who can
decrypt with another recipient could swap in a file key of their choosing, and the
passphrase would vouch for a file its holder never wrote.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence

from ._errors import HeaderError
from ._format import Stanza, b64decode_strict, b64encode_raw
from ._primitives import DecryptionFailed, aead_open_once, aead_seal_once, scrypt
from ._recipient import FILE_KEY_SIZE

__all__ = ["DEFAULT_WORK_FACTOR", "MAX_WORK_FACTOR", "ScryptIdentity", "ScryptRecipient"]

_SALT_LABEL = b"age-encryption.org/v1/scrypt"
_SALT_SIZE = 16
# Same defaults as the reference: 2^18 (about a second, 256 MiB) to encrypt, and
# refuse to spend more than 2^22 (4 GiB) on a file someone else may have crafted.
DEFAULT_WORK_FACTOR = 18
MAX_WORK_FACTOR = 22
_DECIMAL = re.compile(r"[1-9][0-9]{0,3}")


def _as_bytes(passphrase: str | bytes) -> bytes:
    return passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase


class ScryptRecipient:
    label = "scrypt"
    __slots__ = ("_passphrase", "_work_factor")

    def __init__(self, passphrase: str | bytes, work_factor: int = DEFAULT_WORK_FACTOR) -> None:
        if not passphrase:
            raise ValueError("empty passphrase")
        if not 1 <= work_factor <= MAX_WORK_FACTOR:
            raise ValueError(f"scrypt work factor must be between 1 and {MAX_WORK_FACTOR}")
        self._passphrase = _as_bytes(passphrase)
        self._work_factor = work_factor

    def wrap(self, file_key: bytes) -> list[Stanza]:
        salt = secrets.token_bytes(_SALT_SIZE)
        key = scrypt(self._passphrase, _SALT_LABEL + salt, self._work_factor)
        body = aead_seal_once(key, file_key)
        args = (b64encode_raw(salt).decode(), str(self._work_factor))
        return [Stanza("scrypt", args, body)]

    def __repr__(self) -> str:
        return f"ScryptRecipient(work_factor={self._work_factor})"


class ScryptIdentity:
    __slots__ = ("_max_work_factor", "_passphrase")

    def __init__(self, passphrase: str | bytes, max_work_factor: int = MAX_WORK_FACTOR) -> None:
        self._passphrase = _as_bytes(passphrase)
        self._max_work_factor = max_work_factor

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        for stanza in stanzas:
            if stanza.type != "scrypt":
                continue
            if len(stanza.args) != 2:
                raise HeaderError("scrypt stanza must have a salt and a work factor")
            try:
                salt = b64decode_strict(stanza.args[0])
            except ValueError:
                raise HeaderError("scrypt salt is not canonical base64") from None
            if len(salt) != _SALT_SIZE:
                raise HeaderError("scrypt salt is not 16 bytes")
            if not _DECIMAL.fullmatch(stanza.args[1]):
                raise HeaderError("scrypt work factor is not a plain decimal number")
            work_factor = int(stanza.args[1])
            if work_factor > self._max_work_factor:
                raise HeaderError(
                    f"scrypt work factor 2^{work_factor} is over the limit of "
                    f"2^{self._max_work_factor}"
                )
            if len(stanza.body) != FILE_KEY_SIZE + 16:
                raise HeaderError("scrypt stanza body is not a wrapped 16-byte file key")
            key = scrypt(self._passphrase, _SALT_LABEL + salt, work_factor)
            try:
                return aead_open_once(key, stanza.body)
            except DecryptionFailed:
                continue
        return None

    def __repr__(self) -> str:
        return "ScryptIdentity(…)"
