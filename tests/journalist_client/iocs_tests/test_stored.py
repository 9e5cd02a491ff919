"""journalist_client.iocs.stored: indicators to the vault's text of columns and back."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journalist_client.iocs import Indicator, Kind
from journalist_client.iocs.stored import StoredError, decode, encode

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
    assert decode("f.stix2", encode(kept)) == kept


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(format=2), "format 1"),
    (lambda d: d["value"].append(3), "'value' holds something other than text"),
    (lambda d: d["indicator_id"].pop(), "1 indicator ids for 2 values"),
    (lambda d: d.update(kind=[["domain", 1], ["nothing", 1]]), "unknown kind 'nothing'"),
    (lambda d: d.update(family=[["A", 0], ["A", 2]]), "'family' holds something other"),
    (lambda d: d.update(stix_key=[["k", 3]]), "'stix_key' covers 3 indicators, not 2"),
    (lambda d: d.update(references=[[[1], 2]]), "references that are not a list of text"),
    (lambda d: d.pop("family"), "no list of runs 'family'"),
])
def test_a_damaged_text_is_refused(change: object, message: str) -> None:
    kept = [Indicator(Kind.DOMAIN, f"d{n}.example", "A", "f.stix2", f"indicator--{n}",
                      "domain-name:value", ()) for n in range(2)]
    data = json.loads(encode(kept))
    change(data)  # type: ignore[operator]
    with pytest.raises(StoredError, match=message):
        decode("f.stix2", json.dumps(data))


def test_a_key_given_twice_is_refused() -> None:
    with pytest.raises(StoredError, match="duplicate key"):
        decode("f.stix2", '{"format": 1, "format": 1}')
