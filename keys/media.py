"""The one media-type rule: what an attachment's ``media_type`` may be, on both sides.

The server records, for each attachment, the ``Content-Type`` the source's browser sent
for the part (docs/report-format.md); the offline client validates the decrypted
document against the same rule before it files the report. Two rules drifted once: the
server kept any ASCII value (a TAB included) and the client quarantined the report,
after the server had deleted its copy on the ack. One definition here, used by
intake_server.upload when it records a type and by journalist_client.schema when it
checks one, so that the server can never write a type the client refuses.

The rule is RFC 6838's ``type-name "/" subtype-name``, lower-case: each name starts with
a letter or digit and goes on with letters, digits and ``! # $ & ^ _ . + -``, and the
whole is at most 100 characters. Parameters (``; charset=…``) are dropped. The server
*normalises* what a browser sent (parameters and surrounding whitespace removed,
lower-cased) and replaces anything that still breaks the rule by
``application/octet-stream``, the type of "some bytes": a part is never refused for its
type, which is only a claim of the source's browser, shown escaped and never acted upon.
"""

from __future__ import annotations

import re
from typing import Final, TypeGuard

__all__ = [
    "MAX_MEDIA_TYPE",
    "MEDIA_TYPE_RE",
    "OCTET_STREAM",
    "is_media_type",
    "media_type_of_part",
]

MAX_MEDIA_TYPE: Final = 100
OCTET_STREAM: Final = "application/octet-stream"
_NAME: Final = "[a-z0-9][a-z0-9!#$&^_.+-]*"
# Always used with fullmatch; explicit ASCII classes (no re.IGNORECASE, no \w).
MEDIA_TYPE_RE: Final = re.compile(f"(?=.{{3,{MAX_MEDIA_TYPE}}}\\Z){_NAME}/{_NAME}", re.ASCII)
# HTTP's optional whitespace around a header value or before its parameters.
_OWS: Final = " \t"


def is_media_type(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a string that follows the rule exactly (already normalised)."""
    return isinstance(value, str) and MEDIA_TYPE_RE.fullmatch(value) is not None


def media_type_of_part(header: str | None) -> str:
    """The media type to record for a part whose ``Content-Type`` header is ``header``
    (None when absent): normalised, or ``application/octet-stream`` when it breaks the
    rule."""
    if header is None:
        return OCTET_STREAM
    value = header.split(";", 1)[0].strip(_OWS)
    # isascii before lower(): lower() maps some non-ASCII letters to ASCII ones
    # (U+212A KELVIN SIGN becomes "k"), which would slip past the pattern.
    if not value.isascii():
        return OCTET_STREAM
    value = value.lower()
    return value if is_media_type(value) else OCTET_STREAM
