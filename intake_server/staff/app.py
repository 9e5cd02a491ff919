"""The staff aiohttp application: signed bundles out, signed acks and replies in.

Every /v1/desks/ request is authenticated from its headers alone (keys.request_auth)
before a byte of its body is read; refusals are 401 with no detail, logged with the
reason and nothing about the request. Bodies are bundles, streamed to disk under a size
limit, hashed against the signed hash, and then verified as bundles (keys.bundle) with
the desk's *signing* key from the keyring: the transfer credential that authorises the
request cannot by itself acknowledge (and so delete) anything or speak to a source.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import hashlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from intake_server import _fs
from intake_server.config import Config
from intake_server.storage import Storage, new_id
from keys.bundle import BundleError, open_bundle, write_bundle_file
from keys.keyring import Keyring
from keys.request_auth import AuthError, RequestVerifier, VerifiedRequest
from keys.signing import SigningKey

from .store import StaffStore, index_document

__all__ = ["STAFF_STORE", "create_staff_app"]

log = logging.getLogger("intake_server.staff")

STAFF_STORE = web.AppKey("staff_store", StaffStore)
_VERIFIER = web.AppKey("verifier", RequestVerifier)
_SETTINGS = web.AppKey("staff_settings", dict)

_DESK_RE = re.compile(r"[a-z0-9-]{1,32}")
_ID_RE = re.compile(r"[0-9a-f]{32}")
_CURSOR_RE = re.compile(r"(0|[1-9][0-9]{0,17})")
_MAX_BODY = 64 * 1024 * 1024
_MAX_ACK_IDS = 10_000
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
            return _json(exc.status, {"error": exc.reason})
        raise
    except Exception:
        log.exception("staff request failed")
        return _json(500, {"error": "internal error"})


async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.popall("Server", None)
    response.headers.update(_HEADERS)


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
    out = _fs.safe_create_exclusive(store.upload_dir, name)
    try:
        with out:
            async for chunk in request.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > _MAX_BODY:
                    raise web.HTTPRequestEntityTooLarge(max_size=_MAX_BODY, actual_size=size)
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != verified.body_sha256:
            raise web.HTTPBadRequest(reason="body does not match its signed hash")
    except BaseException:
        _fs.safe_unlink(store.upload_dir, name)
        raise
    return _fs.safe_join(store.upload_dir, name)


def _desk_keys(request: web.Request, desk: str) -> dict[str, Any]:
    keyring: Keyring = request.app[_SETTINGS]["keyring"]
    entry = keyring.get(desk)
    if entry is None:
        raise web.HTTPNotFound(reason="unknown desk")
    return {desk: entry.verify_key_obj()}


async def health(request: web.Request) -> web.Response:
    """For monitoring over the staff onion: no ids, no counts per desk."""
    storage: Storage = request.app[_SETTINGS]["storage"]
    try:
        storage.check_free_space()
        disk = "ok"
    except Exception:
        disk = "low"
    return _json(200, {"status": "ok", "disk": disk})


async def export_bundle(request: web.Request) -> web.StreamResponse:
    _authenticate(request)
    desk = request.match_info["desk"]
    keyring: Keyring = request.app[_SETTINGS]["keyring"]
    if keyring.get(desk) is None:
        raise web.HTTPNotFound(reason="unknown desk")
    after_text = request.query.get("after", "0") or "0"
    if not _CURSOR_RE.fullmatch(after_text):
        raise web.HTTPBadRequest(reason="malformed cursor")
    store = request.app[STAFF_STORE]
    items = store.pending(desk, int(after_text))
    upto = items[-1].seq if items else int(after_text)
    # The bundle for (desk, after, upto) is built once and kept, so a dropped download
    # resumes (HTTP Range) or repeats with the very same bytes.
    name = f"{desk}-{int(after_text)}-{upto}.bundle"
    path = _fs.safe_join(store.outgoing_dir, name)
    if not path.exists():
        signing_key: SigningKey = request.app[_SETTINGS]["signing_key"]
        await asyncio.get_running_loop().run_in_executor(
            None, _build_bundle, store, path, desk, str(upto), items, signing_key
        )
    response = web.FileResponse(path, chunk_size=256 * 1024)
    response.headers["Content-Type"] = "application/octet-stream"
    response.headers["Amana-Cursor"] = str(upto)
    return response


def _build_bundle(
    store: StaffStore, path: Path, desk: str, cursor: str, items: list[Any], signing_key: SigningKey
) -> None:
    storage = store.storage
    files: list[tuple[str, Any]] = [
        ("index.json", _BytesSource(index_document(desk, cursor, items)))
    ]
    for item in items:
        files.append((f"{item.id}.json.age", storage.store_path(item.report_file)))
        for n, file_id in enumerate(item.attachment_files, start=1):
            files.append((f"{item.id}.a{n}.age", storage.store_path(file_id)))
    write_bundle_file(path, "desk-export", "server", files, signing_key)


class _BytesSource:
    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = len(self._data)
        chunk, self._data = self._data[:n], self._data[n:]
        return bytes(chunk)


def _load_json(raw: bytes, fmt: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise web.HTTPBadRequest(reason=f"{fmt}: not valid UTF-8 JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != fmt or doc.get("version") != 1:
        raise web.HTTPBadRequest(reason=f"{fmt}: wrong format or version")
    return doc


async def receive_acks(request: web.Request) -> web.Response:
    verified = _authenticate(request)
    desk = verified.desk
    trusted = _desk_keys(request, desk)
    path = await _receive_body(request, verified)
    store = request.app[STAFF_STORE]
    try:
        with open_bundle(path, trusted, kind="ack") as bundle:
            if bundle.names != ["ack.json"]:
                raise web.HTTPBadRequest(reason="an ack bundle holds exactly ack.json")
            doc = _load_json(bundle.read("ack.json", max_size=2 * 1024 * 1024), "amana-ack")
    except BundleError as exc:
        log.warning("ack bundle refused: %s", exc)
        raise web.HTTPBadRequest(reason=f"bundle refused: {exc}") from None
    finally:
        _fs.safe_unlink(store.upload_dir, path.name)
    ids = doc.get("ids")
    if (
        set(doc) != {"format", "version", "desk", "ids"}
        or doc.get("desk") != desk
        or not isinstance(ids, list)
        or len(ids) > _MAX_ACK_IDS
        or not all(isinstance(i, str) and _ID_RE.fullmatch(i) for i in ids)
    ):
        raise web.HTTPBadRequest(reason="ack.json is malformed")
    acked, deleted = store.acknowledge(desk, ids)
    return _json(200, {"acknowledged": acked, "deleted": deleted})


async def receive_outbox(request: web.Request) -> web.Response:
    verified = _authenticate(request)
    desk = verified.desk
    trusted = _desk_keys(request, desk)
    path = await _receive_body(request, verified)
    store = request.app[STAFF_STORE]
    stored = 0
    try:
        with open_bundle(path, trusted, kind="outbox") as bundle:
            doc = _load_json(bundle.read("outbox.json", max_size=2 * 1024 * 1024), "amana-outbox")
            items = _check_outbox(doc, desk, set(bundle.names))
            # Every item is checked before any is stored: a bad bundle changes nothing.
            for item in items:
                store.store_reply(
                    reply_recipient=item["to"],
                    desk=desk,
                    write=lambda dest, name=item["file"]: bundle.extract(name, dest),
                )
                stored += 1
    except BundleError as exc:
        log.warning("outbox bundle refused: %s", exc)
        raise web.HTTPBadRequest(reason=f"bundle refused: {exc}") from None
    finally:
        _fs.safe_unlink(store.upload_dir, path.name)
    return _json(200, {"replies": stored})


def _check_outbox(doc: dict[str, Any], desk: str, names: set[str]) -> list[dict[str, str]]:
    from keys.age import parse_recipient

    items = doc.get("items")
    if set(doc) != {"format", "version", "desk", "items"} or doc.get("desk") != desk:
        raise web.HTTPBadRequest(reason="outbox.json is malformed")
    if not isinstance(items, list) or len(items) > 1000:
        raise web.HTTPBadRequest(reason="outbox.json items are malformed")
    replies = []
    used = {"outbox.json"}
    for item in items:
        if not isinstance(item, dict) or item.get("type") != "reply":
            # Referrals are filed by a later release; refuse rather than drop them silently.
            raise web.HTTPBadRequest(reason="outbox item type not supported")
        if set(item) != {"type", "id", "to", "file"}:
            raise web.HTTPBadRequest(reason="outbox reply item is malformed")
        if not isinstance(item["id"], str) or not _ID_RE.fullmatch(item["id"]):
            raise web.HTTPBadRequest(reason="outbox reply id is malformed")
        if item["file"] != f"{item['id']}.reply.age" or item["file"] not in names:
            raise web.HTTPBadRequest(reason="outbox reply file is missing")
        try:
            parse_recipient(item["to"])
        except (ValueError, TypeError):
            raise web.HTTPBadRequest(reason="outbox reply recipient is malformed") from None
        used.add(item["file"])
        replies.append(item)
    if used != names:
        raise web.HTTPBadRequest(reason="outbox bundle holds files no item names")
    return replies


async def _retention_loop(app: web.Application) -> None:
    settings = app[_SETTINGS]
    clock: Callable[[], float] = settings["clock"]
    while True:
        today = _dt.datetime.fromtimestamp(clock(), _dt.UTC).date()
        removed = app[STAFF_STORE].expire(today, settings["retention_days"])
        if any(removed.values()):
            log.info(
                "retention removed %(submissions)d submission(s), %(replies)d reply(ies)", removed
            )
        await asyncio.sleep(_DAY_SECONDS)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    settings = app[_SETTINGS]
    storage: Storage = settings["storage"]
    owns_storage = storage._db is None  # noqa: SLF001 - shared with the source app or not
    if owns_storage:
        storage.open()
    store = StaffStore(storage)
    store.open()
    app[STAFF_STORE] = store
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
    retention_days: int = 30,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """The staff app. Pass the source app's Storage to share one database connection."""
    app = web.Application(middlewares=[_errors], client_max_size=_MAX_BODY)
    app[_SETTINGS] = {
        "storage": storage or Storage(config),
        "keyring": Keyring.load(config.keyring),
        "signing_key": signing_key,
        "retention_days": retention_days,
        "clock": clock,
    }
    app[_VERIFIER] = RequestVerifier(clock=clock)
    app.on_response_prepare.append(_on_prepare)
    app.cleanup_ctx.append(_lifecycle)
    app.router.add_get("/v1/health", health)
    app.router.add_get("/v1/desks/{desk:[a-z0-9-]{1,32}}/bundle", export_bundle)
    app.router.add_post("/v1/desks/{desk:[a-z0-9-]{1,32}}/acks", receive_acks)
    app.router.add_post("/v1/desks/{desk:[a-z0-9-]{1,32}}/outbox", receive_outbox)
    return app
