"""The hostile-document corpus: every malformed report is refused with a clear reason."""

from __future__ import annotations

import json
from typing import Any

import pytest

from journalist_client.schema import MAX_DOCUMENT_BYTES, DocumentError, parse_document

from .conftest import attachment_meta, report_doc


def _raw(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


def test_a_valid_report_parses() -> None:
    doc = report_doc()
    doc["attachments"] = [attachment_meta(b"x")]
    assert parse_document(_raw(doc), expected_type="report") == doc


@pytest.mark.parametrize("media_type", [
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/octet-stream", "image/svg+xml", "text/x-c++src", "model/vnd.usdz+zip",
])
def test_any_media_type_the_server_keeps_parses(media_type: str) -> None:
    doc = report_doc()
    doc["attachments"] = [{**attachment_meta(b"x"), "media_type": media_type}]
    parsed = parse_document(_raw(doc), expected_type="report")
    # Kept as the source's browser claimed it: shown escaped, never acted upon.
    assert parsed["attachments"][0]["media_type"] == media_type
    assert parsed == doc


def test_a_followup_parses() -> None:
    doc = report_doc()
    del doc["answers"]
    doc.update(schema="amana.followup", message="one more thing")
    assert parse_document(_raw(doc), expected_type="followup")["message"] == "one more thing"


def _mutate(path: str, value: Any) -> bytes:
    doc = report_doc()
    target = doc
    keys = path.split(".")
    for k in keys[:-1]:
        target = target[k]
    if value is KeyError:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return _raw(doc)


CASES: dict[str, tuple[bytes, str]] = {
    "invalid utf-8": (b'{"schema": "amana.report", "x": "\xff\xfe"}', "not valid UTF-8"),
    "overlong utf-8": (b'{"a": "\xc0\xaf"}', "not valid UTF-8"),
    "not json": (b"<html><script>alert(1)</script></html>", "not valid JSON"),
    "trailing data": (_raw(report_doc()) + b"{}", "not valid JSON"),
    "empty": (b"", "not valid JSON"),
    "a list": (b"[]", "must be a JSON object"),
    "10 MB string": (_mutate("answers.description", "A" * 10_000_000), "larger than"),
    "deep nesting": (b"[" * 100_000 + b"]" * 100_000, "nested deeper"),
    "deep nesting in a field": (_mutate("answers.description", [[[[[[[[["x"]]]]]]]]]),
                                "nested deeper"),
    "NaN": (_raw(report_doc()).replace(b'"version": 1', b'"version": NaN'), "NaN"),
    "duplicate key": (_raw(report_doc()).replace(b'"version": 1', b'"version": 1, "version": 1'),
                      "duplicate JSON key"),
    "huge integer": (_raw(report_doc()).replace(b'"version": 1', b'"version": 1' + b"0" * 5000),
                     "not valid JSON"),
    "lone surrogate": (_raw(report_doc()).replace(b'"iPhone 13"', b'"\\ud800"'),
                       "lone surrogate"),
    "unknown top field": (_raw({**report_doc(), "admin": True}), "unknown field(s) 'admin'"),
    "unknown answer": (_mutate("answers.evil", "x"), "unknown field(s) 'evil'"),
    "missing field": (_mutate("reply_recipient", KeyError), "missing field(s) reply_recipient"),
    "wrong schema": (_mutate("schema", "amana.reply"), "schema must be"),
    "version 2": (_mutate("version", 2), "version must be 1"),
    "version true": (_mutate("version", True), "version must be 1"),
    "description a number": (_mutate("answers.description", 5), "must be a string"),
    "description null": (_mutate("answers.description", None), "must be a string"),
    "description an object": (_mutate("answers.description", {"a": 1}), "must be a string"),
    "category unknown": (_mutate("answers.category", "rm -rf"), "taxonomy"),
    "platforms a string": (_mutate("answers.platforms", "ios"), "must be a list"),
    "platform unknown": (_mutate("answers.platforms", ["<b>ios</b>"]), "must be one of"),
    "platform twice": (_mutate("answers.platforms", ["ios", "ios"]), "twice"),
    "consent a string": (_mutate("answers.consent.publish_anonymised", "yes"), "true or false"),
    "country lower": (_mutate("answers.country", "ae"), "ISO 3166"),
    "day not a date": (_mutate("received_day", "2026-02-30"), "not a real date"),
    "id not hex": (_mutate("submission_id", "../../etc/passwd"), "32 lower-case hex"),
    "desk id path": (_mutate("desks", ["../x"]), "a desk id"),
    "no desks": (_mutate("desks", []), "at least one desk"),
    "bad recipient": (_mutate("reply_recipient", "age1notakey"), "not an age recipient"),
    "language": (_mutate("language", "de"), "language must be"),
    # Unhashable values where a choice is expected: a set lookup would raise TypeError
    # and take the whole bundle down instead of quarantining one item.
    "language a list": (_mutate("language", []), "language must be"),
    "country an object": (_mutate("answers.country", {}), "ISO 3166"),
    "category a list": (_mutate("answers.category", []), "taxonomy"),
    "secondary category a list": (_mutate("answers.secondary_categories", [[]]), "taxonomy"),
    "unterminated escapes": (b'{"a": "' + b'\\"' * 20_000, "not valid JSON"),
    "incident date too long": (_mutate("answers.incident_date", "x" * 201), "longer than 200"),
    "attachment size negative": (_mutate("attachments", [{**attachment_meta(b"x"), "size": -1}]),
                                 "non-negative"),
    "attachment size float": (_mutate("attachments", [{**attachment_meta(b"x"), "size": 1.5}]),
                              "non-negative"),
    "attachment sha": (_mutate("attachments", [{**attachment_meta(b"x"), "sha256": "zz"}]),
                       "64 lower-case hex"),
    "attachment extra": (_mutate("attachments", [{**attachment_meta(b"x"), "path": "/etc"}]),
                         "unknown field(s) 'path'"),
    "attachment name empty": (_mutate("attachments", [{**attachment_meta(b"x"), "name": ""}]),
                              "1 to 255 bytes"),
    "too many attachments": (_mutate("attachments",
                                     [attachment_meta(b"x") for _ in range(1001)]),
                             "more than 1000"),
    "media type no slash": (_mutate("attachments",
                                    [{**attachment_meta(b"x"), "media_type": "<script>"}]),
                            "media type"),
    "media type control": (_mutate("attachments",
                                   [{**attachment_meta(b"x"), "media_type": "text/\x1b[2J"}]),
                           "media type"),
    # keys.media's rule, which the server now records by: the TAB it once kept, two
    # slashes, upper case, parameters, a leading symbol, and over 100 characters.
    **{f"media type {v!r}": (_mutate("attachments",
                                     [{**attachment_meta(b"x"), "media_type": v}]),
                             "media type")
       for v in ("image/png\tjunk", "a/b/c", "Image/PNG", "text/plain; charset=utf-8",
                 "+x/y", "x/" + "y" * 99)},
    "media type upper": (_mutate("attachments",
                                 [{**attachment_meta(b"x"), "media_type": "Text/Plain"}]),
                         "media type"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_documents_are_refused_with_a_reason(case: str) -> None:
    raw, message = CASES[case]
    with pytest.raises(DocumentError, match=None) as info:
        parse_document(raw, expected_type="report")
    assert message in str(info.value)
    # The message is short and never echoes the hostile payload at length.
    assert len(str(info.value)) < 300


def test_the_size_bound_is_exact() -> None:
    doc = report_doc(description="")
    base = len(_raw(doc))
    doc["answers"]["description"] = "x" * (MAX_DOCUMENT_BYTES - base)
    assert len(_raw(doc)) == MAX_DOCUMENT_BYTES
    parse_document(_raw(doc), expected_type="report")
    doc["answers"]["description"] += "x"
    with pytest.raises(DocumentError, match="larger than"):
        parse_document(_raw(doc), expected_type="report")


@pytest.mark.parametrize("text", [
    "\x1b[2J\x1b]0;pwned\x07", "<script>alert(1)</script>", "\u202egnp.exe", "a\rb\x08c",
    "\x9b31m", "line\u2028sep", "'; DROP TABLE items; --",
])
def test_hostile_text_is_stored_as_written(text: str) -> None:
    # Free text is the source's own words; refusing it would lose evidence. It is shown
    # escaped (test_display.py), never interpreted.
    doc = report_doc(description=text)
    doc["attachments"] = [{**attachment_meta(b"x"), "name": text}]
    parsed = parse_document(_raw(doc), expected_type="report")
    assert parsed["answers"]["description"] == text


def test_type_mismatch_between_index_and_document() -> None:
    with pytest.raises(DocumentError, match="unknown field"):
        parse_document(_raw(report_doc()), expected_type="followup")
