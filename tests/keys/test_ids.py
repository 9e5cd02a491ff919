"""keys.ids: the shared id grammars, and that keys/ spells them nowhere else."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from keys import ids
from keys.keyring import Desk, KeyringError

KEYS = Path(__file__).resolve().parents[2] / "keys"


@pytest.mark.parametrize("value", ["a", "smex", "desk-2", "-", "0", "a" * 32, "--x"])
def test_desk_ids_the_keyring_accepts(value: str) -> None:
    assert ids.is_desk_id(value)
    assert ids.DESK_ID_RE.fullmatch(value)


@pytest.mark.parametrize(
    "value",
    ["", "A", "a_b", "a.b", "a b", "a" * 33, "a\n", "é", "١", "a/b", b"abc", 7, None],
)
def test_not_desk_ids(value: object) -> None:
    assert not ids.is_desk_id(value)


def test_the_keyring_uses_the_same_grammar() -> None:
    # One desk id accepted by ids and refused by the keyring (or the reverse) would let
    # a desk exist in one place and not in another.
    for good in ("a", "a" * 32, "x-1"):
        with pytest.raises(KeyringError, match="missing"):  # past the id, on to the rest
            Desk.from_dict({"id": good})
    for bad in ("A", "a" * 33, "a_b"):
        with pytest.raises(KeyringError, match="'id' must match"):
            Desk.from_dict({"id": bad})


def test_hex_ids() -> None:
    fresh = {ids.new_hex_id() for _ in range(50)}
    assert len(fresh) == 50
    assert all(ids.is_hex_id(v) for v in fresh)
    for bad in ("", "0" * 31, "0" * 33, "A" * 32, "g" * 32, "0" * 31 + "\n", 0, b"0" * 32):
        assert not ids.is_hex_id(bad)


def test_parse_day_takes_only_the_one_spelling() -> None:
    assert ids.parse_day("2024-02-29") == dt.date(2024, 2, 29)
    assert ids.is_day("0001-01-01")
    for bad in ("2023-02-29", "2024-13-01", "0000-01-01", "20240101", "2024-W01-1",
                "2024-1-01", " 2024-01-01", "2024-01-01\n", "٢٠٢٤-٠١-٠١", "2024-01-01T00",
                None, 20240101):  # fmt: skip
        assert not ids.is_day(bad)
        with pytest.raises(ValueError, match="YYYY-MM-DD|not a real date"):
            ids.parse_day(bad)


def test_the_patterns_are_spelled_only_in_ids() -> None:
    spelled = re.compile(r"a-z0-9-\]\{1,32\}|0-9a-f\]\{32\}|\{4\}-\[0-9\]\{2\}")
    found = [
        f"{p.relative_to(KEYS.parent)}:{n}"
        for p in sorted(KEYS.rglob("*.py"))
        if p.name != "ids.py"
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if spelled.search(line)
    ]
    assert found == [], "use keys.ids"
