"""Indicators as the vault keeps them: per indicator file, a JSON text of columns and
two texts of lines.

Scope: an indicator file's :class:`~journalist_client.iocs.stix.IndicatorColumns` to
:class:`Stored` and back to indicators; the vault (journalist_client.indicators, vault
migration 3, table ``ioc_columns``) keeps the three texts.

A row per indicator cost a Python step per row both ways: storing the million of the
benchmark took 2.3 s and reading it back into indicators 2.6 s, with 124 MB of vault.
As columns, the values and the indicator ids, nearly all distinct, are texts of one
value per line (joined and split in C, and not escaped: a JSON string of them cost
0.2 s each way for a million); the fields a file repeats for every indicator (kind,
family, pattern key, references) are runs of ``[value, count]`` in the JSON text. A
value holding a newline (a file name may) cannot be a line: then that column is a JSON
array in the JSON text and its lines are NULL. The indicators are made from the columns
in one C loop.

The texts come back from the vault this desk wrote and authenticated, but they are
still checked (strict JSON, the shape, equal lengths, known kinds): a damaged or
hand-edited vault raises :class:`StoredError`, never gives other indicators.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from itertools import chain, groupby, repeat
from typing import Any, Final, NamedTuple, TypeVar

from journalist_client.iocs._json import StrictJsonError, loads
from journalist_client.iocs.stix import Indicator, IndicatorColumns, Kind

__all__ = ["FORMAT", "Stored", "StoredError", "decode", "encode"]

# 2: values and ids as lines (1, never released, held them as JSON arrays).
FORMAT: Final = 2
_KINDS: Final = {k.value: k for k in Kind}
_T = TypeVar("_T")


class StoredError(ValueError):
    """The stored texts are not indicators this module wrote; the message says why."""


class Stored(NamedTuple):
    """What the vault keeps of one file's indicators (``ioc_columns``'s three texts)."""

    columns: str
    value_lines: str | None
    id_lines: str | None


def _runs(values: list[Any]) -> list[list[Any]]:
    # Most files repeat one value all through: list.count sees that in one C pass that
    # compares object identities (the loader gives the same object to each).
    if values and values.count(values[0]) == len(values):
        return [[values[0], len(values)]]
    return [[value, len(list(group))] for value, group in groupby(values)]


def _as_lines(column: list[str]) -> str | None:
    # One value per line, unless a value holds a newline (there are then more lines
    # than values) or there is none (the empty text would read as one empty value).
    text = "\n".join(column)
    return text if column and text.count("\n") == len(column) - 1 else None


def encode(columns: IndicatorColumns) -> Stored:
    """One file's indicators as texts; :func:`decode` gives them back, in order."""
    value_lines = _as_lines(columns.values)
    id_lines = _as_lines(columns.ids)
    data: dict[str, Any] = {
        "format": FORMAT,
        "kind": [[k.value, n] for k, n in _runs(columns.kinds)],
        "family": _runs(columns.families),
        "stix_key": _runs(columns.keys),
        "references": [[list(r), n] for r, n in _runs(columns.references)],
    }
    if value_lines is None:
        data["value"] = columns.values
    if id_lines is None:
        data["indicator_id"] = columns.ids
    return Stored(json.dumps(data, ensure_ascii=False, separators=(",", ":")),
                  value_lines, id_lines)


def _strings(data: dict[str, Any], name: str, lines: str | None) -> list[str]:
    column = data.get(name)
    if lines is not None and column is None:
        return lines.split("\n")
    if lines is not None or not isinstance(column, list):
        raise StoredError(f"{name!r} is neither lines nor a list (or is both)")
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


def decode(source_file: str, stored: Stored) -> list[Indicator]:
    """The indicators :func:`encode` stored for the file ``source_file``."""
    try:
        data = loads(stored.columns)
    except StrictJsonError as exc:
        raise StoredError(str(exc)) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StoredError(f"not stored indicators of format {FORMAT}")
    values = _strings(data, "value", stored.value_lines)
    ids = _strings(data, "indicator_id", stored.id_lines)
    count = len(values)
    if len(ids) != count:
        raise StoredError(f"{len(ids)} indicator ids for {count} values")
    columns = IndicatorColumns(
        _expand(data, "kind", count, _kind), values, _expand(data, "family", count, _text),
        ids, _expand(data, "stix_key", count, _text),
        _expand(data, "references", count, _references))
    return columns.indicators(source_file)
