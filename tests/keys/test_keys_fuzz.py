"""Property tests: round trips hold for any input, and hostile bytes only ever raise
the module's own error (never a crash, never an accepted forgery)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keys.bundle import BundleError, open_bundle, write_bundle
from keys.codename import InvalidCodename, normalize_codename, wordlist
from keys.keyring import Keyring, KeyringError
from keys.signing import CONTEXT_BUNDLE, BadSignature, SigningKey

KEY = SigningKey.from_seed(b"\x05" * 32)
TRUSTED = {"smex": KEY.verify_key}
NAME = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,20}(\.[a-z]{1,4})?", fullmatch=True)
FILES = st.dictionaries(NAME, st.binary(max_size=3000), max_size=6).filter(
    lambda d: len({n.lower() for n in d}) == len(d)
)
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _bundle_bytes(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    write_bundle(out, "ack", "smex", [(n, io.BytesIO(d)) for n, d in files.items()], KEY)
    return out.getvalue()


@SETTINGS
@given(files=FILES)
def test_bundle_round_trip(tmp_path: Path, files: dict[str, bytes]) -> None:
    path = tmp_path / "b"
    path.write_bytes(_bundle_bytes(files))
    with open_bundle(path, TRUSTED) as b:
        assert b.names == list(files)
        assert {n: b.read(n) for n in b.names} == files


@SETTINGS
@given(files=FILES, data=st.data())
def test_any_change_to_a_bundle_is_refused(
    tmp_path: Path, files: dict[str, bytes], data: st.DataObject
) -> None:
    original = _bundle_bytes(files)
    damaged = bytearray(original)
    how = data.draw(st.sampled_from(["flip", "cut", "append", "insert"]))
    at = data.draw(st.integers(0, len(original) - 1))
    if how == "flip":
        damaged[at] ^= data.draw(st.integers(1, 255))
    elif how == "cut":
        del damaged[at : at + data.draw(st.integers(1, 64))]
    elif how == "append":
        damaged += data.draw(st.binary(min_size=1, max_size=64))
    else:
        damaged[at:at] = data.draw(st.binary(min_size=1, max_size=64))
    path = tmp_path / "b"
    path.write_bytes(bytes(damaged))
    try:
        open_bundle(path, TRUSTED).close()
    except BundleError:
        return
    raise AssertionError(f"a damaged bundle ({how} at {at}) was accepted")


@SETTINGS
@given(message=st.binary(max_size=200), flip=st.integers(0, 64 * 8 - 1))
def test_signature_bit_flips_never_verify(message: bytes, flip: int) -> None:
    sig = bytearray(KEY.sign(message, context=CONTEXT_BUNDLE))
    sig[flip // 8] ^= 1 << (flip % 8)
    try:
        KEY.verify_key.verify(message, bytes(sig), context=CONTEXT_BUNDLE)
    except BadSignature:
        return
    raise AssertionError("a modified signature verified")


@SETTINGS
@given(raw=st.binary(max_size=400))
def test_keyring_parser_only_raises_keyring_error(raw: bytes) -> None:
    with contextlib.suppress(KeyringError):
        Keyring.from_json(raw)


@SETTINGS
@given(
    doc=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=12,
    )
)
def test_keyring_parser_handles_any_json_shape(doc: object) -> None:
    for candidate in (doc, {"version": 1, "desks": [doc]}, {"version": 1, "desks": doc}):
        with contextlib.suppress(KeyringError):
            Keyring.from_json(json.dumps(candidate).encode())


@SETTINGS
@given(
    words=st.lists(st.sampled_from(wordlist()), min_size=7, max_size=7),
    separators=st.lists(
        st.sampled_from([" ", "  ", "\n", "\t", " \u200f", "\u00a0", "\r\n"]),
        min_size=8,
        max_size=8,
    ),
    upper=st.booleans(),
)
def test_normalisation_is_stable(words: list[str], separators: list[str], upper: bool) -> None:
    canonical = " ".join(words)
    typed = separators[0] + "".join(w + s for w, s in zip(words, separators[1:], strict=True))
    typed = typed.upper() if upper else typed
    assert normalize_codename(typed) == canonical
    assert normalize_codename(canonical) == canonical


@SETTINGS
@given(text=st.text(max_size=200))
def test_normalisation_only_raises_invalid_codename(text: str) -> None:
    try:
        result = normalize_codename(text)
    except InvalidCodename:
        return
    assert normalize_codename(result) == result
