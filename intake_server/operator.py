"""What an operator with shell access does besides serving: register transfer keys, and
move bundles by USB stick for sites with no staff onion.

Each function opens the installation's storage itself, without cleaning anything up, so
it works whether or not the server is running (SQLite in WAL mode takes both). A running
server learns of deletions made here at its next start (its disk-usage count is only
refreshed then).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from keys import fs
from keys.keyring import Keyring
from keys.signing import KeyFormatError, SigningKey, VerifyKey

from .config import Config
from .install import SIGNING_KEY_NAME
from .staff.bundles import apply_bundle, build_export, lost_key_item_ids
from .staff.store import StaffStore
from .storage import Storage, utc_today

__all__ = ["OperatorError", "add_transfer_key", "drop_lost_key_items", "export_desk",
           "import_bundle", "load_signing_key", "remove_transfer_key"]


class OperatorError(Exception):
    """A clear, one-line reason an operator command could not run."""


def load_signing_key(config_path: Path) -> SigningKey:
    """The server's signing key, written by ``intake-server init`` beside the config."""
    path = config_path.resolve().parent / SIGNING_KEY_NAME
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="ascii").splitlines()]
        text = next(ln for ln in lines if ln and not ln.startswith("#"))
        return SigningKey.from_text(text)
    except FileNotFoundError:
        raise OperatorError(
            f"no server signing key at {path} (intake-server init makes one)"
        ) from None
    except (StopIteration, UnicodeDecodeError, KeyFormatError):
        raise OperatorError(f"{path} does not hold a server signing key") from None


class _Open:
    def __init__(self, config: Config) -> None:
        self.storage = Storage(config)

    def __enter__(self) -> StaffStore:
        # Never serving=True here: the server may be running, and cleaning up would
        # delete its uploads in flight and files it is about to commit.
        self.storage.open(serving=False)
        store = StaffStore(self.storage)
        store.open()
        return store

    def __exit__(self, *_: object) -> None:
        self.storage.close()


def _desk(config: Config, desk: str) -> None:
    if Keyring.load(config.keyring).get(desk) is None:
        raise OperatorError(f"desk {desk!r} is not in the keyring {config.keyring}")


def _verify_key(text: str) -> VerifyKey:
    try:
        return VerifyKey.from_text(text.strip())
    except KeyFormatError as exc:
        raise OperatorError(f"not a transfer key: {exc}") from None


def add_transfer_key(config: Config, desk: str, key_text: str) -> bool:
    _desk(config, desk)
    key = _verify_key(key_text)
    with _Open(config) as store:
        return store.add_transfer_key(desk, key)


def remove_transfer_key(config: Config, desk: str, key_text: str) -> bool:
    key = _verify_key(key_text)
    with _Open(config) as store:
        return store.remove_transfer_key(desk, key)


def export_desk(config: Config, signing_key: SigningKey, desk: str, out: Path,
                after: int = 0) -> dict[str, Any]:
    """What is unacknowledged for ``desk`` (after ``after``) as one bundle file: all of
    it, or as much as one bundle holds (``more`` then says to export again)."""
    _desk(config, desk)
    if out.exists():
        raise OperatorError(f"{out} exists; refusing to overwrite it")
    with _Open(config) as store:
        _, cursor, items = build_export(store, desk, after, signing_key, out=out,
                                        keyring=Keyring.load(config.keyring))
        # The stick may be seized too: no time finer than the day on it, as on the
        # bundles the transfer machine and the client write.
        fs.set_day(out, utc_today())
        # Without a LIMIT 1: pending() skips damaged items, which must not hide
        # the good ones behind them.
        more = bool(items) and bool(store.pending(desk, cursor))
    return {"items": len(items), "cursor": cursor, "more": more}


def drop_lost_key_items(config: Config, desk: str) -> dict[str, int]:
    """Release the desk's claim on the items encrypted to its lost key (no one can read
    them), as its ack would: an item addressed to other desks too stays for them; one
    addressed to this desk alone is deleted (docs/key-rotation.md)."""
    _desk(config, desk)
    keyring = Keyring.load(config.keyring)
    with _Open(config) as store:
        ids = lost_key_item_ids(store, keyring, desk)
        released, deleted = store.acknowledge(desk, ids)
    return {"released": released, "deleted": deleted}


def import_bundle(config: Config, path: Path) -> dict[str, Any]:
    """An ack or outbox bundle from any desk of the keyring, checked as the staff app does."""
    keyring = Keyring.load(config.keyring)
    with _Open(config) as store:
        return apply_bundle(store, path, keyring)
