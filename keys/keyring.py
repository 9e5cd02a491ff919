"""The coalition keyring: which desks exist and which public keys are theirs.

The file format (docs/keyring-format.md)::

    {"version": 1,
     "desks": [{"id": "smex",
                "names": {"en": "...", "ar": "...", "fr": "..."},
                "age_recipient": "age1...",
                "verify_key": "ed25519:...",
                "fingerprint": "3F9A 0C11 ..."}]}

A desk's own ``desk.json`` (written by ``intake-keys generate``) is one entry of that list.

A desk whose keys were replaced (``intake-keys rotate``, then ``intake-keys keyring
replace``) keeps its earlier keys in a ``previous`` list, oldest first, each with the
UTC day it was replaced here and either the transition statement its old and new keys
signed (keys/transition.py) or ``"lost_key": true`` for a key that was gone. The chain
is verified whenever a keyring is read: each statement must be signed by the key it
retires and by the next one. A keyring with such a list is version 2
(docs/key-rotation.md, docs/adr/0011-key-rotation.md); one without stays version 1, so
that what older readers accept is unchanged.
Everything is validated before a :class:`Keyring` exists: exact key sets, types, bounded
sizes, parseable and canonical keys, a fingerprint that matches the keys, no duplicate
ids, recipients or verify keys. Errors name the desk and the field.

A keyring is all classic (X25519) or all post-quantum (mlkem768x25519) desks, never both
(docs/adr/0008-post-quantum-desks.md): a report goes to every desk it names in one age
file, and age refuses to mix the two kinds in a file, rightly, since a classic stanza
beside a post-quantum one would let a recording adversary with a future quantum
computer open the file. Refusing the mix here refuses it everywhere a keyring is read:
``intake-keys keyring check``, the server's start-up, and the desks' clients.
"""

from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from keys import ids, strict_json
from keys.age import AgeError, parse_recipient
from keys.fingerprint import desk_fingerprint
from keys.fs import atomic_write_bytes
from keys.signing import KeyFormatError, VerifyKey
from keys.transition import Transition, TransitionError, verify_transition

__all__ = [
    "LANGUAGES",
    "Adoption",
    "MAX_KEYRING_BYTES",
    "Desk",
    "Keyring",
    "PreviousKey",
    "KeyringError",
    "desk_entry_from_json",
    "load_desk_entry",
]

LANGUAGES: Final = ("en", "ar", "fr")
MAX_KEYRING_BYTES: Final = 1024 * 1024
MAX_DESKS: Final = 256
MAX_NAME_CHARS: Final = 120
_VERSION: Final = 1
#: The version of a keyring that records previous keys (a desk was rotated).
_VERSION_ROTATED: Final = 2
MAX_PREVIOUS: Final = 16
_DESK_FIELDS: Final = frozenset({"id", "names", "age_recipient", "verify_key", "fingerprint"})
_OPTIONAL_DESK_FIELDS: Final = frozenset({"previous"})
_PREVIOUS_FIELDS: Final = frozenset({"age_recipient", "verify_key", "replaced"})
_TOP_FIELDS: Final = frozenset({"version", "desks"})


class KeyringError(ValueError):
    """The keyring (or a desk entry) is malformed; the message names desk and field."""


def _parse_json(data: bytes, what: str) -> Any:
    try:
        return strict_json.loads(data, max_bytes=MAX_KEYRING_BYTES, max_depth=6)
    except strict_json.StrictJSONError as e:
        raise KeyringError(f"{what}: {e}") from None


def _check_name(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise KeyringError(f"{where}: must be a string")
    if not value.strip():
        raise KeyringError(f"{where}: must not be empty")
    if len(value) > MAX_NAME_CHARS:
        raise KeyringError(f"{where}: longer than {MAX_NAME_CHARS} characters")
    # Control characters (Cc) could forge lines in a terminal; bidi overrides would let a
    # name display as another. Plain letters, marks, spaces and punctuation only.
    for c in value:
        cat = unicodedata.category(c)
        if cat == "Cc" or (cat == "Cf" and c not in "\u200c\u200d") or cat in ("Cs", "Co", "Cn"):
            raise KeyringError(f"{where}: contains a control or formatting character")
    if value != value.strip():
        raise KeyringError(f"{where}: has leading or trailing white space")
    return value


@dataclass(frozen=True)
class PreviousKey:
    """A key a desk used before: its public keys, the UTC day it was replaced in this
    keyring, and how: ``transition`` (the statement both keys signed) or ``lost_key``."""

    recipient: str
    verify_key: str
    replaced: str
    transition: str | None = None
    lost_key: bool = False

    def verify_key_obj(self) -> VerifyKey:
        return VerifyKey.from_text(self.verify_key)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "age_recipient": self.recipient,
            "verify_key": self.verify_key,
            "replaced": self.replaced,
        }
        if self.lost_key:
            d["lost_key"] = True
        else:
            d["transition"] = self.transition
        return d

    @classmethod
    def from_dict(cls, obj: object, where: str) -> PreviousKey:
        if not isinstance(obj, dict):
            raise KeyringError(f"{where}: must be a JSON object")
        extra = set(obj) - _PREVIOUS_FIELDS
        if extra not in ({"transition"}, {"lost_key"}) or not set(obj) >= _PREVIOUS_FIELDS:
            raise KeyringError(
                f"{where}: must have exactly age_recipient, verify_key, replaced and one of "
                "transition or lost_key"
            )
        recipient, vk, replaced = obj["age_recipient"], obj["verify_key"], obj["replaced"]
        if not isinstance(recipient, str) or len(recipient) > 4096:
            raise KeyringError(f"{where}: field 'age_recipient' must be a string")
        try:
            canonical = str(parse_recipient(recipient))
        except (AgeError, ValueError) as e:
            raise KeyringError(f"{where}: field 'age_recipient' does not parse: {e}") from None
        if canonical != recipient:
            raise KeyringError(f"{where}: field 'age_recipient' is not in canonical form")
        if not isinstance(vk, str):
            raise KeyringError(f"{where}: field 'verify_key' must be a string")
        try:
            VerifyKey.from_text(vk)
        except KeyFormatError as e:
            raise KeyringError(f"{where}: field 'verify_key': {e}") from None
        if not ids.is_day(replaced):
            raise KeyringError(f"{where}: field 'replaced' must be a day YYYY-MM-DD")
        if "lost_key" in obj:
            if obj["lost_key"] is not True:
                raise KeyringError(f"{where}: field 'lost_key' can only be true")
            return cls(recipient, vk, replaced, None, True)
        text = obj["transition"]
        if not isinstance(text, str):
            raise KeyringError(f"{where}: field 'transition' must be a string")
        return cls(recipient, vk, replaced, text, False)


@dataclass(frozen=True)
class Desk:
    """One coalition desk's public entry (and, once rotated, its previous keys)."""

    id: str
    names: Mapping[str, str]
    recipient: str
    verify_key: str
    fingerprint: str
    previous: tuple[PreviousKey, ...] = ()

    def __hash__(self) -> int:
        # names is a read-only mapping (unhashable); the keys identify a desk anyway.
        return hash((self.id, self.recipient, self.verify_key, self.fingerprint))

    def same_keys(self, other: Desk) -> bool:
        """The same desk with the same current keys (names and history aside)."""
        return (self.id, self.recipient, self.verify_key) == (
            other.id,
            other.recipient,
            other.verify_key,
        )

    def name(self, lang: str) -> str:
        if lang not in LANGUAGES:
            raise ValueError(f"unknown language {lang!r}; expected one of {LANGUAGES}")
        return self.names[lang]

    @property
    def post_quantum(self) -> bool:
        """True for an mlkem768x25519 (age1pq1…) recipient, False for X25519."""
        return parse_recipient(self.recipient).label == "postquantum"

    def verify_key_obj(self) -> VerifyKey:
        return VerifyKey.from_text(self.verify_key)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "names": {lang: self.names[lang] for lang in LANGUAGES},
            "age_recipient": self.recipient,
            "verify_key": self.verify_key,
            "fingerprint": self.fingerprint,
        }
        if self.previous:
            d["previous"] = [p.to_dict() for p in self.previous]
        return d

    def transitions(self) -> list[Transition | None]:
        """The verified transition of each previous key (None for a lost key), oldest
        first. Raises :class:`KeyringError` if the chain does not hold."""
        out: list[Transition | None] = []
        for i, prev in enumerate(self.previous):
            where = f"desk {self.id!r}: previous[{i}]"
            nxt = (
                (self.previous[i + 1].recipient, self.previous[i + 1].verify_key)
                if i + 1 < len(self.previous)
                else (self.recipient, self.verify_key)
            )
            if i and prev.replaced < self.previous[i - 1].replaced:
                raise KeyringError(f"{where}: replaced before the key it replaced")
            if prev.lost_key:
                out.append(None)
                continue
            assert prev.transition is not None  # noqa: S101 - from_dict guarantees it
            try:
                t = verify_transition(prev.transition, old_verify_key=prev.verify_key, desk=self.id)
            except TransitionError as e:
                raise KeyringError(f"{where}: {e}") from None
            if t.old_recipient != prev.recipient or (t.new_recipient, t.new_verify_key) != nxt:
                raise KeyringError(f"{where}: the transition statement is about other keys")
            out.append(t)
        return out

    def to_json(self) -> bytes:
        return (json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n").encode("utf-8")

    @classmethod
    def create(
        cls, desk_id: str, names: Mapping[str, str], recipient: str, verify_key: str
    ) -> Desk:
        """Build and validate an entry, computing its fingerprint."""
        return cls.from_dict(
            {
                "id": desk_id,
                "names": dict(names),
                "age_recipient": recipient,
                "verify_key": verify_key,
                "fingerprint": desk_fingerprint(recipient, verify_key),
            }
        )

    @classmethod
    def from_dict(cls, obj: object, where: str = "desk") -> Desk:
        if not isinstance(obj, dict):
            raise KeyringError(f"{where}: must be a JSON object")
        desk_id = obj.get("id")
        if not ids.is_desk_id(desk_id):
            raise KeyringError(f"{where}: field 'id' must match {ids.DESK_ID_PATTERN}")
        where = f"desk {desk_id!r}"
        unknown = set(obj) - _DESK_FIELDS - _OPTIONAL_DESK_FIELDS
        if unknown:
            raise KeyringError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        missing = _DESK_FIELDS - set(obj)
        if missing:
            raise KeyringError(f"{where}: missing field(s) {', '.join(sorted(missing))}")

        names = obj["names"]
        if not isinstance(names, dict):
            raise KeyringError(f"{where}: field 'names' must be an object")
        if set(names) != set(LANGUAGES):
            raise KeyringError(f"{where}: field 'names' must have exactly the keys en, ar, fr")
        checked = {lang: _check_name(names[lang], f"{where}: names.{lang}") for lang in LANGUAGES}

        recipient = obj["age_recipient"]
        if not isinstance(recipient, str) or len(recipient) > 4096:
            raise KeyringError(f"{where}: field 'age_recipient' must be a string")
        try:
            canonical = str(parse_recipient(recipient))
        except (AgeError, ValueError) as e:
            raise KeyringError(f"{where}: field 'age_recipient' does not parse: {e}") from None
        if canonical != recipient:
            raise KeyringError(f"{where}: field 'age_recipient' is not in canonical form")

        vk_text = obj["verify_key"]
        if not isinstance(vk_text, str):
            raise KeyringError(f"{where}: field 'verify_key' must be a string")
        try:
            vk = VerifyKey.from_text(vk_text)
        except KeyFormatError as e:
            raise KeyringError(f"{where}: field 'verify_key': {e}") from None

        fp = obj["fingerprint"]
        if not isinstance(fp, str):
            raise KeyringError(f"{where}: field 'fingerprint' must be a string")
        expected = desk_fingerprint(recipient, vk)
        if fp != expected:
            raise KeyringError(
                f"{where}: field 'fingerprint' does not match the keys "
                f"(the keys give {expected}); the entry was altered or corrupted"
            )
        previous: tuple[PreviousKey, ...] = ()
        if "previous" in obj:
            prev = obj["previous"]
            if not isinstance(prev, list) or not 1 <= len(prev) <= MAX_PREVIOUS:
                raise KeyringError(
                    f"{where}: field 'previous' must be a list of 1 to {MAX_PREVIOUS} keys"
                )
            previous = tuple(
                PreviousKey.from_dict(p, f"{where}: previous[{i}]") for i, p in enumerate(prev)
            )
        desk = cls(
            id=desk_id,
            names=MappingProxyType(checked),
            recipient=recipient,
            verify_key=vk_text,
            fingerprint=fp,
            previous=previous,
        )
        keys = [(desk.recipient, desk.verify_key), *((p.recipient, p.verify_key) for p in previous)]
        if len({r for r, _ in keys}) != len(keys) or len({v for _, v in keys}) != len(keys):
            raise KeyringError(
                f"{where}: a key appears twice in the desk's current and "
                "previous keys (a retired key cannot come back)"
            )
        desk.transitions()  # the chain of statements must hold
        return desk

    def replaced_by(self, new: Desk, *, day: str, transition: Transition | None) -> Desk:
        """This desk with ``new``'s keys (and names) current and its own keys recorded as
        previous: with ``transition`` (verified against this desk's key by the caller)
        or, if None, as a lost key."""
        if new.id != self.id:
            raise KeyringError(f"desk {new.id!r} cannot replace desk {self.id!r}")
        if len(self.previous) >= MAX_PREVIOUS:
            raise KeyringError(f"desk {self.id!r}: already {MAX_PREVIOUS} previous keys")
        record = PreviousKey(
            self.recipient,
            self.verify_key,
            day,
            transition.text if transition is not None else None,
            transition is None,
        )
        return Desk.from_dict(
            {**new.to_dict(), "previous": [p.to_dict() for p in (*self.previous, record)]}
        )


def load_desk_entry(path: str | os.PathLike[str]) -> Desk:
    """Read one desk entry (a ``desk.json``)."""
    p = Path(path)
    with open(p, "rb") as f:
        data = f.read(MAX_KEYRING_BYTES + 1)
    return desk_entry_from_json(data, str(p))


def desk_entry_from_json(data: bytes, where: str) -> Desk:
    """One desk entry from the bytes of a ``desk.json`` (``where`` names it in errors)."""
    return Desk.from_dict(_parse_json(data, where), where=where)


class Keyring:
    """A validated, immutable list of desks."""

    __slots__ = ("_by_id", "_desks", "_post_quantum")

    def __init__(self, desks: Iterable[Desk]) -> None:
        desks = tuple(desks)
        if len(desks) > MAX_DESKS:
            raise KeyringError(f"keyring: more than {MAX_DESKS} desks")
        by_id: dict[str, Desk] = {}
        recipients: dict[str, str] = {}
        verify_keys: dict[str, str] = {}
        for desk in desks:
            if desk.id in by_id:
                raise KeyringError(f"desk {desk.id!r}: field 'id' is used twice")
            # A key is one desk's, once: current and previous keys alike, so that a
            # desk can neither take another's old key nor go back to one it retired.
            for recipient, vk in (
                (desk.recipient, desk.verify_key),
                *((p.recipient, p.verify_key) for p in desk.previous),
            ):
                if recipient in recipients:
                    raise KeyringError(
                        f"desk {desk.id!r}: field 'age_recipient' is also desk "
                        f"{recipients[recipient]!r}'s"
                    )
                if vk in verify_keys:
                    raise KeyringError(
                        f"desk {desk.id!r}: field 'verify_key' is also desk {verify_keys[vk]!r}'s"
                    )
                recipients[recipient] = desk.id
                verify_keys[vk] = desk.id
            by_id[desk.id] = desk
        quantum = [d.id for d in desks if d.post_quantum]
        if quantum and len(quantum) != len(desks):
            classic = [d.id for d in desks if d.id not in quantum]
            raise KeyringError(
                f"keyring: desk(s) {', '.join(quantum)} have post-quantum keys and desk(s) "
                f"{', '.join(classic)} classic ones; a keyring must be all one kind, since a "
                "report to both would leave a classic copy (docs/adr/0008-post-quantum-desks.md)"
            )
        self._post_quantum = bool(quantum)
        self._desks = desks
        self._by_id = by_id

    @classmethod
    def from_json(cls, data: bytes) -> Keyring:
        obj = _parse_json(data, "keyring")
        if not isinstance(obj, dict):
            raise KeyringError("keyring: must be a JSON object")
        unknown = set(obj) - _TOP_FIELDS
        if unknown:
            raise KeyringError(f"keyring: unknown field(s) {', '.join(sorted(unknown))}")
        version = obj.get("version")
        # bool is an int in Python; `true` is not a version.
        if type(version) is not int or version not in (_VERSION, _VERSION_ROTATED):
            raise KeyringError(f"keyring: field 'version' must be {_VERSION} or {_VERSION_ROTATED}")
        desks = obj.get("desks")
        if not isinstance(desks, list):
            raise KeyringError("keyring: field 'desks' must be a list")
        keyring = cls(Desk.from_dict(d, where=f"desks[{i}]") for i, d in enumerate(desks))
        if version != keyring.version:
            raise KeyringError(
                f"keyring: field 'version' must be {keyring.version}: version 2 is for a "
                "keyring with previous keys, and only for one"
            )
        return keyring

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Keyring:
        with open(path, "rb") as f:
            data = f.read(MAX_KEYRING_BYTES + 1)
        return cls.from_json(data)

    @property
    def version(self) -> int:
        """1, or 2 once a desk has previous keys (which readers of version 1 lack)."""
        return _VERSION_ROTATED if any(d.previous for d in self._desks) else _VERSION

    def to_json(self) -> bytes:
        doc = {"version": self.version, "desks": [d.to_dict() for d in self._desks]}
        return (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode("utf-8")

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        atomic_write_bytes(path, self.to_json(), overwrite=overwrite)

    def with_desk(self, desk: Desk) -> Keyring:
        """A new keyring with ``desk`` appended (duplicates are refused)."""
        return Keyring((*self._desks, desk))

    def replacing(self, desk: Desk) -> Keyring:
        """A new keyring with the entry of ``desk.id`` swapped for ``desk`` (in place)."""
        if desk.id not in self._by_id:
            raise KeyringError(f"desk {desk.id!r} is not in the keyring")
        return Keyring(desk if d.id == desk.id else d for d in self._desks)

    def without(self, desk_id: str) -> Keyring:
        """A new keyring without desk ``desk_id``."""
        if desk_id not in self._by_id:
            raise KeyringError(f"desk {desk_id!r} is not in the keyring")
        return Keyring(d for d in self._desks if d.id != desk_id)

    @property
    def desks(self) -> tuple[Desk, ...]:
        return self._desks

    @property
    def post_quantum(self) -> bool:
        """Every desk is post-quantum (the keyring cannot mix kinds); False when empty."""
        return self._post_quantum

    def get(self, desk_id: str) -> Desk | None:
        return self._by_id.get(desk_id)

    def __iter__(self) -> Iterator[Desk]:
        return iter(self._desks)

    def __len__(self) -> int:
        return len(self._desks)


@dataclass(frozen=True)
class Adoption:
    """What :func:`adopt_keyring` did: the keyring to keep and what to tell the user."""

    keyring: Keyring
    changed: bool
    notes: tuple[str, ...]


def adopt_keyring(current: Keyring, offered: Keyring) -> Adoption:
    """The keyring a vault or transfer machine should hold, given ``offered`` (from a
    server-signed bundle), and a sentence for every difference.

    Only key rotations of desks already held are taken: a desk whose keys differ is
    adopted when ``offered`` records this holder's current key of it among its previous
    keys (the chain of transition statements from there on is verified by the keyring
    itself; a lost-key step is vouched for only by the server, and said so). A desk
    whose new keys do not descend from the held ones, and a desk the holder does not
    know, are not adopted: adding or replacing a desk without its old key's word is a
    coalition decision, checked by fingerprint, not something a server can push.
    An offered keyring older than the held one (a cached bundle) changes nothing.
    """
    desks: list[Desk] = []
    notes: list[str] = []
    changed = False
    for held in current:
        new = offered.get(held.id)
        if new is None or new.same_keys(held):
            desks.append(held)
            continue
        if any(p.verify_key == new.verify_key for p in held.previous):
            desks.append(held)  # the offered keyring is older than ours
            continue
        chain = [
            i
            for i, p in enumerate(new.previous)
            if p.verify_key == held.verify_key and p.recipient == held.recipient
        ]
        if not chain:
            notes.append(
                f"desk {held.id}: the server's keyring gives it other keys "
                f"({new.fingerprint}) that its current key did not sign for: NOT adopted; "
                "ask the coalition"
            )
            desks.append(held)
            continue
        steps = new.previous[chain[0] :]
        desks.append(new)
        changed = True
        if any(p.lost_key for p in steps):
            notes.append(
                f"desk {held.id}: new keys {new.fingerprint} adopted; its old key was "
                "declared LOST, so only the server vouches for the new one: compare this "
                "fingerprint with the desk's before trusting it"
            )
        else:
            notes.append(
                f"desk {held.id}: new keys {new.fingerprint} adopted (transition signed by "
                "its old and new keys)"
            )
    # Desks the holder does not know are left out silently: a vault made with only its
    # own desk would otherwise hear about every other desk at every import.
    return Adoption(Keyring(desks) if changed else current, changed, tuple(notes))
