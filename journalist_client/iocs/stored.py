"""Indicators as the vault keeps them: one JSON text of columns per indicator file.

Scope: :class:`~journalist_client.iocs.stix.Indicator` tuples to text and back; the
vault (journalist_client.indicators, vault migration 3) stores the text.

A row per indicator cost a Python step per row both ways: storing the million of the
benchmark took 2.3 s and reading it back into indicators 2.6 s, with 124 MB of vault.
As columns, the values and the indicator ids are two JSON arrays, and the fields a file
repeats for every indicator (kind, family, pattern key, references) are runs of
``[value, count]``; the JSON module's C code writes and reads the lot, and the
indicators are made from the columns in one C loop.

The text comes back from the vault this desk wrote and authenticated, but it is still
checked (strict JSON, the shape, equal lengths, known kinds): a damaged or hand-edited
vault raises :class:`StoredError`, never gives other indicators.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from itertools import chain, groupby, repeat
from operator import attrgetter
from typing import Any, Final, TypeVar

from journalist_client.iocs._json import StrictJsonError, loads
from journalist_client.iocs.stix import Indicator, Kind

__all__ = ["FORMAT", "StoredError", "decode", "encode"]

FORMAT: Final = 1
_KINDS: Final = {k.value: k for k in Kind}
_T = TypeVar("_T")


class StoredError(ValueError):
    """The stored text is not indicators this module wrote; the message says why."""


def _runs(column: Iterable[Any]) -> list[list[Any]]:
    values = list(column)
    # Most files repeat one value all through: list.count sees that in one C pass that
    # compares object identities (the loader gives the same object to each).
    if values and values.count(values[0]) == len(values):
        return [[values[0], len(values)]]
    return [[value, len(list(group))] for value, group in groupby(values)]


def encode(indicators: Sequence[Indicator]) -> str:
    """The indicators of one file as text; :func:`decode` gives them back, in order."""
    return json.dumps({
        "format": FORMAT,
        "value": list(map(attrgetter("value"), indicators)),
        "indicator_id": list(map(attrgetter("indicator_id"), indicators)),
        "kind": [[k.value, n] for k, n in _runs(map(attrgetter("kind"), indicators))],
        "family": _runs(map(attrgetter("family"), indicators)),
        "stix_key": _runs(map(attrgetter("stix_key"), indicators)),
        "references": [[list(r), n] for r, n in _runs(map(attrgetter("references"),
                                                          indicators))],
    }, ensure_ascii=False, separators=(",", ":"))


def _strings(data: dict[str, Any], name: str) -> list[str]:
    column = data.get(name)
    if not isinstance(column, list):
        raise StoredError(f"no list {name!r}")
    try:
        "".join(column)
    except TypeError:
        raise StoredError(f"{name!r} holds something other than text") from None
    return column


def _expand(data: dict[str, Any], name: str, count: int,
            convert: Callable[[Any], _T]) -> list[_T]:
    runs = data.get(name)
    if not isinstance(runs, list):
        raise StoredError(f"no list of runs {name!r}")
    values: list[_T] = []
    lengths: list[int] = []
    for run in runs:
        if not (isinstance(run, list) and len(run) == 2 and type(run[1]) is int
                and run[1] > 0):
            raise StoredError(f"{name!r} holds something other than [value, count] runs")
        values.append(convert(run[0]))
        lengths.append(run[1])
    if sum(lengths) != count:
        raise StoredError(f"{name!r} covers {sum(lengths)} indicators, not {count}")
    return list(chain.from_iterable(map(repeat, values, lengths)))


def _kind(value: Any) -> Kind:
    kind = _KINDS.get(value) if isinstance(value, str) else None
    if kind is None:
        raise StoredError(f"unknown kind {str(value)[:40]!r}")
    return kind


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise StoredError("a family or pattern key that is not text")
    return value


def _references(value: Any) -> tuple[str, ...]:
    if not (isinstance(value, list) and all(isinstance(r, str) for r in value)):
        raise StoredError("references that are not a list of text")
    return tuple(value)


def decode(source_file: str, text: str) -> list[Indicator]:
    """The indicators :func:`encode` stored for the file ``source_file``."""
    try:
        data = loads(text)
    except StrictJsonError as exc:
        raise StoredError(str(exc)) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StoredError(f"not stored indicators of format {FORMAT}")
    values = _strings(data, "value")
    ids = _strings(data, "indicator_id")
    count = len(values)
    if len(ids) != count:
        raise StoredError(f"{len(ids)} indicator ids for {count} values")
    columns = (_expand(data, "kind", count, _kind), values,
               _expand(data, "family", count, _text), repeat(source_file), ids,
               _expand(data, "stix_key", count, _text),
               _expand(data, "references", count, _references))
    # tuple.__new__ skips the named tuple's Python-level __new__ (the same object); the
    # file name is an endless repeat, the other columns have been checked equal.
    return list(map(tuple.__new__, repeat(Indicator), zip(*columns, strict=False)))
