"""The staff aiohttp application: signed bundles out, signed acks and replies in.

A request that declares a compressed body is refused (415) before anything else
(intake_server.content_coding). Every /v1/desks/ request is authenticated from its
headers alone (keys.request_auth) before a byte of its body is read; refusals are 401
with no detail, logged with the reason and nothing about the request. Bodies are
bundles, streamed to disk under a size limit, hashed against the signed hash, and then
verified as bundles (keys.bundle) with the desk's *signing* key from the keyring: the
transfer credential that authorises the request cannot by itself acknowledge (and so
delete) anything or speak to a source.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as _dt
import functools
import hashlib
import logging
import re
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from intake_server.config import Config
from intake_server.content_coding import refuse_content_codings
from intake_server.pace import Pace
from intake_server.protocol_errors import install, secure
from intake_server.storage import DiskFull, Storage, is_out_of_space, new_id
from keys import fs
from keys.ids import DESK_ID_PATTERN
from keys.keyring import Keyring
from keys.request_auth import AuthError, RequestVerifier, VerifiedRequest
from keys.signing import SigningKey

from .bundles import (
    BundleRefused,
    apply_ack_bundle,
    apply_outbox_bundle,
    desk_keys,
    lost_key_items,
    write_export,
)
from .store import StaffStore

__all__ = ["STAFF_STORE", "create_staff_app"]

log = logging.getLogger("intake_server.staff")

STAFF_STORE = web.AppKey("staff_store", StaffStore)
_KEYRING = web.AppKey("keyring", Keyring)
_SIGNING_KEY = web.AppKey("signing_key", SigningKey)
_VERIFIER = web.AppKey("verifier", RequestVerifier)
_RETENTION_DAYS = web.AppKey("retention_days", int)
_CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")
_EXPORT_LOCKS: web.AppKey[collections.defaultdict[str, asyncio.Lock]] = web.AppKey(
    "export_locks")

_CURSOR_RE = re.compile(r"(0|[1-9][0-9]{0,17})")
_MAX_BODY = 64 * 1024 * 1024
_DAY_SECONDS = 24 * 3600

_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}


def _json(status: int, body: dict[str, Any]) -> web.Response:
    return web.json_response(body, status=status)


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400:
            response = _json(exc.status, {"error": exc.reason})
            # A body not read to its end (too large, too slow) is not read further.
            return _closing(response) if exc.status in (408, 413) else response
        raise
    except ConnectionError:
        # The transfer machine went away mid-body: not a failure of the server.
        return _closing(_json(400, {"error": "connection lost"}))
    except Exception as exc:
        if is_out_of_space(exc):
            return _closing(_json(503, {"error": "the server's disk is full"}))
        # Type and location only, as on the source side: a message may quote a body.
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        log.error("staff request failed: %s at %s:%s", type(exc).__name__,
                  Path(frame.filename).name, frame.lineno)
        return _json(500, {"error": "internal error"})


def _closing(response: web.Response) -> web.Response:
    response.force_close()  # the rest of the body, if any, was not read
    return response


def _refuse_coded(request: web.Request) -> web.Response:
    return _json(415, {"error": "compressed bodies are not accepted"})


async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    secure(response, _HEADERS)


def _authenticate(request: web.Request) -> VerifiedRequest:
    store = request.app[STAFF_STORE]
    try:
        verified = request.app[_VERIFIER].verify(
            request.headers,
            method=request.method,
            path=request.raw_path,
            keys_of=store.transfer_keys,
        )
    except AuthError as exc:
        log.warning("staff request refused: %s", exc)
        raise web.HTTPUnauthorized(reason="not authorised") from None
    if verified.desk != request.match_info["desk"]:
        log.warning("staff request refused: signed for another desk")
        raise web.HTTPForbidden(reason="not authorised for this desk")
    return verified


async def _receive_body(request: web.Request, verified: VerifiedRequest) -> Path:
    """Stream the body to staff-incoming/ within the size limit; check the signed hash."""
    store = request.app[STAFF_STORE]
    if request.content_length is not None and request.content_length > _MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=_MAX_BODY, actual_size=request.content_length)
    name = f"{new_id()}.bundle"
    digest = hashlib.sha256()
    size = 0
    # The source app's pace floor (pace.Pace): a signed body that falls behind it,
    # or sends nothing, is dropped (408) rather than holding its connection and its
    # file here for as long as it likes.
    pace = Pace(request)
    out = fs.create_exclusive(store.upload_dir, name)
    try:
        with out:
            async with asyncio.timeout(None) as deadline:
                pace.watch(deadline)
                async for chunk in request.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > _MAX_BODY:
                        raise web.HTTPRequestEntityTooLarge(max_size=_MAX_BODY,
                                                            actual_size=size)
                    if pace.behind():
                        raise TimeoutError
                    digest.update(chunk)
                    out.write(chunk)
        if digest.hexdigest() != verified.body_sha256:
            raise web.HTTPBadRequest(reason="body does not match its signed hash")
    except TimeoutError:
        fs.safe_unlink(store.upload_dir, name)
        raise web.HTTPRequestTimeout(reason="too slow") from None
    except BaseException:
        fs.safe_unlink(store.upload_dir, name)
        raise
    finally:
        pace.stop()
    return fs.safe_join(store.upload_dir, name)


def _trusted(request: web.Request, desk: str) -> dict[str, Any]:
    try:
        return desk_keys(request.app[_KEYRING], desk)
    except BundleRefused:
        raise web.HTTPNotFound(reason="unknown desk") from None


async def health(request: web.Request) -> web.Response:
    """For monitoring over the staff onion: no ids, no counts per desk."""
    try:
        request.app[STAFF_STORE].storage.check_free_space()
        disk = "ok"
    except Exception:
        disk = "low"
    return _json(200, {"status": "ok", "disk": disk})


async def export_bundle(request: web.Request) -> web.StreamResponse:
    _authenticate(request)
    desk = request.match_info["desk"]
    _trusted(request, desk)
    after = request.query.get("after", "0") or "0"
    if not _CURSOR_RE.fullmatch(after):
        raise web.HTTPBadRequest(reason="malformed cursor")
    store = request.app[STAFF_STORE]
    signing_key = request.app[_SIGNING_KEY]
    # One export at a time per desk, so that concurrent requests build a bundle once
    # (they used to race each other to the same name in outgoing/). The database and
    # the counters are used here, on the loop's thread; only the file copying goes to
    # a worker thread (SQLite's connection is not shared across threads mid-transaction).
    async with request.app[_EXPORT_LOCKS][desk]:
        items = store.pending(desk, int(after))
        statement = store.statement(desk, int(after))
        cursor = items[-1].seq if items else int(after)
        path = store.cached_export(desk, int(after), cursor)
        if not path.exists():
            try:
                store.make_room_for_export(desk, path, items)
            except DiskFull:
                log.warning("export refused: no room for the bundle above the floor")
                raise web.HTTPServiceUnavailable(reason="no room for the bundle") from None
            built = await asyncio.get_running_loop().run_in_executor(
                None,
                functools.partial(write_export, store, path, desk, int(after), cursor, items,
                                  statement, signing_key, keyring=request.app[_KEYRING]),
            )
            if built:
                store.count_cached_export(path)
        store.date_touched([path])
    response = _DatedFileResponse(path, store, chunk_size=256 * 1024)
    response.headers["Content-Type"] = "application/octet-stream"
    response.headers["Amana-Cursor"] = str(cursor)
    return response


class _DatedFileResponse(web.FileResponse):
    """A cached bundle, dated to the day again once sent: reading it for sending set its
    atime to the second (relatime)."""

    def __init__(self, path: Path, store: StaffStore, *, chunk_size: int) -> None:
        super().__init__(path, chunk_size=chunk_size)
        self._dated_path = path
        self._store = store

    async def prepare(self, request: web.BaseRequest) -> Any:
        try:
            return await super().prepare(request)
        finally:
            self._store.date_touched([self._dated_path])


async def _apply(
    request: web.Request, apply: Callable[[StaffStore, Path, Any], dict[str, Any]]
) -> web.Response:
    verified = _authenticate(request)
    trusted = _trusted(request, verified.desk)
    path = await _receive_body(request, verified)
    store = request.app[STAFF_STORE]
    try:
        result = apply(store, path, trusted)
    except BundleRefused as exc:
        log.warning("bundle refused: %s", exc)
        raise web.HTTPBadRequest(reason=f"bundle refused: {exc}") from None
    finally:
        fs.safe_unlink(store.upload_dir, path.name)
        store.date_touched()
    result.pop("desk", None)
    return _json(200, result)


async def receive_acks(request: web.Request) -> web.Response:
    keyring = request.app[_KEYRING]  # a desk's previous key may ack what was sent to it
    return await _apply(
        request, lambda store, path, trusted: apply_ack_bundle(store, path, trusted, keyring)
    )


async def receive_outbox(request: web.Request) -> web.Response:
    keyring = request.app[_KEYRING]
    return await _apply(
        request, lambda store, path, trusted: apply_outbox_bundle(store, path, trusted, keyring)
    )


async def _retention_loop(app: web.Application) -> None:
    clock = app[_CLOCK]
    while True:
        today = _dt.datetime.fromtimestamp(clock(), _dt.UTC).date()
        removed = app[STAFF_STORE].expire(today, app[_RETENTION_DAYS])
        if any(removed.values()):
            log.info(
                "retention removed %(submissions)d submission(s), %(replies)d reply(ies)", removed
            )
        await asyncio.sleep(_DAY_SECONDS)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    store = app[STAFF_STORE]
    storage = store.storage
    # Shared with the source app, which opened both, or the staff app's own.
    owns_storage = not storage.is_open
    if owns_storage:
        storage.open()
    if not store.is_open:
        store.open()
    for desk, count in lost_key_items(store, app[_KEYRING]).items():
        log.warning("desk %s: %d item(s) are encrypted to its lost key; no one can decrypt "
                    "them (docs/key-rotation.md)", desk, count)
    task = asyncio.create_task(_retention_loop(app))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    if owns_storage:
        storage.close()


def create_staff_app(
    config: Config,
    *,
    signing_key: SigningKey,
    storage: Storage | None = None,
    store: StaffStore | None = None,
    retention_days: int = 30,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """The staff app. Pass the source app's StaffStore (``store``), which that app opens,
    to share one database connection and one count of the quota; or a Storage of its
    own, opened here if it is not open yet."""
    app = web.Application(middlewares=[_errors, refuse_content_codings(_refuse_coded)],
                          client_max_size=_MAX_BODY)
    if store is None:
        store = StaffStore(storage or Storage(config))
    elif storage is not None:
        raise ValueError("pass a store or a storage, not both")
    app[STAFF_STORE] = store
    app[_KEYRING] = Keyring.load(config.keyring)
    app[_SIGNING_KEY] = signing_key
    app[_RETENTION_DAYS] = retention_days
    app[_CLOCK] = clock
    app[_VERIFIER] = RequestVerifier(clock=clock)
    app[_EXPORT_LOCKS] = collections.defaultdict(asyncio.Lock)
    app.on_response_prepare.append(_on_prepare)
    install()
    app.cleanup_ctx.append(_lifecycle)
    app.router.add_get("/v1/health", health)
    desk = f"/v1/desks/{{desk:{DESK_ID_PATTERN}}}"
    app.router.add_get(f"{desk}/bundle", export_bundle)
    app.router.add_post(f"{desk}/acks", receive_acks)
    app.router.add_post(f"{desk}/outbox", receive_outbox)
    return app
