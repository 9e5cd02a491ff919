"""Strict JSON for the indicator code: one set of hooks, and a streaming reader for bundles.

Strict means what keys.strict_json means: UTF-8 only, no NaN or Infinity, no duplicate
key anywhere (two parsers that disagree about a document must not both accept it),
nesting bounded by a refusal rather than a crash. keys.strict_json is not used here
for two reasons: it needs the whole document as one string (a published indicator
bundle reaches 312 MB, and ten times that in decoded Python objects), and its
extra walks over every decoded value (depth, lone surrogates) cost more than the
decode itself on a million indicators. The hooks below are the same checks the
standard library's C decoder calls as it goes; depth is bounded by the recursion
limit, turned into :class:`StrictJsonError`.

A batch of array elements (:meth:`ArrayStream._batch`) is decoded by jiter, the JSON
parser in Rust that pydantic maintains, with duplicate keys (at any depth) and NaN
refused: on a million indicators it needs four-fifths of the standard decoder's time
with the hooks. jiter only makes acceptance faster, never wider: whatever it refuses
(a duplicate key, nesting past its limit of 200, an escaped lone surrogate, anything
that is not JSON) sends those elements to the standard decoder one at a time, which
accepts them or refuses them in its own words. So what is accepted and how a refusal
reads are the standard decoder's; the tests check that jiter accepts nothing the
standard decoder refuses, and gives equal values when both accept.

:class:`ArrayStream` reads a document of the shape ``{"k": v, ..., "objects": [e, ...]}``
a chunk at a time and yields the elements of the one array named, each decoded with
the strict decoder; memory holds one chunk and one element, never the document.
"""

from __future__ import annotations

import codecs
import functools
import json
import re
from collections.abc import Callable, Iterator
from typing import Any, Final, Protocol

import jiter

__all__ = ["ArrayStream", "Readable", "StrictJsonError", "loads", "reject_constant",
           "strict_object"]

CHUNK_BYTES: Final = 4 * 1024 * 1024
_WS: Final = re.compile(r"[ \t\n\r]*")
# At most this much text per batch: its decoded objects (about eight times the text)
# are then still in the processor's cache when the caller reads them.
BATCH_CHARS = 64 * 1024
# Fewer characters left than this in the buffer: read more before cutting a batch.
_MIN_BATCH_CHARS: Final = 256 * 1024


class Readable(Protocol):
    """What :class:`ArrayStream` reads from: a binary file, or anything with its read."""

    def read(self, size: int, /) -> bytes: ...


class StrictJsonError(ValueError):
    """Not strict JSON, or beyond a bound; the message says which."""


def strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook``: a dict, refusing a key given twice."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise StrictJsonError("duplicate key in a JSON object")
    return obj


def reject_constant(name: str) -> None:
    """``parse_constant``: NaN, Infinity and -Infinity are not JSON."""
    raise StrictJsonError(f"{name} is not JSON")


_DECODER: Final = json.JSONDecoder(object_pairs_hook=strict_object,
                                   parse_constant=reject_constant)
# bytes -> value, raising ValueError on anything it refuses. cache_mode="keys": a bundle
# repeats a dozen keys a million times, and its values are nearly all distinct.
_batch_decode: Final = functools.partial(jiter.from_json, allow_inf_nan=False,
                                         catch_duplicate_keys=True, cache_mode="keys")


def loads(data: bytes | str, *, encoding: str = "utf-8") -> Any:
    """One whole document, strictly (``utf-8-sig`` allows a leading BOM); text as is."""
    try:
        return json.loads(data if isinstance(data, str) else data.decode(encoding),
                          object_pairs_hook=strict_object, parse_constant=reject_constant)
    except UnicodeDecodeError as exc:
        raise StrictJsonError(f"not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise StrictJsonError(f"not JSON: {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise StrictJsonError("JSON nested too deeply") from None


class ArrayStream:
    """The elements of ``document[array_key]``, read from a binary stream in chunks.

    Iterate once: the elements come in lists, in order (a list per buffer, not one
    generator step per element, which cost as much as decoding them). Then
    :attr:`members` holds the document's other top-level members (each at most
    ``max_value_chars``) and :attr:`found_array` says whether the key held an array.
    Every problem raises :class:`StrictJsonError`: bytes past ``max_bytes``, a single
    value over ``max_value_chars``, text that is not UTF-8 or not JSON (with its line),
    a duplicate key, a constant, deep nesting. A document
    whose top level is not an object is decoded whole (within ``max_value_chars``) and
    left in :attr:`top` for the caller to refuse with its own words.
    """

    def __init__(self, stream: Readable, array_key: str, *, max_bytes: int,
                 max_value_chars: int, on_read: Callable[[int], None] | None = None) -> None:
        self._stream = stream
        self._key = array_key
        self._max_bytes = max_bytes
        self._max_value = max_value_chars
        self._on_read = on_read
        self._utf8 = codecs.getincrementaldecoder("utf-8")("strict")
        self._buf = ""
        self._pos = 0
        self._eof = False
        self._lines = 0  # newlines in the text already dropped from the buffer
        # The buffer position up to which batches are not tried (one failed there).
        self._unbatchable = -1
        self.bytes_read = 0
        self.members: dict[str, Any] = {}
        self.found_array = False
        self.top: Any = None

    # --- the buffer ------------------------------------------------------------------

    def _fill(self) -> bool:
        if self._eof:
            return False
        chunk = self._stream.read(CHUNK_BYTES)
        at_end = not chunk
        if chunk and len(chunk) < CHUNK_BYTES:
            # A short read is most often the end of the file: one more read says so now,
            # so that the last chunk is known to be the last (see _batch).
            more = self._stream.read(CHUNK_BYTES - len(chunk))
            at_end = not more
            chunk += more
        pending = len(self._utf8.getstate()[0])
        self.bytes_read += len(chunk)
        if self.bytes_read > self._max_bytes:
            raise StrictJsonError(f"larger than the {self._max_bytes:,}-byte limit")
        try:
            text = self._utf8.decode(chunk, final=at_end)
        except UnicodeDecodeError as exc:
            raise StrictJsonError(
                f"not UTF-8 (byte {self.bytes_read - len(chunk) - pending + exc.start})"
            ) from None
        if self._pos:
            # Published bundles are most often one line: find (memchr) is several times
            # quicker than count, which is then skipped.
            if self._buf.find("\n", 0, self._pos) >= 0:
                self._lines += self._buf.count("\n", 0, self._pos)
            self._buf = self._buf[self._pos:]
            self._unbatchable -= self._pos
            self._pos = 0
        self._buf += text
        self._eof = at_end
        if self._on_read is not None and chunk:
            self._on_read(len(chunk))
        return True

    def _more(self) -> bool:
        if len(self._buf) - self._pos > self._max_value:
            raise StrictJsonError(f"a JSON value longer than {self._max_value:,} characters")
        return self._fill()

    def _line(self, position: int) -> int:
        return self._lines + self._buf.count("\n", 0, position) + 1

    def _peek(self) -> str:
        """The next character after whitespace ("" at the end)."""
        while True:
            self._pos = _WS.match(self._buf, self._pos).end()  # type: ignore[union-attr]
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._fill():
                return ""

    def _expect(self, chars: str, what: str) -> str:
        char = self._peek()
        if not char or char not in chars:
            raise StrictJsonError(f"not JSON: Expecting {what} at line {self._line(self._pos)}")
        self._pos += 1
        return char

    def _value(self) -> Any:
        self._peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self._buf, self._pos)
            except json.JSONDecodeError as exc:
                # Cut off by the chunk's end, or not JSON: more text tells which.
                if self._more():
                    continue
                raise StrictJsonError(f"not JSON: {exc.msg} at line "
                                      f"{self._lines + exc.lineno}") from None
            except RecursionError:
                raise StrictJsonError("JSON nested too deeply") from None
            if end == len(self._buf) and self._more():
                continue  # a number at the very end of the chunk may go on
            self._pos = end
            return value

    # --- the document ----------------------------------------------------------------

    def __iter__(self) -> Iterator[list[Any]]:
        if self._peek() != "{":
            self.top = self._value()
            self._end()
            return
        self._pos += 1
        if self._peek() == "}":
            self._pos += 1
        else:
            while True:
                if self._peek() != '"':
                    self._expect("", "property name enclosed in double quotes")
                key = self._value()
                if key in self.members or (key == self._key and self.found_array):
                    raise StrictJsonError("duplicate key in a JSON object")
                self._expect(":", "':' delimiter")
                if key == self._key and self._peek() == "[":
                    self.found_array = True
                    yield from self._elements()
                else:
                    self.members[key] = self._value()
                if self._expect(",}", "',' delimiter") == "}":
                    break
        self._end()
        self.top = self.members

    def _elements(self) -> Iterator[list[Any]]:
        self._pos += 1
        if self._peek() == "]":
            self._pos += 1
            return
        while True:
            batch = self._batch()
            yield [self._value()] if batch is None else batch
            if self._expect(",]", "',' delimiter") == "]":
                return

    def _batch(self) -> list[Any] | None:
        """The buffer's whole elements decoded in one call, or None (then one at a time).

        The array holds a million elements: decoding each alone costs twice what the
        decoder takes for them together. So the buffer is cut after a "}" that a ","
        follows and "[" + text + "]" is decoded. JSON is read left to right, so if that
        text is one valid array, the cut fell between two elements of the real one and
        these are its elements; if the "}" was inside an element (a nested object, a
        string), the text is not valid and the elements are taken one at a time up to
        that point. They are also taken one at a time, by the standard decoder, when
        jiter refuses the text for any other reason (a duplicate key, a constant): the
        element at fault then raises with the standard decoder's message. Once the
        whole rest of the file is in the buffer and within one batch's length, a "}"
        that a "]" follows is a cut too (the same argument:
        after the elements decoded, the real array's next character is its "]"), so
        the array's last elements are not taken one at a time. (Only then: elsewhere
        such a "}" is most often inside an element, a nested list of objects.) The
        delimiter after the cut is left for the caller to read.
        """
        if len(self._buf) - self._pos < _MIN_BATCH_CHARS and not self._eof:
            self._fill()
        buf, pos = self._buf, self._pos
        if pos <= self._unbatchable:
            return None
        at_end = self._eof and len(buf) - pos <= BATCH_CHARS
        cut = buf.rfind("}", pos, pos + BATCH_CHARS)
        for _ in range(2):
            if cut <= pos:
                break
            delimiter = _WS.match(buf, cut + 1).end()  # type: ignore[union-attr]
            if delimiter < len(buf) and (buf[delimiter] == ","
                                         or (at_end and buf[delimiter] == "]")):
                try:
                    values: list[Any] = _batch_decode(("[" + buf[pos:cut + 1] + "]").encode())
                except ValueError:
                    self._unbatchable = cut
                    return None
                self._pos = delimiter
                return values
            cut = buf.rfind("}", pos, cut)
        return None

    def _end(self) -> None:
        if self._peek():
            raise StrictJsonError(f"not JSON: Extra data at line {self._line(self._pos)}")
