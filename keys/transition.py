"""Key transition statements: a desk's old keys vouching for its new ones, and back.

When a desk replaces its keys (``intake-keys rotate``), it signs one statement with
*both* signing keys: the old key says "my successor is this", the new key says "I
hold this key and accept that succession". Whoever trusts the old key (the server's
keyring, a vault, a transfer machine) can then move to the new one without a new
out-of-band check, and a keyring changed without the old key's consent is refused.

Text form (one line, ASCII; docs/key-rotation.md)::

    amana-key-transition-v1.<payload>.<old signature>.<new signature>

each part unpadded base64url. The payload is canonical JSON (sorted keys, no spaces,
ASCII)::

    {"day":"2026-12-04","desk":"smex","format":"amana-key-transition","new":
     {"age_recipient":"age1…","verify_key":"ed25519:…"},"old":{…},"version":1}

Both signatures are over the raw payload bytes under :data:`keys.signing.
CONTEXT_KEY_TRANSITION`. :func:`verify` checks the old key's signature with the key
the caller already trusts *before* the payload is parsed at all; only then is the JSON
read (strictly, and re-encoded to check it is canonical), and the new key's signature
checked with the key the payload names.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any, Final

from keys import ids, strict_json
from keys.age import AgeError, parse_recipient
from keys.signing import (
    CONTEXT_KEY_TRANSITION,
    SIGNATURE_SIZE,
    BadSignature,
    KeyFormatError,
    SigningKey,
    VerifyKey,
)

__all__ = [
    "MAX_STATEMENT_CHARS",
    "PREFIX",
    "Transition",
    "TransitionError",
    "sign_transition",
    "verify_transition",
]

PREFIX: Final = "amana-key-transition-v1"
#: A post-quantum recipient is about 1,960 characters; two of them, base64url-encoded,
#: stay well inside this.
MAX_STATEMENT_CHARS: Final = 16 * 1024
_FORMAT: Final = "amana-key-transition"
_VERSION: Final = 1
_PART_RE: Final = re.compile(r"[A-Za-z0-9_-]+")
_KEY_FIELDS: Final = frozenset({"age_recipient", "verify_key"})
_FIELDS: Final = frozenset({"format", "version", "desk", "day", "old", "new"})


class TransitionError(ValueError):
    """The statement is malformed, not signed by both keys, or not about these keys."""


@dataclass(frozen=True)
class Transition:
    """A verified statement: desk ``desk`` moved from ``old`` to ``new`` on ``day``.

    ``old`` and ``new`` are (age recipient, verify key text) pairs; ``text`` is the
    statement exactly as signed, to be stored and passed on unchanged.
    """

    desk: str
    day: str
    old_recipient: str
    old_verify_key: str
    new_recipient: str
    new_verify_key: str
    text: str


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(part: str, what: str) -> bytes:
    if not _PART_RE.fullmatch(part):
        raise TransitionError(f"transition statement: {what} is not base64url")
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise TransitionError(f"transition statement: {what} is not base64url") from None
    if _b64(raw) != part:
        raise TransitionError(f"transition statement: {what} is not canonical base64url")
    return raw


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _payload(desk: str, day: str, old: tuple[str, str], new: tuple[str, str]) -> bytes:
    return _canonical(
        {
            "format": _FORMAT,
            "version": _VERSION,
            "desk": desk,
            "day": day,
            "old": {"age_recipient": old[0], "verify_key": old[1]},
            "new": {"age_recipient": new[0], "verify_key": new[1]},
        }
    )


def sign_transition(
    desk: str,
    *,
    old_recipient: str,
    old_key: SigningKey,
    new_recipient: str,
    new_key: SigningKey,
    day: dt.date | None = None,
) -> str:
    """The statement text, signed by both keys. The day is a UTC date, no time."""
    if not ids.is_desk_id(desk):
        raise TransitionError(f"{desk!r} is not a desk id")
    if old_key == new_key or old_recipient == new_recipient:
        raise TransitionError("the new keys must differ from the old ones")
    for r in (old_recipient, new_recipient):
        if str(parse_recipient(r)) != r:
            raise TransitionError("age recipients must be in canonical form")
    day_text = (day or dt.datetime.now(dt.UTC).date()).isoformat()
    payload = _payload(
        desk,
        day_text,
        (old_recipient, str(old_key.verify_key)),
        (new_recipient, str(new_key.verify_key)),
    )
    sig_old = old_key.sign(payload, context=CONTEXT_KEY_TRANSITION)
    sig_new = new_key.sign(payload, context=CONTEXT_KEY_TRANSITION)
    return ".".join((PREFIX, _b64(payload), _b64(sig_old), _b64(sig_new)))


def _key_pair(obj: object, where: str) -> tuple[str, str]:
    if not isinstance(obj, dict) or set(obj) != _KEY_FIELDS:
        raise TransitionError(
            f"transition statement: {where} must hold exactly age_recipient and verify_key"
        )
    recipient, vk = obj["age_recipient"], obj["verify_key"]
    if not isinstance(recipient, str) or not isinstance(vk, str):
        raise TransitionError(f"transition statement: {where} keys must be strings")
    try:
        canonical = str(parse_recipient(recipient))
        VerifyKey.from_text(vk)
    except (AgeError, KeyFormatError, ValueError) as e:
        raise TransitionError(f"transition statement: {where}: {e}") from None
    if canonical != recipient:
        raise TransitionError(f"transition statement: {where}.age_recipient not canonical")
    return recipient, vk


def verify_transition(
    text: str, *, old_verify_key: VerifyKey | str, desk: str | None = None
) -> Transition:
    """Verify ``text`` against the old key the caller trusts; return what it states.

    Raises :class:`TransitionError` unless the old key signed it, the payload names that
    very key as ``old`` (and ``desk``, if given), and the new key it names signed it too.
    """
    old_vk = (
        old_verify_key
        if isinstance(old_verify_key, VerifyKey)
        else VerifyKey.from_text(old_verify_key)
    )
    if not isinstance(text, str) or len(text) > MAX_STATEMENT_CHARS:
        raise TransitionError(
            f"transition statement: not a string of at most {MAX_STATEMENT_CHARS} characters"
        )
    text = text.strip()
    parts = text.split(".")
    if len(parts) != 4 or parts[0] != PREFIX:
        raise TransitionError(f"transition statement: expected {PREFIX}.<payload>.<sig>.<sig>")
    payload = _unb64(parts[1], "payload")
    sig_old = _unb64(parts[2], "old signature")
    sig_new = _unb64(parts[3], "new signature")
    if len(sig_old) != SIGNATURE_SIZE or len(sig_new) != SIGNATURE_SIZE:
        raise TransitionError("transition statement: a signature has the wrong length")
    try:
        old_vk.verify(payload, sig_old, context=CONTEXT_KEY_TRANSITION)
    except BadSignature:
        raise TransitionError(
            "transition statement: not signed by the desk's current key"
        ) from None

    # Signed by a key we trust: only now is the payload read.
    try:
        doc = strict_json.loads(payload, max_bytes=MAX_STATEMENT_CHARS, max_depth=3)
    except strict_json.StrictJSONError as e:
        raise TransitionError(f"transition statement: {e}") from None
    if not isinstance(doc, dict) or set(doc) != _FIELDS:
        raise TransitionError("transition statement: wrong members")
    if doc["format"] != _FORMAT or type(doc["version"]) is not int or doc["version"] != _VERSION:
        raise TransitionError("transition statement: unknown format or version")
    if _canonical(doc) != payload:
        raise TransitionError("transition statement: payload is not canonical JSON")
    if not ids.is_desk_id(doc["desk"]):
        raise TransitionError("transition statement: malformed desk id")
    if desk is not None and doc["desk"] != desk:
        raise TransitionError(f"transition statement is for desk {doc['desk']!r}, not {desk!r}")
    day = doc["day"]
    if not ids.is_day(day):
        raise TransitionError("transition statement: malformed day")
    old = _key_pair(doc["old"], "old")
    new = _key_pair(doc["new"], "new")
    if old[1] != str(old_vk):
        raise TransitionError("transition statement: names another old key than the signer")
    if old[0] == new[0] or old[1] == new[1]:
        raise TransitionError("transition statement: the new keys equal the old ones")
    try:
        VerifyKey.from_text(new[1]).verify(payload, sig_new, context=CONTEXT_KEY_TRANSITION)
    except BadSignature:
        raise TransitionError("transition statement: not signed by the new key it names") from None
    return Transition(
        desk=doc["desk"],
        day=day,
        old_recipient=old[0],
        old_verify_key=old[1],
        new_recipient=new[0],
        new_verify_key=new[1],
        text=text,
    )
