"""The two one-method interfaces every key type implements.

A Recipient wraps a file key into stanzas; an Identity unwraps one from them.
New key types arrive without touching the header or payload code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ._format import Stanza

__all__ = ["FILE_KEY_SIZE", "Identity", "Recipient"]

FILE_KEY_SIZE = 16


class Recipient(Protocol):
    # "postquantum" recipients must not share a file with classic ones (the file is
    # only as strong as its weakest stanza); "scrypt" must be the only stanza.
    label: str

    def wrap(self, file_key: bytes) -> list[Stanza]: ...


class Identity(Protocol):
    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        """The file key, or None if no stanza is for this identity.

        Raises HeaderError for a malformed stanza of its own type: a broken stanza
        is a broken file, not merely someone else's.
        """
        ...
