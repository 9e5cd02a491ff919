"""Hostile text reaches the terminal inert: no escape sequence survives."""

from __future__ import annotations

import json

import pytest

from journalist_client.display import inert, inert_block, inert_json


@pytest.mark.parametrize(("text", "shown"), [
    ("\x1b[2J", "\\x1b[2J"),
    ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),
    ("\x9b31m", "\\x9b31m"),
    ("a\rb", "a\\x0db"),
    ("x\x08y", "x\\x08y"),
    ("\x7f", "\\x7f"),
    ("\u202egnp.exe", "\\u202egnp.exe"),
    ("\u2066x\u2069", "\\u2066x\\u2069"),
    ("a\u2028b", "a\\u2028b"),
    ("\\x1b", "\\\\x1b"),
    ("<script>alert(1)</script>", "<script>alert(1)</script>"),
    ("الإمارات ‌ok", "الإمارات ‌ok"),  # ZWNJ is ordinary Persian/Arabic text
    ("line\nnext", "line\\x0anext"),
])
def test_inert(text: str, shown: str) -> None:
    assert inert(text) == shown


def test_no_control_character_survives_any_input() -> None:
    text = "".join(chr(c) for c in range(0x00, 0x250)) + "\u061c\u200e\u200f\u202a\u202e\u2069"
    out = inert(text)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in out)
    assert not set("\u061c\u200e\u200f\u202a\u202e\u2069") & set(out)


def test_blocks_keep_lines_but_indent_them() -> None:
    assert inert_block("one\ntwo\x1b[A", "  ") == "  one\n  two\\x1b[A"


def test_invisible_format_characters_are_shown_but_joiners_stay() -> None:
    # Zero-width space, word joiner, BOM, soft hyphen and a tag character can hide text
    # or make look-alike attachment names; ZWNJ/ZWJ are part of Persian/Arabic writing.
    from journalist_client.display import inert

    shown = inert("a\u200bb\u2060c\ufeffd\u00ade\U000e0041f")
    for hidden in ("\u200b", "\u2060", "\ufeff", "\u00ad", "\U000e0041"):
        assert hidden not in shown
    assert inert("می\u200cخواهم") == "می\u200cخواهم"


@pytest.mark.parametrize("text", [
    "\x1b[2J\x7f\x9b1m\u202eexe.pdf\u2028\u200b\ufeff",
    "الإمارات \u200c\u200d é 🙂 \U000e0041 \udc80",
    "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000 and c % 97 == 0),
])
def test_inert_json_keeps_the_data_and_escapes_what_acts_on_a_terminal(text: str) -> None:
    document = inert_json(json.dumps({"t": text}, ensure_ascii=False))
    assert json.loads(document) == {"t": text}
    # What remains raw is what inert() leaves raw (backslashes aside: JSON's own escapes).
    for c in set(document) - {"\\", "\n"}:
        assert inert(c) == c, repr(c)
    assert "الإمارات" in document or "الإمارات" not in text
