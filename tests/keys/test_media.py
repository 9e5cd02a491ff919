"""keys.media: the one media-type rule the server records by and the client checks."""

from __future__ import annotations

import pytest

from keys.media import MAX_MEDIA_TYPE, OCTET_STREAM, is_media_type, media_type_of_part


@pytest.mark.parametrize(("header", "recorded"), [
    (None, OCTET_STREAM),
    ("image/png", "image/png"),
    ("  Image/PNG ; name=a.png", "image/png"),
    ("\ttext/plain\t", "text/plain"),
    ("image/png\tjunk", OCTET_STREAM),
    ("text/plain junk", OCTET_STREAM),
    ("a/b/c", OCTET_STREAM),
    ("/png", OCTET_STREAM),
    ("image/", OCTET_STREAM),
    ("image", OCTET_STREAM),
    ("-x/y", OCTET_STREAM),
    ("text/<b>", OCTET_STREAM),
    ("te\x00xt/plain", OCTET_STREAM),
    ("text/plain\n", OCTET_STREAM),
    ("image/\u212apng", OCTET_STREAM),  # KELVIN SIGN: lower() would make it "k"
    ("image/pngé", OCTET_STREAM),
    ("x/" + "y" * (MAX_MEDIA_TYPE - 2), "x/" + "y" * (MAX_MEDIA_TYPE - 2)),
    ("x/" + "y" * (MAX_MEDIA_TYPE - 1), OCTET_STREAM),
    ("application/vnd.ms-excel.sheet.macroEnabled.12",
     "application/vnd.ms-excel.sheet.macroenabled.12"),
    ("text/x-c++src", "text/x-c++src"),
])
def test_what_the_server_records(header: str | None, recorded: str) -> None:
    assert media_type_of_part(header) == recorded
    # Whatever is recorded passes the client's check: the two sides cannot disagree.
    assert is_media_type(recorded)


@pytest.mark.parametrize("value", [
    "Image/png", "image/png ", "image/png;x=y", "", "a/b/c", 3, None, b"image/png",
])
def test_the_check_takes_only_normalised_types(value: object) -> None:
    assert not is_media_type(value)
