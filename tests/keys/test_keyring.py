"""The coalition keyring: valid files load; each kind of bad entry fails, naming desk and field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from keys.age import HybridIdentity, X25519Identity
from keys.fingerprint import desk_fingerprint
from keys.keyring import MAX_KEYRING_BYTES, Desk, Keyring, KeyringError, load_desk_entry
from keys.signing import SigningKey


def _entry(desk_id: str, *, pq: bool = False) -> dict[str, Any]:
    ident = HybridIdentity.generate() if pq else X25519Identity.generate()
    vk = str(SigningKey.generate().verify_key)
    recipient = str(ident.recipient())
    return {
        "id": desk_id,
        "names": {"en": f"Desk {desk_id}", "ar": "مكتب", "fr": f"Bureau {desk_id}"},
        "age_recipient": recipient,
        "verify_key": vk,
        "fingerprint": desk_fingerprint(recipient, vk),
    }


def _doc(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"version": 1, "desks": list(entries)}


def _load(doc: object) -> Keyring:
    return Keyring.from_json(json.dumps(doc, ensure_ascii=False).encode())


def test_valid_keyring_round_trip(tmp_path: Path) -> None:
    doc = _doc(_entry("smex"), _entry("gchr"), _entry("lab"))
    keyring = _load(doc)
    assert [d.id for d in keyring.desks] == ["smex", "gchr", "lab"]
    assert not keyring.post_quantum
    smex = keyring.get("smex")
    assert smex is not None
    assert smex.name("ar") == "مكتب"
    assert smex.recipient == doc["desks"][0]["age_recipient"]
    assert keyring.get("nope") is None
    with pytest.raises(ValueError, match="unknown language"):
        smex.name("de")
    path = tmp_path / "keyring.json"
    keyring.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    again = Keyring.load(path)
    assert again.desks == keyring.desks
    assert json.loads(path.read_bytes()) == doc


def test_desk_is_frozen_and_names_read_only() -> None:
    desk = Desk.from_dict(_entry("smex"))
    with pytest.raises(AttributeError):
        desk.id = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        desk.names["en"] = "x"  # type: ignore[index]
    assert hash(desk) == hash(Desk.from_dict(desk.to_dict()))


def _mutated(path: str, value: object) -> dict[str, Any]:
    entry = _entry("smex")
    target = entry
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return entry


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("id", "SMEX", "'id' must match"),
        ("id", "a" * 33, "'id' must match"),
        ("id", "", "'id' must match"),
        ("id", "smex/..", "'id' must match"),
        ("id", 7, "'id' must match"),
        ("names.en", "", "desk 'smex': names.en: must not be empty"),
        ("names.ar", "   ", "names.ar: must not be empty"),
        ("names.fr", "x" * 121, "names.fr: longer than"),
        ("names.en", "line\nbreak", "names.en: contains a control"),
        ("names.ar", "\u202eevil", "names.ar: contains a control or formatting"),
        ("names.en", " padded", "names.en: has leading"),
        ("names.fr", 3, "names.fr: must be a string"),
        ("names.de", "Deutsch", "names' must have exactly the keys"),
        ("names.fr", _DELETE, "names' must have exactly the keys"),
        ("names", ["en"], "'names' must be an object"),
        ("age_recipient", "age1qqqq", "desk 'smex': field 'age_recipient' does not parse"),
        ("age_recipient", "AGE-SECRET-KEY-1X", "'age_recipient' does not parse"),
        ("age_recipient", 5, "'age_recipient' must be a string"),
        ("verify_key", "ed25519:abc", "desk 'smex': field 'verify_key'"),
        ("verify_key", "ssh-ed25519 AAAA", "field 'verify_key'"),
        ("fingerprint", "0000 0000 0000 0000 0000 0000 0000 0000", "'fingerprint' does not match"),
        ("fingerprint", None, "'fingerprint' must be a string"),
        ("extra", "x", "desk 'smex': unknown field"),
        ("verify_key", _DELETE, "desk 'smex': missing field"),
    ],
)
def test_each_bad_field_is_named(path: str, value: object, message: str) -> None:
    with pytest.raises(KeyringError, match=message):
        _load(_doc(_mutated(path, value)))


def test_non_canonical_recipient_is_refused() -> None:
    entry = _entry("smex")
    entry["age_recipient"] = " " + entry["age_recipient"]
    with pytest.raises(KeyringError, match="canonical"):
        _load(_doc(entry))


def test_fingerprint_of_another_desk_is_refused() -> None:
    a, b = _entry("a"), _entry("b")
    a["fingerprint"] = b["fingerprint"]
    with pytest.raises(KeyringError, match="desk 'a': field 'fingerprint'"):
        _load(_doc(a, b))


def test_duplicates_are_refused() -> None:
    a = _entry("a")
    twin = copy.deepcopy(a)
    with pytest.raises(KeyringError, match="desk 'a': field 'id' is used twice"):
        _load(_doc(a, twin))
    twin["id"] = "b"
    with pytest.raises(KeyringError, match="desk 'b': field 'age_recipient' is also desk 'a'"):
        _load(_doc(a, twin))
    other = _entry("c")
    other["verify_key"] = a["verify_key"]
    other["fingerprint"] = desk_fingerprint(other["age_recipient"], a["verify_key"])
    with pytest.raises(KeyringError, match="desk 'c': field 'verify_key' is also desk 'a'"):
        _load(_doc(a, other))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"[]", "must be a JSON object"),
        (b'{"version": 1}', "'desks' must be a list"),
        (b'{"version": 2, "desks": []}', "'version' must be 1"),
        (b'{"version": true, "desks": []}', "'version' must be 1"),
        (b'{"version": "1", "desks": []}', "'version' must be 1"),
        (b'{"version": 1, "desks": [], "x": 1}', "unknown field"),
        (b'{"version": 1, "version": 1, "desks": []}', "duplicate JSON key 'version'"),
        (b'{"version": 1, "desks": [NaN]}', "invalid JSON number NaN"),
        (b'{"version": 1, "desks": [1]}', r"desks\[0\]: must be a JSON object"),
        (b'{"version": 1, "desks": ', "not valid JSON"),
        (b'\xff{"version": 1, "desks": []}', "not valid UTF-8"),
        (b" " * (MAX_KEYRING_BYTES + 1), "larger than"),
    ],
)
def test_malformed_files_are_refused(raw: bytes, message: str) -> None:
    with pytest.raises(KeyringError, match=message):
        Keyring.from_json(raw)


def test_empty_keyring_is_valid_and_with_desk_refuses_duplicates() -> None:
    keyring = Keyring.from_json(b'{"version": 1, "desks": []}')
    assert len(keyring) == 0
    desk = Desk.from_dict(_entry("smex"))
    keyring = keyring.with_desk(desk)
    assert keyring.get("smex") == desk
    with pytest.raises(KeyringError, match="used twice"):
        keyring.with_desk(desk)


def test_desk_entry_file(tmp_path: Path) -> None:
    entry = _entry("smex")
    (tmp_path / "desk.json").write_text(json.dumps(entry))
    assert load_desk_entry(tmp_path / "desk.json").to_dict() == entry
    entry["fingerprint"] = entry["fingerprint"].lower()
    (tmp_path / "bad.json").write_text(json.dumps(entry))
    with pytest.raises(KeyringError, match="fingerprint"):
        load_desk_entry(tmp_path / "bad.json")


def test_post_quantum_keyring_accepted() -> None:
    keyring = _load(_doc(_entry("smex", pq=True), _entry("gchr", pq=True)))
    assert keyring.post_quantum
    assert all(d.post_quantum for d in keyring)
    assert not Keyring(()).post_quantum


def test_mixed_keyring_refused_naming_both_kinds() -> None:
    doc = _doc(_entry("smex"), _entry("pq-desk", pq=True), _entry("gchr"))
    with pytest.raises(KeyringError, match=r"pq-desk have post-quantum keys .* smex, gchr"):
        _load(doc)
    classic = _load(_doc(_entry("smex")))
    with pytest.raises(KeyringError, match="all one kind"):
        classic.with_desk(Desk.from_dict(_entry("pq-desk", pq=True)))
