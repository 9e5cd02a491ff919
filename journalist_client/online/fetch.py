"""fetch: download the desk's new ciphertext as one export bundle, resumable, verified.

The cursor of the last complete fetch is kept in the transfer directory
(``cursor.json``); each fetch asks for what came after it. The cursor is unsigned local
state: the offline client does not trust it, but checks the server's signed statement
in every export (journalist_client.continuity). A partial download is kept
beside the output and resumed with an HTTP range; the finished bundle must verify
against the server key before it is renamed into place and the cursor advanced.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Final

import aiohttp
from tqdm import tqdm  # type: ignore[import-untyped]

from journalist_client.online._http import base_url, connector, server_said
from journalist_client.online.credential import (
    TransferError,
    TransferSettings,
    adopt_server_keyring,
)
from keys import fs, strict_json
from keys.bundle import BundleError, open_bundle
from keys.request_auth import sign_request

__all__ = ["DEFAULT_MAX_BUNDLE_BYTES", "fetch"]

_CURSOR_RE: Final = re.compile(r"(0|[1-9][0-9]{0,17})")
_CHUNK: Final = 256 * 1024
_MAX_INDEX: Final = 1024 * 1024
_ATTEMPTS: Final = 4
# The largest export bundle fetch accepts: the server is the other side, and a
# hostile or broken one must not be able to fill the transfer machine's disk. The
# server caps a bundle at 1 GiB of ciphertext unless one submission is larger by
# itself (intake_server.staff.store.EXPORT_MAX_BYTES); raise this with --max-mib
# for a server that accepts submissions that large.
DEFAULT_MAX_BUNDLE_BYTES: Final = 4 * 1024 * 1024 * 1024


def _read_cursor(settings: TransferSettings) -> str:
    try:
        cursor = json.loads(settings.state_path.read_text())["after"]
    except FileNotFoundError:
        return "0"
    except (ValueError, KeyError, TypeError):
        raise TransferError(
            f"{settings.state_path} is damaged; delete it to fetch everything"
        ) from None
    if not isinstance(cursor, str) or not _CURSOR_RE.fullmatch(cursor):
        raise TransferError(f"{settings.state_path} is damaged; delete it to fetch everything")
    return cursor


def _verify_export(path: Path, settings: TransferSettings,
                   on_note: Callable[[str], None] | None) -> int:
    """Verify the export; take the key rotations of the keyring it carries (ADR 0011)."""
    with open_bundle(path, {"server": settings.server_key}, kind="desk-export") as bundle:
        for note in adopt_server_keyring(settings, bundle):
            if on_note is not None:
                on_note(note)
        return len(bundle.files)


def _states_something(path: Path, settings: TransferSettings) -> bool:
    """Whether an export with no new item is still worth carrying: its signed statement
    lists items the desk should hold already, or items deleted before it acknowledged
    them (ADR 0007). The offline client parses it strictly; here any doubt keeps it."""
    with open_bundle(path, {"server": settings.server_key}, kind="desk-export") as bundle:
        try:
            index = strict_json.loads(bundle.read("index.json", max_size=_MAX_INDEX),
                                      max_bytes=_MAX_INDEX, max_depth=6)
        except (BundleError, strict_json.StrictJSONError):
            return True
    if not isinstance(index, dict):
        return True
    if index.get("version") == 1:
        return False  # from a server older than the statement: there is none
    before = index.get("before_cursor")
    count = before.get("count") if isinstance(before, dict) else None
    return count != 0 or index.get("deleted_unacknowledged") != []


class _TooLarge(TransferError):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(
            f"the server's bundle is larger than {max_bytes // (1024 * 1024)} MiB, the most "
            "this machine accepts; nothing was kept. If the server really accepts "
            "submissions that large, fetch again with a larger --max-mib."
        )


async def _download(
    session: aiohttp.ClientSession,
    url: str,
    path: str,
    settings: TransferSettings,
    partial: Path,
    progress: Callable[[int], None],
    max_bytes: int,
) -> str:
    offset = partial.stat().st_size if partial.exists() else 0
    headers = sign_request(settings.credential, method="GET", path=path, desk=settings.desk)
    if offset:
        headers["Range"] = f"bytes={offset}-"
    # No redirects, here or in push: the server is the other side, and must not be
    # able to send this machine, its credential's signatures or its IP elsewhere.
    async with session.get(url, headers=headers, allow_redirects=False) as resp:
        if resp.status in (401, 403):
            raise TransferError(
                "the server refused this transfer credential: is it registered for this desk "
                "(intake-server desk add-transfer-key), and is this machine's clock right?"
            )
        if resp.status == 416:
            if not offset:
                raise TransferError("the server refused a range this machine never asked for")
            fs.safe_remove(partial)
            raise ConnectionError("stale partial download")
        if resp.status not in (200, 206):
            raise TransferError(f"the server answered {resp.status}: {await server_said(resp)}")
        cursor = resp.headers.get("Amana-Cursor", "")
        if not _CURSOR_RE.fullmatch(cursor):
            raise TransferError("the server sent no valid cursor")
        mode = "ab" if resp.status == 206 else "wb"
        if mode == "wb":
            progress(-offset)
            offset = 0
        if resp.content_length is not None and offset + resp.content_length > max_bytes:
            raise _TooLarge(max_bytes)
        with fs.open_resumable(partial, resume=mode == "ab") as out:
            async for chunk in resp.content.iter_chunked(_CHUNK):
                # Counted as it arrives: a declared length can be absent or a lie.
                offset += len(chunk)
                if offset > max_bytes:
                    raise _TooLarge(max_bytes)
                out.write(chunk)
                progress(len(chunk))
            out.flush()
            os.fsync(out.fileno())
    return cursor


async def fetch(
    settings: TransferSettings,
    *,
    server: str,
    out_dir: Path,
    tor_socks: str | None = None,
    show_progress: bool | None = True,
    max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES,
    on_note: Callable[[str], None] | None = None,
) -> Path | None:
    """Download every new item for the desk into one verified bundle in ``out_dir``.

    A dropped connection is retried, resuming where it stopped; running the command
    again later also resumes. A bundle larger than ``max_bytes`` is refused and
    nothing of it kept. Returns the bundle's path, or None if nothing was new and the
    server's statement in it says nothing the desk must see (ADR 0007): an export with
    no new item is kept when it names items the desk should already hold and has not
    acknowledged, or items deleted before it acknowledged them. Key rotations in the
    keyring the export carries are taken into transfer.json; ``on_note`` hears of them.
    """
    after = _read_cursor(settings)
    path = f"/v1/desks/{settings.desk}/bundle?after={after}"
    url = base_url(server, tor_socks) + path
    fs.safe_mkdir(out_dir, parents=True, exist_ok=True)  # new: 0700 whatever the umask
    partial = out_dir / f".export-{settings.desk}-{after}.partial"
    bar = tqdm(
        total=None,
        unit="B",
        unit_scale=True,
        desc="fetch",
        # show_progress None: tqdm draws only on a terminal, never into a file or a pipe.
        disable=None if show_progress is None else not show_progress,
        initial=partial.stat().st_size if partial.exists() else 0,
    )
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=60, sock_read=120)
    cursor = after
    try:
        async with aiohttp.ClientSession(
            connector=connector(tor_socks), timeout=timeout, auto_decompress=False
        ) as session:
            for attempt in range(1, _ATTEMPTS + 1):
                try:
                    cursor = await _download(session, url, path, settings, partial,
                                             bar.update, max_bytes)
                    _verify_export(partial, settings, on_note)
                    break
                except _TooLarge:
                    fs.safe_remove(partial)
                    raise
                except BundleError:
                    # A resumed download that does not verify (the server rebuilt the
                    # bundle meanwhile, or bytes were damaged): start again from zero.
                    fs.safe_remove(partial)
                    if attempt == _ATTEMPTS:
                        raise TransferError("the downloaded bundle does not verify") from None
                except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
                    if attempt == _ATTEMPTS:
                        raise TransferError(
                            f"connection failed ({exc.__class__.__name__}); run the same "
                            "command again to resume"
                        ) from None
                    await asyncio.sleep(2**attempt)
    finally:
        bar.close()
    if cursor == after and not _states_something(partial, settings):
        fs.safe_remove(partial)
        return None
    # Nothing new, but the server says that items are waiting before this machine's
    # cursor, or were deleted unacknowledged: the offline client must see that.
    name = f"export-{settings.desk}-{after}-{cursor}.bundle"
    # The same range fetched again (the cursor below was not saved before a crash):
    # the bundle just verified takes the place of the earlier one.
    fs.safe_unlink(out_dir, name)
    fs.move_durable(partial, out_dir, name)
    final = out_dir / name
    fs.atomic_write_bytes(settings.state_path, json.dumps({"after": cursor}).encode(),
                          overwrite=True)
    return final


