"""The age failure classes.

Each class is one layer of the format, named as the C2SP CCTV test suite names it,
so that a caller (and a person reading an error) learns the *lowest* layer that
failed: a malformed header is never reported as a bad MAC, a bad MAC never as a
damaged payload.
"""

from __future__ import annotations

__all__ = [
    "AgeError",
    "ArmorError",
    "HMACError",
    "HeaderError",
    "NoMatchError",
    "PayloadError",
]


class AgeError(Exception):
    """Base class: the file could not be encrypted or decrypted."""

    kind = "age failure"

    def __str__(self) -> str:
        detail = super().__str__()
        return f"{self.kind}: {detail}" if detail else self.kind


class ArmorError(AgeError):
    """The ASCII armor (PEM-like wrapping) is malformed."""

    kind = "armor failure"


class HeaderError(AgeError):
    """The header does not parse, or a recipient stanza is malformed."""

    kind = "header failure"


class NoMatchError(AgeError):
    """The header parses, but none of the given identities opens any stanza."""

    kind = "no match"


class HMACError(AgeError):
    """A file key was unwrapped, but the header MAC does not match: the header was altered."""

    kind = "HMAC failure"


class PayloadError(AgeError):
    """The encrypted payload is damaged, truncated, or has data after its end."""

    kind = "payload failure"
