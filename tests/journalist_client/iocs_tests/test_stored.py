"""journalist_client.iocs.stored: indicators to the vault's text of columns and back."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journalist_client.iocs import Indicator, IndicatorColumns, Kind
from journalist_client.iocs.stored import Stored, StoredError, decode, encode

_TEXT = st.text(max_size=8)
# Few distinct families, keys and references, so that runs of more than one are made.
_INDICATOR = st.builds(
    lambda kind, value, family, ident, key, refs: Indicator(
        kind, value, family, "f.stix2", ident, key, refs),
    st.sampled_from(list(Kind)), _TEXT, st.sampled_from(["A", "B", "\u0628\n\""]), _TEXT,
    st.sampled_from(["domain-name:value", "file:hashes.'SHA-256'"]),
    st.sampled_from([(), ("https://r.example",), ("lab: 1", "x")]))


@settings(max_examples=200, deadline=None)
@given(st.lists(_INDICATOR, max_size=30))
def test_what_is_stored_comes_back_in_order(kept: list[Indicator]) -> None:
    assert decode("f.stix2", encode(IndicatorColumns.of(kept))) == kept


def _lines(stored: Stored, value_lines: str | None, id_lines: str | None) -> Stored:
    return stored._replace(value_lines=value_lines, id_lines=id_lines)


# Each change: (the JSON text's object, the Stored) -> the Stored to decode.
_CHANGES: list[tuple[Callable[[dict[str, Any], Stored], Stored], str]] = [
    (lambda d, s: s._replace(columns=json.dumps({**d, "format": 1})), "format 2"),
    (lambda d, s: _lines(s._replace(columns=json.dumps({**d, "value": ["a", 3]})), None,
                         s.id_lines), "'value' holds something other than text"),
    (lambda d, s: _lines(s._replace(columns=json.dumps({**d, "value": ["a", "b"]})),
                         s.value_lines, s.id_lines), "'value' is neither lines nor a list"),
    (lambda d, s: _lines(s, None, s.id_lines), "'value' is neither lines nor a list"),
    (lambda d, s: _lines(s, s.value_lines, "indicator--0"), "1 indicator ids for 2 values"),
    (lambda d, s: s._replace(columns=json.dumps(
        {**d, "kind": [["domain", 1], ["nothing", 1]]})), "unknown kind 'nothing'"),
    (lambda d, s: s._replace(columns=json.dumps({**d, "family": [["A", 0], ["A", 2]]})),
     "'family' holds something other"),
    (lambda d, s: s._replace(columns=json.dumps({**d, "stix_key": [["k", 3]]})),
     "'stix_key' covers 3 indicators, not 2"),
    (lambda d, s: s._replace(columns=json.dumps({**d, "references": [[[1], 2]]})),
     "references that are not a list of text"),
    (lambda d, s: s._replace(columns=json.dumps({k: v for k, v in d.items()
                                                 if k != "family"})),
     "no list of runs 'family'"),
    (lambda d, s: s._replace(columns='{"format": 2, "format": 2}'), "duplicate key"),
]


@pytest.mark.parametrize(("change", "message"), _CHANGES)
def test_damaged_texts_are_refused(change: Callable[[dict[str, Any], Stored], Stored],
                                   message: str) -> None:
    kept = [Indicator(Kind.DOMAIN, f"d{n}.example", "A", "f.stix2", f"indicator--{n}",
                      "domain-name:value", ()) for n in range(2)]
    stored = encode(IndicatorColumns.of(kept))
    with pytest.raises(StoredError, match=message):
        decode("f.stix2", change(json.loads(stored.columns), stored))


@pytest.mark.parametrize(("values", "as_lines"), [
    (["a.example", "b.example"], True),
    (["", "b.example"], True),
    (["a\nb", "c"], False),  # a file name may hold a newline: one line per value fails
    ([], False),  # "" would read back as one empty value
])
def test_values_are_lines_unless_a_value_holds_a_newline(values: list[str],
                                                         as_lines: bool) -> None:
    kept = [Indicator(Kind.FILE_NAME, v, "A", "f.stix2", f"indicator--{n}", "file:name", ())
            for n, v in enumerate(values)]
    stored = encode(IndicatorColumns.of(kept))
    assert (stored.value_lines is not None) is as_lines
    assert ("value" in json.loads(stored.columns)) is not as_lines
    assert decode("f.stix2", stored) == kept
