"""Every parser of bytes from the other side, fuzzed (issue 18, "Malformed input"):
only the error classes it documents, never another exception, and Python memory
bounded while it runs (tests/support/bounded.py).

| parser | documented refusal |
|---|---|
| keys.age decrypt (header, STREAM payload, armor) | ``AgeError`` (its subclasses) |
| keys.age parse_recipient / parse_identity | ``ValueError`` |
| keys.bundle open_bundle, signed bundles with hostile manifests | ``BundleError`` |
| journalist_client.importer parse_index (a transfer bundle's index.json) | ``ImportRefused`` |
| journalist_client.schema parse_document (a decrypted report) | ``DocumentError`` |
| journalist_client.iocs.stix load_bundle / parse_pattern | ``BundleError`` / a reason string |
| journalist_client.iocs.attachments read_zip | ``ZipLimitError``, ``ZipFormatError`` |
| journalist_client.iocs.attachments scan_attachment (zips, .eml, MVT) | never raises |

Keyrings: tests/keys/test_keys_fuzz.py. Examples per test: AMANA_FUZZ_EXAMPLES (100
here, 5,000 under `make soak`); a failing example is printed with a reproduce blob and
kept in .hypothesis/ (docs/testing.md). The coverage-guided run of the same targets
is tests/test_atheris.py.
"""

from __future__ import annotations

import base64
import email.message
import io
import json
import os
import struct
import warnings
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journalist_client.importer import ImportRefused, parse_index
from journalist_client.iocs.attachments import (
    AttachmentScan,
    Limits,
    ZipFormatError,
    ZipLimitError,
    read_zip,
    scan_attachment,
)
from journalist_client.iocs.match import IndicatorIndex, Location
from journalist_client.iocs.stix import BundleError as StixBundleError
from journalist_client.iocs.stix import load_bundle, parse_pattern
from journalist_client.schema import DocumentError, parse_document
from keys.age import AgeError, X25519Identity, decrypt, encrypt, parse_identity, parse_recipient
from keys.bundle import BundleError, open_bundle
from keys.signing import CONTEXT_BUNDLE, SigningKey
from support.bounded import MIB, Unbounded, call_bounded

EXAMPLES = int(os.environ.get("AMANA_FUZZ_EXAMPLES", "100"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])

IDENTITY = X25519Identity(b"\x07" * 32)
PLAIN = b"a report \x00\xff" * 300  # two chunks' worth is not needed: one, and a tail
VALID_AGE = encrypt(PLAIN, [IDENTITY.recipient()])
VALID_ARMORED = encrypt(b"short", [IDENTITY.recipient()], armor=True)
KEY = SigningKey.from_seed(b"\x05" * 32)

# Texts that have broken parsers: control and format characters, overlong UTF-8 in
# escapes, lone surrogates, bidi overrides, huge numbers, deep nesting.
HOSTILE_TEXT = st.sampled_from([
    "", "\x00", "\u202e", "\u200b", "\ud800", "\ufeff", "A" * 5000, "..", "../x", "a/b",
    "age1", "AGE-SECRET-KEY-1", "1e999", "-0", "\U0010ffff", "ا", "\r\n", "%00",
]) | st.text(max_size=40)


def _json_values() -> st.SearchStrategy[Any]:
    leaves = (st.none() | st.booleans() | st.integers(-2**70, 2**70)
              | st.floats(allow_nan=False, allow_infinity=False) | HOSTILE_TEXT)
    return st.recursive(leaves, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(HOSTILE_TEXT, inner, max_size=4), max_leaves=20)


JSON_VALUES = _json_values()


def _dumps(value: Any, *, ascii: bool = False) -> bytes:
    # Lone surrogates are written as the UTF-8-like bytes a hostile tool would write.
    return json.dumps(value, ensure_ascii=ascii).encode("utf-8", "surrogatepass")


def _mutate(data: bytes, draw: st.DrawFn) -> bytes:
    """One to four damaging edits: flip, cut, insert, duplicate a span."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        if not out:
            out += draw(st.binary(min_size=1, max_size=16))
            continue
        at = draw(st.integers(0, len(out) - 1))
        how = draw(st.sampled_from(["flip", "cut", "insert", "dup", "byte"]))
        if how == "flip":
            out[at] ^= draw(st.integers(1, 255))
        elif how == "cut":
            del out[at:at + draw(st.integers(1, 64))]
        elif how == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif how == "dup":
            span = out[at:at + draw(st.integers(1, 200))]
            out[at:at] = span * draw(st.integers(1, 3))
        else:
            out[at] = draw(st.sampled_from(b"\x00\n\r -+/=\xff"))
    return bytes(out)


def _expect(limit_mib: float, parse: Any, allowed: tuple[type[BaseException], ...]) -> Any:
    return call_bounded(int(limit_mib * MIB), parse, allowed)


# --- age: header, STREAM payload, armor -------------------------------------------

_STANZA_TYPES = ["X25519", "scrypt", "mlkem768x25519", "", "x25519", "-", "\x00"]


@st.composite
def age_files(draw: st.DrawFn) -> bytes:
    """A header written stanza by stanza (hostile arguments, bodies and MACs), and a
    payload taken from a real file or made up."""
    how = draw(st.sampled_from(["mutate", "header", "random"]))
    if how == "mutate":
        return _mutate(VALID_AGE, draw)
    if how == "random":
        return draw(st.binary(max_size=2000))
    lines = [draw(st.sampled_from([b"age-encryption.org/v1", b"age-encryption.org/v2",
                                   b"age-encryption.org/v1 ", b""]))]
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(_STANZA_TYPES)).encode()
        args = [draw(st.sampled_from([
            base64.b64encode(draw(st.binary(min_size=32, max_size=32))).rstrip(b"="),
            b"AAAA", b"A" * 200, b"====", b"20", b"64", b"99999999999999999999", b"-1",
            b"22", b"0"]))
            for _ in range(draw(st.integers(0, 3)))]
        lines.append(b"-> " + b" ".join([kind, *args]))
        body = base64.b64encode(draw(st.binary(max_size=100))).rstrip(b"=")
        lines += [body[i:i + 64] for i in range(0, len(body), 64)] or [b""]
    mac = base64.b64encode(draw(st.binary(min_size=0, max_size=40))).rstrip(b"=")
    lines.append(b"--- " + mac)
    payload = draw(st.sampled_from([VALID_AGE[-300:], b"", b"\x00" * 16,
                                    draw(st.binary(max_size=200))]))
    return b"\n".join(lines) + b"\n" + payload


@SETTINGS
@given(data=age_files())
def test_age_decrypt_only_raises_age_error(data: bytes) -> None:
    result = _expect(8, lambda: decrypt(data, [IDENTITY]), (AgeError,))
    if not isinstance(result, AgeError):
        # A damaged file that still decrypts can only give the original bytes back.
        assert result == PLAIN


@st.composite
def armored(draw: st.DrawFn) -> bytes:
    text = VALID_ARMORED
    if draw(st.booleans()):
        body = base64.b64encode(draw(age_files()))
        cut = draw(st.sampled_from([64, 63, 65, 76, 1]))
        lines = [body[i:i + cut] for i in range(0, len(body), cut)]
        text = b"\n".join([b"-----BEGIN AGE ENCRYPTED FILE-----", *lines,
                           b"-----END AGE ENCRYPTED FILE-----"]) + b"\n"
    return _mutate(text, draw) if draw(st.booleans()) else text


@SETTINGS
@given(data=armored())
def test_armored_age_only_raises_age_error(data: bytes) -> None:
    result = _expect(8, lambda: decrypt(data, [IDENTITY], armored=True), (AgeError,))
    if not isinstance(result, AgeError):
        assert result in (b"short", PLAIN)


@SETTINGS
@given(text=st.sampled_from(["age1", "age1pq1", "AGE-SECRET-KEY-1", "AGE-SECRET-KEY-PQ-1",
                             "AGE1", ""]).flatmap(lambda p: st.text(max_size=120).map(
                                 lambda t: p + t)))
def test_age_key_parsers_only_raise_value_error(text: str) -> None:
    for parse in (parse_recipient, parse_identity):
        _expect(4, lambda: parse(text), (ValueError,))  # noqa: B023 - called at once


# --- signed bundles, as the client and the server receive them ---------------------


def _signed_bundle(manifest: bytes, files: bytes) -> bytes:
    """The byte format of keys/bundle.py, signed by a trusted key, whatever the manifest
    says: a compromised server or desk signs what it likes."""
    signature = KEY.sign(manifest, context=CONTEXT_BUNDLE)
    return (b"AMANA-BUNDLE-V1\n" + files + manifest + signature + KEY.verify_key.raw
            + struct.pack(">Q", len(manifest)) + b"AMANA-BUNDLE-END")


@st.composite
def manifests(draw: st.DrawFn) -> tuple[bytes, bytes]:
    files = draw(st.lists(st.tuples(HOSTILE_TEXT | st.just("index.json"), st.binary(
        max_size=50)), max_size=3))
    doc: dict[str, Any] = {
        "format": "amana-bundle", "version": 1, "id": "ab" * 16, "kind": "export",
        "creator": "smex", "created": "2026-12-05",
        "files": [{"name": n, "size": len(d), "sha256": "00" * 32} for n, d in files]}
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from([*doc, "extra", "files"]))
        doc[key] = draw(JSON_VALUES)
    raw = _dumps(doc)
    if draw(st.booleans()):
        raw = _mutate(raw, draw)
    return raw, b"".join(d for _, d in files)


@SETTINGS
@given(bundle=manifests(), damage=st.booleans(), data=st.data())
def test_signed_bundles_with_hostile_manifests_only_raise_bundle_error(
        tmp_path: Path, bundle: tuple[bytes, bytes], damage: bool, data: st.DataObject) -> None:
    raw = _signed_bundle(*bundle)
    if damage:
        raw = _mutate(raw, data.draw)
    path = tmp_path / "b"
    path.write_bytes(raw)
    result = _expect(8, lambda: open_bundle(path, {"smex": KEY.verify_key}), (BundleError,))
    if not isinstance(result, BundleError):
        result.close()


@st.composite
def export_indexes(draw: st.DrawFn) -> tuple[bytes, list[str]]:
    iid = "cd" * 16
    doc: dict[str, Any] = {
        "format": "amana-desk-export", "version": draw(st.sampled_from([1, 2, 3])),
        "desk": "smex", "cursor": "c", "items": [
            {"id": iid, "type": "report", "day": "2026-12-05", "files": [f"{iid}.json.age"]}],
        "after": "", "unacknowledged": 0,
        "before_cursor": {"count": 0, "ids": []}, "deleted_unacknowledged": []}
    for _ in range(draw(st.integers(0, 4))):
        where = draw(st.sampled_from(["top", "item", "before"]))
        items = doc["items"]
        target = (doc if where == "top" else doc["before_cursor"] if where == "before"
                  else items[0] if isinstance(items, list) and items else None)
        if isinstance(target, dict):
            target[draw(st.sampled_from([*target, "x"]))] = draw(JSON_VALUES)
    raw = _dumps(doc)
    if draw(st.booleans()):
        raw = _mutate(raw, draw)
    names = draw(st.sampled_from([["index.json", f"{iid}.json.age"],
                                  ["index.json", f"{iid}.json.age", "keyring.json"], []]))
    return raw, names


@SETTINGS
@given(index=export_indexes())
def test_an_export_index_only_raises_import_refused(index: tuple[bytes, list[str]]) -> None:
    raw, names = index
    _expect(4, lambda: parse_index(raw, "smex", names), (ImportRefused,))


@st.composite
def report_documents(draw: st.DrawFn) -> bytes:
    doc: dict[str, Any] = {
        "schema": "amana.report", "version": 1, "submission_id": "ef" * 16,
        "received_day": "2026-12-05", "language": "ar", "desks": ["smex"],
        "reply_recipient": str(IDENTITY.recipient()), "attachments": [],
        "answers": {"category": "spyware", "description": "x"}}
    for _ in range(draw(st.integers(0, 4))):
        target = doc if draw(st.booleans()) else doc["answers"]
        if isinstance(target, dict):
            target[draw(st.sampled_from([*target, "x"]))] = draw(JSON_VALUES)
    raw = _dumps(doc, ascii=draw(st.booleans()))
    return _mutate(raw, draw) if draw(st.booleans()) else raw


@SETTINGS
@given(raw=report_documents())
def test_a_decrypted_report_only_raises_document_error(raw: bytes) -> None:
    _expect(8, lambda: parse_document(raw, expected_type="report"), (DocumentError,))


# --- STIX bundles and patterns -----------------------------------------------------

PATTERN_PARTS = ["[", "]", "domain-name:value", "url:value", "file:hashes.'SHA-256'",
                 "file:hashes.MD5", "process:name", " = ", " != ", " LIKE ", " AND ", " OR ",
                 "'evil.example'", "'a\\'b'", "'\\\\'", "''", "h'00'", "b'AA=='", "42",
                 " FOLLOWEDBY ", " WITHIN 5 SECONDS", " REPEATS 2 TIMES", "(", ")",
                 "email-addr:value", "ipv4-addr:value", "'\u202e'",
                 " START t'2026-01-01T00:00:00Z'"]
PATTERNS = st.lists(st.sampled_from(PATTERN_PARTS), max_size=12).map("".join) | st.text(
    max_size=60) | st.sampled_from(["[" * 400 + "]" * 400, "(" * 300, "'" * 1000])


@SETTINGS
@given(pattern=PATTERNS)
def test_a_stix_pattern_never_raises(pattern: str) -> None:
    result = _expect(16, lambda: parse_pattern(pattern), ())
    assert isinstance(result, (str, tuple))


@st.composite
def stix_bundles(draw: st.DrawFn) -> bytes:
    objects: list[Any] = []
    for n in range(draw(st.integers(0, 6))):
        obj: dict[str, Any] = {
            "type": draw(st.sampled_from(["indicator", "malware", "relationship", "report",
                                          "bundle", ""])),
            "id": f"indicator--{n:08d}-0000-4000-8000-000000000000",
            "pattern": draw(PATTERNS), "pattern_type": "stix",
            "source_ref": f"indicator--{n:08d}-0000-4000-8000-000000000000",
            "target_ref": "malware--00000000-0000-4000-8000-000000000000",
            "name": draw(HOSTILE_TEXT), "object_refs": draw(st.lists(HOSTILE_TEXT, max_size=3))}
        for _ in range(draw(st.integers(0, 2))):
            obj[draw(st.sampled_from([*obj, "x"]))] = draw(JSON_VALUES)
        objects.append(obj)
    doc: dict[str, Any] = {"type": "bundle", "id": "bundle--1", "objects": objects}
    if draw(st.integers(0, 4)) == 0:
        doc[draw(st.sampled_from(["type", "objects", "id"]))] = draw(JSON_VALUES)
    raw = _dumps(doc)
    return _mutate(raw, draw) if draw(st.integers(0, 2)) == 0 else raw


@SETTINGS
@given(raw=stix_bundles())
def test_a_stix_bundle_only_raises_bundle_error(raw: bytes) -> None:
    _expect(16, lambda: load_bundle(raw, "desk.json"), (StixBundleError,))


# --- zips, e-mail and MVT output, as attachments -------------------------------------

_INDEX = IndicatorIndex.build(load_bundle(json.dumps({"type": "bundle", "id": "bundle--1",
    "objects": [{"type": "indicator", "id": f"indicator--{i}", "pattern_type": "stix",
                 "pattern": p} for i, p in enumerate([
                     "[domain-name:value = 'evil.example']",
                     "[process:name = 'bh']",
                     "[file:hashes.'SHA-256' = '" + "a" * 64 + "']"])]}).encode(),
    "desk.json").indicators)
MVT_NAMES = ["info.json", "alerts.json", "processes.json", "processes_detected.json",
             "timeline.csv", "command.log", "safari_history.json", "x.eml", "a.zip", "b"]


def _email(draw: st.DrawFn, depth: int = 0) -> bytes:
    boundary = draw(st.sampled_from(["b", "", "=?x?=", "b" * 80, "\u202e"]))
    heads = [f"{draw(st.sampled_from(['From', 'To', 'Subject', 'Content-Type', 'X', 'Received']))}:"
             f" {draw(HOSTILE_TEXT)}" for _ in range(draw(st.integers(0, 4)))]
    ctype = draw(st.sampled_from(["multipart/mixed", "text/plain", "message/rfc822",
                                  "application/zip", "text/html; charset=x-unknown"]))
    heads.append(f'Content-Type: {ctype}; boundary="{boundary}"')
    parts = []
    for _ in range(draw(st.integers(0, 3))):
        cte = draw(st.sampled_from(["base64", "quoted-printable", "8bit", "x-uuencode", ""]))
        body = (_email(draw, depth + 1) if depth < 2 and draw(st.integers(0, 3)) == 0
                else draw(st.sampled_from([b"evil.example", b"=ZZ=\n", b"!!!!", b"PK\x03\x04"]))
                + draw(st.binary(max_size=60)))
        parts.append(f"--{boundary}\r\nContent-Transfer-Encoding: {cte}\r\nContent-Disposition:"
                     f" attachment; filename=\"{draw(HOSTILE_TEXT)}\"\r\n\r\n".encode(
                         "utf-8", "surrogatepass") + body)
    raw = "\r\n".join(heads).encode("utf-8", "surrogatepass") + b"\r\n\r\n" + b"\r\n".join(
        parts) + (f"\r\n--{boundary}--\r\n".encode("utf-8", "surrogatepass")
                  if draw(st.booleans()) else b"")
    return raw


def _entry(name: str) -> zipfile.ZipInfo:
    """A zip entry of a fixed date (zipfile would stamp the time of day, and the same
    example would come out different on a second run), its name writable by zipfile."""
    name = name.replace("\x00", "").encode("utf-8", "replace").decode("utf-8") or "_"
    info = zipfile.ZipInfo(name, date_time=(2026, 12, 5, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


@st.composite
def attachments(draw: st.DrawFn, depth: int = 0) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["zip", "zip", "eml", "mvt", "bytes", "bomb"]))
    if kind == "eml":
        return "mail.eml", _email(draw)
    if kind == "mvt":
        return draw(st.sampled_from(MVT_NAMES)), _dumps(draw(JSON_VALUES))
    if kind == "bytes":
        return draw(HOSTILE_TEXT), draw(st.binary(max_size=500))
    if kind == "bomb":
        # Declared sizes that lie, a high ratio, many entries.
        count, size = draw(st.sampled_from([(1, 300_000), (3, 2_000_000), (2100, 0)]))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for i in range(count):
                z.writestr(_entry(f"z{i}"), b"\x00" * size)
        return "bomb.zip", _mutate(buf.getvalue(), draw) if draw(st.booleans()) else buf.getvalue()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", draw(st.sampled_from([zipfile.ZIP_STORED,
                                                         zipfile.ZIP_DEFLATED]))) as z:
        for _ in range(draw(st.integers(0, 4))):
            name, data = (draw(attachments(depth + 1)) if depth < 3 and draw(st.booleans())
                          else (draw(st.sampled_from(MVT_NAMES)), json.dumps(
                              draw(JSON_VALUES))))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a duplicate name: wanted here
                z.writestr(_entry(name), data, compress_type=z.compression)
    raw = buf.getvalue()
    return "output.zip", _mutate(raw, draw) if draw(st.integers(0, 2)) == 0 else raw


@SETTINGS
@given(attachment=attachments())
def test_read_zip_only_raises_zip_errors(attachment: tuple[str, bytes]) -> None:
    _, data = attachment
    _expect(48, lambda: read_zip(data, Limits(max_total_bytes=16 * MIB,
                                              max_entry_bytes=8 * MIB)),
            (ZipLimitError, ZipFormatError))


@SETTINGS
@given(attachment=attachments())
def test_scan_attachment_never_raises(attachment: tuple[str, bytes]) -> None:
    name, data = attachment
    where = Location("attachment", name)
    result = _expect(64, lambda: scan_attachment(_INDEX, name, data, where, Limits(
        max_total_bytes=16 * MIB, max_entry_bytes=8 * MIB)), ())
    assert isinstance(result, AttachmentScan)


# --- the bound itself ------------------------------------------------------------------


def test_the_memory_bound_catches_a_parser_that_reads_everything() -> None:
    """The control: a "parser" that inflates what it is given trips the bound, and one
    that raises an undocumented error is not swallowed."""
    with pytest.raises(Unbounded):
        call_bounded(4 * MIB, lambda: b"\x00" * (16 * MIB), ())
    with pytest.raises(KeyError):
        call_bounded(4 * MIB, lambda: {}["x"], (ValueError,))
    assert isinstance(call_bounded(4 * MIB, lambda: int("x"), (ValueError,)), ValueError)


def test_the_email_strategy_writes_what_the_scanner_reads() -> None:
    # A generated message parses as one with parts, so the e-mail path is exercised.
    message = email.message_from_bytes(
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n\r\nevil.example\r\n--b--\r\n')
    assert message.is_multipart()
    scan = scan_attachment(_INDEX, "m.eml", message.as_bytes(), Location("attachment", "m.eml"))
    assert [m.indicator.value for m in scan.matches] == ["evil.example"]
