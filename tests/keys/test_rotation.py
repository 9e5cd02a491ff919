"""Key rotation in keys/: transition statements, previous keys in the keyring, adoption,
`intake-keys rotate` and `keyring replace/remove` (docs/key-rotation.md, ADR 0011)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keys.age import X25519Identity
from keys.identity import TRANSITION_FILE, load_desk, rotate_desk
from keys.identity import generate_desk as _generate
from keys.keyring import Desk, Keyring, KeyringError, adopt_keyring
from keys.signing import CONTEXT_KEY_TRANSITION, CONTEXTS, SigningKey
from keys.transition import TransitionError, sign_transition, verify_transition

PASSPHRASE = "correct horse battery staple"  # noqa: S105 - test desk
NAMES = {"en": "SMEX", "ar": "سمكس", "fr": "SMEX"}


class Keys:
    """A desk's keys held in memory: an identity and a signing key."""

    def __init__(self, desk_id: str = "smex") -> None:
        self.identity = X25519Identity.generate()
        self.signing = SigningKey.generate()
        self.desk = Desk.create(desk_id, NAMES, str(self.identity.recipient()),
                                str(self.signing.verify_key))


def statement(old: Keys, new: Keys, desk: str = "smex") -> str:
    return sign_transition(desk, old_recipient=old.desk.recipient, old_key=old.signing,
                           new_recipient=new.desk.recipient, new_key=new.signing,
                           day=dt.date(2026, 12, 4))


def _parts(text: str) -> list[str]:
    return text.split(".")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# --- statements ------------------------------------------------------------------------


def test_the_context_is_registered() -> None:
    assert CONTEXT_KEY_TRANSITION in CONTEXTS


def test_a_statement_verifies_against_the_old_key() -> None:
    old, new = Keys(), Keys()
    text = statement(old, new)
    t = verify_transition(text, old_verify_key=old.desk.verify_key, desk="smex")
    assert (t.desk, t.day) == ("smex", "2026-12-04")
    assert (t.old_recipient, t.old_verify_key) == (old.desk.recipient, old.desk.verify_key)
    assert (t.new_recipient, t.new_verify_key) == (new.desk.recipient, new.desk.verify_key)
    assert t.text == text


def test_another_old_key_or_desk_is_refused() -> None:
    old, new, other = Keys(), Keys(), Keys()
    text = statement(old, new)
    with pytest.raises(TransitionError, match="not signed by the desk's current key"):
        verify_transition(text, old_verify_key=other.desk.verify_key)
    with pytest.raises(TransitionError, match="for desk 'smex', not 'gchr'"):
        verify_transition(text, old_verify_key=old.desk.verify_key, desk="gchr")


def test_the_new_key_must_have_signed() -> None:
    old, new, other = Keys(), Keys(), Keys()
    prefix, payload, sig_old, _ = _parts(statement(old, new))
    forged_new = _b64(other.signing.sign(base64.urlsafe_b64decode(payload + "=="),
                                         context=CONTEXT_KEY_TRANSITION))
    with pytest.raises(TransitionError, match="not signed by the new key"):
        verify_transition(".".join((prefix, payload, sig_old, forged_new)),
                          old_verify_key=old.desk.verify_key)


def test_a_signature_under_another_context_does_not_count() -> None:
    old, new = Keys(), Keys()
    prefix, payload, _, sig_new = _parts(statement(old, new))
    raw = base64.urlsafe_b64decode(payload + "==")
    wrong = _b64(old.signing.sign(raw, context="amana/bundle/v1"))
    with pytest.raises(TransitionError, match="current key"):
        verify_transition(".".join((prefix, payload, wrong, sig_new)),
                          old_verify_key=old.desk.verify_key)


@pytest.mark.parametrize("mangle", [
    lambda t: t.replace("amana-key-transition-v1", "amana-key-transition-v2"),
    lambda t: t + ".x",
    lambda t: t.replace(".", ".=", 1),
    lambda t: t[:-3],
    lambda t: "",
    lambda t: "x" * 20_000,
])
def test_malformed_framing_is_refused(mangle: Any) -> None:
    old, new = Keys(), Keys()
    with pytest.raises(TransitionError):
        verify_transition(mangle(statement(old, new)), old_verify_key=old.desk.verify_key)


def _signed_payload(old: Keys, new: Keys, doc: dict[str, Any], *, canonical: bool = True
                    ) -> str:
    raw = (json.dumps(doc, sort_keys=True, separators=(",", ":")) if canonical
           else json.dumps(doc)).encode()
    sigs = [k.sign(raw, context=CONTEXT_KEY_TRANSITION) for k in (old.signing, new.signing)]
    return ".".join(("amana-key-transition-v1", _b64(raw), *map(_b64, sigs)))


def _payload(old: Keys, new: Keys) -> dict[str, Any]:
    return {"format": "amana-key-transition", "version": 1, "desk": "smex",
            "day": "2026-12-04",
            "old": {"age_recipient": old.desk.recipient, "verify_key": old.desk.verify_key},
            "new": {"age_recipient": new.desk.recipient, "verify_key": new.desk.verify_key}}


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(version=2), "unknown format or version"),
    (lambda d: d.update(version=True), "unknown format or version"),
    (lambda d: d.update(extra=1), "wrong members"),
    (lambda d: d.update(day="2026-02-30"), "malformed day"),
    (lambda d: d.update(desk="SMEX"), "malformed desk id"),
    (lambda d: d["new"].update(note="x"), "exactly age_recipient and verify_key"),
    (lambda d: d.update(new=d["old"]), "equal the old ones"),
])
def test_signed_but_wrong_payloads_are_refused(change: Any, message: str) -> None:
    old, new = Keys(), Keys()
    doc = _payload(old, new)
    change(doc)
    with pytest.raises(TransitionError, match=message):
        verify_transition(_signed_payload(old, new, doc), old_verify_key=old.desk.verify_key)


def test_a_payload_naming_another_old_key_is_refused() -> None:
    old, new, other = Keys(), Keys(), Keys()
    doc = _payload(other, new)
    with pytest.raises(TransitionError, match="another old key"):
        verify_transition(_signed_payload(old, new, doc), old_verify_key=old.desk.verify_key)


def test_a_non_canonical_payload_is_refused() -> None:
    old, new = Keys(), Keys()
    text = _signed_payload(old, new, _payload(old, new), canonical=False)
    with pytest.raises(TransitionError, match="not canonical"):
        verify_transition(text, old_verify_key=old.desk.verify_key)


# --- the keyring's previous keys -------------------------------------------------------


def _rotated(old: Keys, new: Keys, *, lost: bool = False) -> Desk:
    t = None if lost else verify_transition(statement(old, new),
                                            old_verify_key=old.desk.verify_key)
    return old.desk.replaced_by(new.desk, day="2026-12-04", transition=t)


def test_replacement_records_the_old_key_and_round_trips() -> None:
    old, new, gchr = Keys(), Keys(), Keys("gchr")
    keyring = Keyring([old.desk, gchr.desk])
    assert keyring.version == 1
    rotated = keyring.replacing(_rotated(old, new))
    assert rotated.version == 2
    desk = rotated.get("smex")
    assert desk is not None
    assert desk.same_keys(new.desk)
    (prev,) = desk.previous
    assert (prev.recipient, prev.verify_key, prev.replaced) == (
        old.desk.recipient, old.desk.verify_key, "2026-12-04")
    assert not prev.lost_key
    again = Keyring.from_json(rotated.to_json())
    assert again.get("smex") == desk
    assert [d.id for d in again] == ["smex", "gchr"]


def test_a_lost_key_is_recorded_as_such() -> None:
    old, new = Keys(), Keys()
    desk = _rotated(old, new, lost=True)
    doc = json.loads(Keyring([desk]).to_json())
    assert doc["desks"][0]["previous"][0]["lost_key"] is True
    assert "transition" not in doc["desks"][0]["previous"][0]
    assert Keyring.from_json(Keyring([desk]).to_json()).get("smex") == desk


def test_a_chain_of_two_rotations_verifies() -> None:
    a, b, c = Keys(), Keys(), Keys()
    first = _rotated(a, b)
    t = verify_transition(statement(b, c), old_verify_key=b.desk.verify_key)
    second = first.replaced_by(c.desk, day="2026-12-05", transition=t)
    assert [p.verify_key for p in second.previous] == [a.desk.verify_key, b.desk.verify_key]
    assert Keyring.from_json(Keyring([second]).to_json()).get("smex") == second


def _doc_of(desk: Desk) -> dict[str, Any]:
    return json.loads(Keyring([desk]).to_json())


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(version=1), "version' must be 2"),
    (lambda d: d["desks"][0]["previous"][0].update(lost_key=True),
     "exactly age_recipient, verify_key, replaced and one of"),
    (lambda d: d["desks"][0]["previous"][0].pop("transition"), "one of transition or lost_key"),
    (lambda d: d["desks"][0]["previous"][0].update(replaced="04/12/2026"), "replaced"),
    (lambda d: d["desks"][0].update(previous=[]), "list of 1 to 16"),
])
def test_malformed_previous_records_are_refused(change: Any, message: str) -> None:
    doc = _doc_of(_rotated(Keys(), Keys()))
    change(doc)
    with pytest.raises(KeyringError, match=message):
        Keyring.from_json(json.dumps(doc).encode())


def test_a_statement_about_other_keys_is_refused_in_a_keyring() -> None:
    old, new, other = Keys(), Keys(), Keys()
    doc = _doc_of(_rotated(old, new))
    # The entry's current keys swapped for others, keeping the old statement.
    doc["desks"][0].update({k: other.desk.to_dict()[k]
                            for k in ("age_recipient", "verify_key", "fingerprint")})
    with pytest.raises(KeyringError, match="about other keys"):
        Keyring.from_json(json.dumps(doc).encode())


def test_a_statement_signed_by_someone_else_is_refused_in_a_keyring() -> None:
    old, new, mallory = Keys(), Keys(), Keys()
    doc = _doc_of(_rotated(old, new))
    doc["desks"][0]["previous"][0]["transition"] = statement(mallory, new)
    with pytest.raises(KeyringError, match="not signed by the desk's current key"):
        Keyring.from_json(json.dumps(doc).encode())


def test_a_retired_key_cannot_come_back_or_be_another_desks() -> None:
    old, new = Keys(), Keys()
    rotated = _rotated(old, new)
    with pytest.raises(KeyringError, match="also desk 'smex'"):
        Keyring([rotated, Desk.create("gchr", NAMES, old.desk.recipient,
                                      str(SigningKey.generate().verify_key))])
    t = verify_transition(statement(new, old), old_verify_key=new.desk.verify_key)
    with pytest.raises(KeyringError, match="a retired key cannot come back"):
        rotated.replaced_by(old.desk, day="2026-12-05", transition=t)


def test_remove_and_replace_name_unknown_desks() -> None:
    keyring = Keyring([Keys().desk])
    with pytest.raises(KeyringError, match="not in the keyring"):
        keyring.without("gchr")
    with pytest.raises(KeyringError, match="not in the keyring"):
        keyring.replacing(Keys("gchr").desk)
    assert len(keyring.without("smex")) == 0


# --- adoption by vaults and transfer machines ------------------------------------------


def test_adoption_takes_a_signed_rotation() -> None:
    old, new, gchr = Keys(), Keys(), Keys("gchr")
    held = Keyring([old.desk, gchr.desk])
    offered = held.replacing(_rotated(old, new))
    adoption = adopt_keyring(held, offered)
    assert adoption.changed
    assert adoption.keyring.get("smex") == offered.get("smex")
    (note,) = adoption.notes
    assert "adopted (transition signed by its old and new keys)" in note
    # Offered again, or an older keyring (a cached export) afterwards: nothing changes.
    assert not adopt_keyring(adoption.keyring, offered).changed
    assert adopt_keyring(adoption.keyring, held).keyring is adoption.keyring


def test_adoption_says_when_only_the_server_vouches() -> None:
    old, new = Keys(), Keys()
    adoption = adopt_keyring(Keyring([old.desk]), Keyring([_rotated(old, new, lost=True)]))
    assert adoption.changed
    assert "LOST" in adoption.notes[0]
    assert "compare this fingerprint" in adoption.notes[0]


def test_adoption_refuses_keys_the_held_key_did_not_sign_for() -> None:
    old, mallory, gchr = Keys(), Keys(), Keys("gchr")
    held = Keyring([old.desk])
    offered = Keyring([mallory.desk, gchr.desk])  # swapped, and a desk added
    adoption = adopt_keyring(held, offered)
    assert not adoption.changed
    assert adoption.keyring is held
    (note,) = adoption.notes
    assert "NOT adopted" in note


def test_adoption_through_two_rotations_at_once() -> None:
    a, b, c = Keys(), Keys(), Keys()
    t = verify_transition(statement(b, c), old_verify_key=b.desk.verify_key)
    twice = _rotated(a, b).replaced_by(c.desk, day="2026-12-05", transition=t)
    adoption = adopt_keyring(Keyring([a.desk]), Keyring([twice]))
    assert adoption.changed
    assert adoption.keyring.get("smex") == twice


# --- rotate_desk and the command line --------------------------------------------------


def test_rotate_desk_writes_new_keys_and_a_statement(tmp_path: Path) -> None:
    old = _generate("smex", NAMES, tmp_path / "old", PASSPHRASE, work_factor=10)
    new, text = rotate_desk(tmp_path / "old", tmp_path / "new", PASSPHRASE, work_factor=10)
    assert new.id == "smex"
    assert dict(new.names) == NAMES
    assert not new.same_keys(old)
    assert (tmp_path / "new" / TRANSITION_FILE).read_text().strip() == text
    t = verify_transition(text, old_verify_key=old.verify_key, desk="smex")
    assert (t.new_recipient, t.new_verify_key) == (new.recipient, new.verify_key)
    assert load_desk(tmp_path / "new", PASSPHRASE).desk == new
    assert load_desk(tmp_path / "old", PASSPHRASE).desk == old  # untouched


def _cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / "intake-keys"), *argv],
                          capture_output=True, text=True, cwd=cwd, timeout=120, check=False)


def test_keyring_replace_needs_the_statement_or_lost_key(tmp_path: Path) -> None:
    old = _generate("smex", NAMES, tmp_path / "old", PASSPHRASE, work_factor=10)
    gchr = _generate("gchr", NAMES, tmp_path / "gchr", PASSPHRASE, work_factor=10)
    rotate_desk(tmp_path / "old", tmp_path / "new", PASSPHRASE, work_factor=10)
    Keyring([old, gchr]).save(tmp_path / "keyring.json")
    before = (tmp_path / "keyring.json").read_bytes()

    r = _cli("keyring", "replace", "keyring.json", "new/desk.json", cwd=tmp_path)
    assert r.returncode == 2
    assert "exactly one" in r.stderr
    # gchr's keys signing smex's statement: refused, nothing written.
    rotate_desk(tmp_path / "gchr", tmp_path / "gchr-new", PASSPHRASE, work_factor=10)
    r = _cli("keyring", "replace", "keyring.json", "new/desk.json", "--transition",
             "gchr-new/transition.txt", cwd=tmp_path)
    assert r.returncode == 1
    assert "not signed by the desk's current key" in r.stderr
    r = _cli("keyring", "add", "keyring.json", "new/desk.json", cwd=tmp_path)
    assert r.returncode == 1
    assert "used twice" in r.stderr
    assert (tmp_path / "keyring.json").read_bytes() == before

    r = _cli("keyring", "replace", "keyring.json", "new/desk.json", "--transition",
             "new/transition.txt", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "now has keys" in r.stdout
    r = _cli("keyring", "check", "keyring.json", cwd=tmp_path)
    assert "transition signed by old and new key" in r.stdout
    r = _cli("keyring", "replace", "keyring.json", "new/desk.json", "--lost-key", cwd=tmp_path)
    assert r.returncode == 1
    assert "already has these keys" in r.stderr

    r = _cli("keyring", "replace", "keyring.json", "gchr-new/desk.json", "--lost-key",
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "LOST" in r.stdout
    assert "LOST KEY" in _cli("keyring", "check", "keyring.json", cwd=tmp_path).stdout

    r = _cli("keyring", "remove", "keyring.json", "gchr", cwd=tmp_path)
    assert r.returncode == 0
    assert "1 desk(s) left: smex" in r.stdout
    r = _cli("keyring", "remove", "keyring.json", "gchr", cwd=tmp_path)
    assert r.returncode == 1
    assert "not in the keyring" in r.stderr
    r = _cli("keyring", "remove", "keyring.json", "Not An Id", cwd=tmp_path)
    assert r.returncode == 2


# --- hostile statements ----------------------------------------------------------------

_OLD, _NEW = Keys(), Keys()
_GOOD = statement(_OLD, _NEW)


@settings(max_examples=200, deadline=None)
@given(text=st.one_of(
    st.text(max_size=400),
    st.from_regex(r"amana-key-transition-v1(\.[A-Za-z0-9_=+/-]{0,90}){0,5}", fullmatch=True),
    st.builds(lambda i, c: _GOOD[:i] + c + _GOOD[i + 1:],
              st.integers(0, len(_GOOD) - 1), st.characters()),
))
def test_hostile_statements_only_raise_transition_error(text: str) -> None:
    try:
        t = verify_transition(text, old_verify_key=_OLD.desk.verify_key)
    except TransitionError:
        return
    # Only the genuine statement verifies (a changed byte is caught by a signature).
    assert t.text == _GOOD
