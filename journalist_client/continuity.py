"""Has every item the server holds for this desk reached this vault? (ADR 0007)

The transfer machine chooses what to fetch (its ``cursor.json``) and what to carry, so
it could keep reports from the desk: skip them with an edited cursor and let retention
delete them on the server. Each export bundle therefore carries, in its signed
index.json (docs/transfer-format.md, version 2), the server's statement for the desk:
the ids of every unacknowledged item *at or before* the cursor the export was asked
for (the desk is supposed to hold those already), and the items deleted before the
desk acknowledged them.

The vault keeps two tables:

- ``expected``: every id a statement said this desk should already hold, while the
  vault does not hold it. Only the arrival of the item (or a statement that it was
  deleted) settles it: the check does not depend on the order bundles are imported in,
  and an older bundle imported late cannot clear it.
- ``losses``: items the server deleted (retention, or its operator) that never reached
  this vault, with the day each was received and deleted. A fact to show, for good.

An item expected and not held is *missing*: ``import`` exits non-zero and ``list``
says so, until it arrives. Bundles of index version 1 carry no statement; they are
imported with a warning that continuity cannot be checked for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from journalist_client.vault import Vault, today
from keys import ids

__all__ = ["Continuity", "Loss", "Statement", "StatementError", "check", "parse_statement",
           "record"]

_MAX_IDS: Final = 100_000


class StatementError(ValueError):
    """index.json's statement is malformed (the bundle is then refused whole)."""


@dataclass(frozen=True)
class Loss:
    id: str
    received_day: str
    deleted_day: str


@dataclass(frozen=True)
class Statement:
    """The server's signed statement for this desk, as index.json version 2 carries it."""

    after: str
    unacknowledged: int
    before_cursor_count: int
    before_cursor: tuple[str, ...]
    deleted: tuple[Loss, ...]


@dataclass(frozen=True)
class Continuity:
    """What the vault knows it is missing, and what it has lost."""

    missing: tuple[str, ...]
    losses: tuple[Loss, ...]


def _count(value: object, where: str) -> int:
    if type(value) is not int or not 0 <= value <= 2**53:
        raise StatementError(f"index.json: {where} must be a non-negative integer")
    return value


def _day(value: object, where: str) -> str:
    if not isinstance(value, str) or not ids.is_day(value):
        raise StatementError(f"index.json: {where} must be a YYYY-MM-DD day")
    return value


def parse_statement(obj: dict[str, Any]) -> Statement:
    """The statement members of a version-2 index.json (already checked to be present)."""
    after = obj["after"]
    if not isinstance(after, str) or len(after) > 128:
        raise StatementError("index.json: after must be a string of at most 128 characters")
    before = obj["before_cursor"]
    if not isinstance(before, dict) or set(before) != {"count", "ids"}:
        raise StatementError("index.json: before_cursor must have exactly count, ids")
    count = _count(before["count"], "before_cursor.count")
    listed = before["ids"]
    if (not isinstance(listed, list) or len(listed) > min(count, _MAX_IDS)
            or not all(ids.is_hex_id(i) for i in listed) or len(set(listed)) != len(listed)):
        raise StatementError("index.json: before_cursor.ids must be at most count distinct ids")
    deleted = obj["deleted_unacknowledged"]
    if not isinstance(deleted, list) or len(deleted) > _MAX_IDS:
        raise StatementError("index.json: deleted_unacknowledged must be a list")
    losses = []
    for i, entry in enumerate(deleted):
        where = f"deleted_unacknowledged[{i}]"
        if not isinstance(entry, dict) or set(entry) != {"id", "day", "deleted"}:
            raise StatementError(f"index.json: {where} must have exactly id, day, deleted")
        if not ids.is_hex_id(entry["id"]):
            raise StatementError(f"index.json: {where}.id must be 32 lower-case hex digits")
        losses.append(Loss(entry["id"], _day(entry["day"], f"{where}.day"),
                           _day(entry["deleted"], f"{where}.deleted")))
    return Statement(after=after, unacknowledged=_count(obj["unacknowledged"], "unacknowledged"),
                     before_cursor_count=count, before_cursor=tuple(listed),
                     deleted=tuple(losses))


# Every id this vault holds, in the clear or set aside: what a statement is checked against.
_HELD: Final = "SELECT id FROM items UNION SELECT item_id FROM quarantine"


def record(vault: Vault, bundle_id: str, statement: Statement) -> list[Loss]:
    """Take in a statement (after the bundle's own items are stored); the new losses."""
    held = {row[0] for row in vault.conn.execute(_HELD)}
    day = today()
    vault.conn.executemany(
        "INSERT OR IGNORE INTO expected (id, bundle_id, day) VALUES (?, ?, ?)",
        [(item_id, bundle_id, day) for item_id in statement.before_cursor
         if item_id not in held])
    new: list[Loss] = []
    for loss in statement.deleted:
        if loss.id in held:
            continue  # deleted on the server after it reached this vault: nothing lost
        cur = vault.conn.execute(
            "INSERT OR IGNORE INTO losses (id, received_day, deleted_day, bundle_id) "
            "VALUES (?, ?, ?, ?)", (loss.id, loss.received_day, loss.deleted_day, bundle_id))
        if cur.rowcount == 1:
            new.append(loss)
    vault.changed()
    return new


def check(vault: Vault) -> Continuity:
    """Items a signed statement said this vault holds and that it does not, and losses."""
    missing = vault.conn.execute(
        f"SELECT id FROM expected WHERE id NOT IN ({_HELD})"  # noqa: S608 - constant
        " AND id NOT IN (SELECT id FROM losses) ORDER BY id"
    ).fetchall()
    losses = vault.conn.execute(
        "SELECT id, received_day, deleted_day FROM losses ORDER BY deleted_day, id"
    ).fetchall()
    return Continuity(missing=tuple(r[0] for r in missing),
                      losses=tuple(Loss(*r) for r in losses))
