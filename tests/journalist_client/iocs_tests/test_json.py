"""The strict JSON of the indicator code: jiter, which decodes batches of a bundle's
objects, accepts nothing the standard decoder with the strict hooks refuses, and gives
the same values; what it refuses reaches the standard decoder and its words."""

from __future__ import annotations

import importlib
import io
import json
import math
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

json_module = importlib.import_module("journalist_client.iocs._json")
StrictJsonError = json_module.StrictJsonError


def _standard(data: bytes) -> tuple[bool, Any]:
    try:
        return True, json_module.loads(data)
    except StrictJsonError:
        return False, None


def _batch(data: bytes) -> tuple[bool, Any]:
    try:
        return True, json_module._batch_decode(data)
    except ValueError:
        return False, None


def _same(a: Any, b: Any) -> bool:
    # Values and their types: 1 and 1.0 and True are equal in Python, not in JSON.
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return bool(a == b)


_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
            | st.text())
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(max_size=4), inner, max_size=4),
                       max_leaves=20)
# What a hostile file puts in: a key twice, constants, escapes, bad bytes, deep nesting.
_PIECES = st.sampled_from([
    '{"a": 1, "a": 2}', '{"\\u0061": 1, "a": 2}', "NaN", "-Infinity", "1e400", "-0",
    '"\\ud800"', '"\\udc00\\ud800"', '"\\u0000"', '"\x01"', "\ufeff", "01", "1.", ".5",
    "[" * 250 + "]" * 250, ",", "]", "}", '"', "\\", "tru", " ", "\u00e9", "\ud7ff",
])


@settings(max_examples=400, deadline=None)
@given(_VALUES, st.lists(st.tuples(st.integers(min_value=0), _PIECES), max_size=3))
@example(None, [(0, '{"a": 1, "a": 2}')])
@example(None, [(0, '["\\ud800"]')])
@example(None, [(0, "[" * 250 + "]" * 250)])
def test_jiter_accepts_only_what_the_standard_decoder_accepts(
        value: Any, insertions: list[tuple[int, str]]) -> None:
    text = "[" + json.dumps(value) + "]" if value is not None else ""
    for at, piece in insertions:
        cut = at % (len(text) + 1)
        text = text[:cut] + piece + text[cut:]
    data = text.encode("utf-8", "surrogatepass")
    batch_ok, batch_value = _batch(data)
    standard_ok, standard_value = _standard(data)
    if batch_ok:
        assert standard_ok, text
        assert _same(batch_value, standard_value), text


@pytest.mark.parametrize(("element", "message"), [
    ('{"id": "a", "id": "b"}', "duplicate key"),
    ('{"e": [{"k": 1, "k": 2}]}', "duplicate key"),
    ('{"n": NaN}', "NaN is not JSON"),
    ('{"n": -Infinity}', "-Infinity is not JSON"),
])
def test_a_batch_jiter_refuses_is_refused_in_the_standard_decoders_words(
        element: str, message: str) -> None:
    # Enough plain elements around the bad one that the batch path is taken.
    plain = ", ".join(['{"type": "x", "id": "y"}'] * 200)
    data = f'{{"objects": [{plain}, {element}, {plain}]}}'.encode()
    assert not _batch(f"[{element}]".encode())[0]
    stream = json_module.ArrayStream(io.BytesIO(data), "objects", max_bytes=1 << 20,
                                     max_value_chars=1 << 20)
    with pytest.raises(StrictJsonError, match=message):
        list(stream)


def test_what_jiter_refuses_and_the_standard_decoder_takes_is_read() -> None:
    # An escaped lone surrogate and nesting past jiter's 200 levels are JSON the
    # standard decoder accepts: the batch falls back, and the elements are read.
    deep = "[" * 250 + "]" * 250
    elements = ['{"v": "\\ud800"}', f'{{"v": {deep}}}'] + ['{"v": 1}'] * 200
    data = ('{"objects": [' + ", ".join(elements) + "]}").encode()
    stream = json_module.ArrayStream(io.BytesIO(data), "objects", max_bytes=1 << 20,
                                     max_value_chars=1 << 20)
    got = [element for batch in stream for element in batch]
    assert got == json.loads(data)["objects"]
