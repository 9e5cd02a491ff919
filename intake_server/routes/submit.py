"""The questionnaire (GET) and the streamed, encrypted upload (POST).

The POST body is read with request.multipart(), part by part, never buffered
whole: each file part goes chunk by chunk into an age Encryptor for every chosen
desk, straight into incoming/. Text fields are read up to their limit and kept
in memory only until the report JSON is encrypted. The source is shown the
codename only after Transaction.commit() returned, i.e. once the files are in
store/ and the row is committed.

Order of the form matters and the template keeps it: the CSRF token first, the
desks before the attachments (file parts need their recipients before the first
byte can be encrypted).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import BadHttpMessage

from intake_server import report as rpt
from intake_server.app import CONFIG, KEYRING, SOURCES, STORAGE, UPLOADS, error_page, render
from intake_server.report import FIELDS, FILE_FIELD, FormError
from intake_server.sources import NewSource
from intake_server.storage import (
    WRITE_BATCH,
    DiskFull,
    QuotaExceeded,
    StorageError,
    Transaction,
    new_id,
)
from keys.age import Recipient, parse_recipient
from keys.keyring import Keyring

__all__ = ["CSRF_COOKIE", "form", "receive"]

log = logging.getLogger("intake_server.submit")

CSRF_COOKIE = "amana_csrf"
CHUNK = 64 * 1024
# File parts are read in larger pieces: aiohttp's boundary scan costs per call, and
# 256 KiB per upload in flight is still a small, fixed bound. The encryptor cuts
# them into 64 KiB age chunks.
FILE_CHUNK = 256 * 1024
# The pace an upload must keep: MIN_BYTES_PER_SECOND, far below any working Tor
# circuit. An upload starts with PACE_GRACE_SECONDS of credit, and can bank at most
# PACE_CREDIT_SECONDS (the read timeout's default): enough to ride out a stalled
# circuit, not enough to send a lot at first and then trickle for days.
MIN_BYTES_PER_SECOND = 1024
PACE_GRACE_SECONDS = 60.0
PACE_CREDIT_SECONDS = 120.0
# Text parts a well-formed form can produce (multi-valued fields included), with
# room to spare; file parts are bounded by max_files on top.
MAX_TEXT_PARTS = 200

R_TOO_LARGE = rpt.N_("Your report is larger than this server accepts. Nothing was kept. "
                     "Please send fewer or smaller files.")
R_TOO_MANY_FILES = rpt.N_("Your report has more attachments than this server accepts. "
                          "Nothing was kept.")
R_FIELD_TOO_LARGE = rpt.N_("One of the text fields is longer than this server accepts. "
                           "Nothing was kept.")
R_BUSY = rpt.N_("The server is receiving many reports right now. Nothing was kept. "
                "Please wait a few minutes and send it again.")
R_FULL = rpt.N_("The server cannot accept reports right now. Nothing was kept. "
                "Please try again later.")
R_SLOW = rpt.N_("The connection was too slow and the upload stopped. Nothing was kept. "
                "Please try again.")


def _csrf_token(request: web.Request) -> str:
    token = request.cookies.get(CSRF_COOKIE, "")
    if len(token) == 43 and token.replace("-", "").replace("_", "").isalnum():
        return token
    return secrets.token_urlsafe(32)


def _same(secret: str, given: str) -> bool:
    """A CSRF token check: constant-time, and never true for an empty secret."""
    return bool(secret) and hmac.compare_digest(secret.encode("utf-8", "replace"),
                                                given.encode("utf-8", "replace"))


def _default_desk(request: web.Request) -> str:
    cfg = request.app[CONFIG]
    return cfg.default_desk or request.app[KEYRING].desks[0].id


async def form(request: web.Request) -> web.Response:
    lang = request.match_info["lang"]
    token = _csrf_token(request)
    desks = [{"id": d.id, "name": d.name(lang), "fingerprint": d.fingerprint}
             for d in request.app[KEYRING].desks]
    cfg = request.app[CONFIG]
    resp = render(request, "submit.html", lang=lang, csrf=token, desks=desks,
                  default_desk=_default_desk(request), categories=rpt.CATEGORIES,
                  targets=rpt.TARGETS, professions=rpt.PROFESSIONS,
                  platforms=rpt.PLATFORMS, countries=rpt.COUNTRIES,
                  country_extra=rpt.COUNTRY_EXTRA, max_files=cfg.max_files,
                  max_mib=cfg.max_submission_bytes // (1024 * 1024))
    # SameSite=Strict: another site cannot make the browser send it. HttpOnly: no
    # script could read it anyway (there is none), but it costs nothing.
    resp.set_cookie(CSRF_COOKIE, token, path="/", httponly=True, samesite="Strict")
    return resp


class _Limits:
    def __init__(self, request: web.Request) -> None:
        self.cfg = request.app[CONFIG]
        self.total = 0
        self.files = 0
        self.parts = 0
        self.credit = MIN_BYTES_PER_SECOND * PACE_GRACE_SECONDS
        self.checked = time.monotonic()

    def add(self, n: int) -> None:
        """Count ``n`` bytes of the body (0 at a part boundary) and check the pace."""
        self.total += n
        if self.total > self.cfg.max_submission_bytes:
            raise FormError(413, R_TOO_LARGE)
        # The read timeout bounds the wait for each piece, not the pace: a client that
        # drips a few bytes (or empty parts) just inside it could hold an upload slot
        # for ever, and a handful of them every slot. A leaky bucket: credit drains at
        # the minimum pace, bytes refill it up to a cap, and an upload out of credit
        # is dropped.
        now = time.monotonic()
        drained = MIN_BYTES_PER_SECOND * (now - self.checked)
        self.credit = min(self.credit - drained + n, MIN_BYTES_PER_SECOND * PACE_CREDIT_SECONDS)
        self.checked = now
        if self.credit < 0:
            raise FormError(408, R_SLOW)


async def _read(part: BodyPartReader, timeout: float, size: int = CHUNK) -> bytes:
    async with asyncio.timeout(timeout):
        return await part.read_chunk(size)


async def _parts(request: web.Request, limits: _Limits,
                 timeout: float) -> AsyncIterator[BodyPartReader]:
    """The parts of a multipart body, one at a time, never buffered: each read under
    the timeout, nested multipart refused, and the number of parts bounded (every part
    costs a header parse, empty ones included)."""
    try:
        async with asyncio.timeout(timeout):
            reader = await request.multipart()
    except (ValueError, KeyError, AssertionError, BadHttpMessage):
        raise FormError(400, rpt.R_MALFORMED) from None
    while True:
        try:
            async with asyncio.timeout(timeout):
                part = await reader.next()
        except (ValueError, KeyError, AssertionError, UnicodeDecodeError, BadHttpMessage):
            # BadHttpMessage: too many part headers, or a header line too long.
            raise FormError(400, rpt.R_MALFORMED) from None
        if part is None:
            return
        if isinstance(part, MultipartReader):
            raise FormError(400, rpt.R_MALFORMED)
        limits.parts += 1
        if limits.parts > MAX_TEXT_PARTS + limits.cfg.max_files:
            raise FormError(400, rpt.R_MALFORMED)
        limits.add(0)  # empty parts bring nothing, and must not keep a slot either
        yield part


async def _read_text(part: BodyPartReader, limit: int, limits: _Limits,
                     timeout: float) -> bytes:
    buf = bytearray()
    while True:
        chunk = await _read(part, timeout)
        if not chunk:
            return bytes(buf)
        limits.add(len(chunk))
        buf += chunk
        if len(buf) > limit:
            raise FormError(413, R_FIELD_TOO_LARGE)


async def receive(request: web.Request) -> web.StreamResponse:
    try:
        return await guarded_upload(request, _receive)
    finally:
        # Top the codename reserve up now that this upload no longer needs the CPU.
        request.app[SOURCES].refill()


async def guarded_upload(
    request: web.Request, receive: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Admit an upload (a report or a follow-up) and turn its failures into pages.

    Refused before a byte is read: a declared length over the limit (413), a body that
    is not multipart (400), no free upload slot (429). Then every failure of ``receive``
    becomes its translated page, the connection is closed (the rest of the body is not
    read), and the slot is given back.
    """
    cfg = request.app[CONFIG]
    if request.content_length is not None and request.content_length > cfg.max_submission_bytes:
        return error_page(request, 413, R_TOO_LARGE, headers={"Connection": "close"})
    if request.content_type != "multipart/form-data":
        return error_page(request, 400, rpt.R_MALFORMED)
    slots = request.app[UPLOADS]
    if not slots.try_acquire():
        return error_page(request, 429, R_BUSY,
                          headers={"Retry-After": "300", "Connection": "close"})
    try:
        return await receive(request)
    except FormError as e:
        return error_page(request, e.status, e.reason, headers={"Connection": "close"})
    except (QuotaExceeded, DiskFull):
        return error_page(request, 503, R_FULL, headers={"Retry-After": "3600",
                                                         "Connection": "close"})
    except TimeoutError:
        return error_page(request, 408, R_SLOW, headers={"Connection": "close"})
    except ConnectionError:
        # The source's connection dropped mid-upload (common over Tor). Everything
        # was already deleted; there is nobody left to answer.
        return error_page(request, 400, rpt.R_MALFORMED, headers={"Connection": "close"})
    except StorageError:
        return error_page(request, 503, R_FULL, headers={"Connection": "close"})
    finally:
        slots.release()


async def _receive(request: web.Request) -> web.StreamResponse:
    lang = request.match_info["lang"]
    cfg = request.app[CONFIG]
    storage = request.app[STORAGE]
    keyring = request.app[KEYRING]
    timeout = cfg.read_timeout_seconds
    limits = _Limits(request)
    storage.check_quota()
    storage.check_free_space()

    answers: dict[str, Any] = {}
    csrf_ok = False
    txn: Transaction | None = None
    # The codename derivation (about a second in a worker process) starts with the
    # first attachment and runs while the files stream in.
    source_task: asyncio.Future[NewSource] | None = None
    attachments: list[dict[str, Any]] = []
    try:
        async for part in _parts(request, limits, timeout):
            name = part.name
            if name == FILE_FIELD:
                if not csrf_ok:
                    raise FormError(403, rpt.R_CSRF)
                if not answers.get("desks"):
                    raise FormError(400, rpt.R_DESKS)
                if txn is None:
                    txn = storage.begin(_recipients(keyring, answers["desks"]))
                if source_task is None:
                    source_task = asyncio.ensure_future(request.app[SOURCES].create())
                meta = await _receive_file(part, txn, limits, timeout)
                if meta is not None:
                    attachments.append(meta)
                continue
            field = FIELDS.get(name or "")
            if field is None or part.filename is not None:
                raise FormError(400, rpt.R_UNKNOWN_FIELD)
            if field.name == "desks" and txn is not None:
                # The files already written are encrypted to the desks named before
                # them; a desk added afterwards could not read them.
                raise FormError(400, rpt.R_MALFORMED)
            limit = min(field.max_bytes or cfg.max_field_bytes, cfg.max_field_bytes)
            raw = await _read_text(part, limit, limits, timeout)
            value = rpt.decode_text(raw)
            if field.kind == "csrf":
                if not _same(request.cookies.get(CSRF_COOKIE, ""), value):
                    raise FormError(403, rpt.R_CSRF)
                csrf_ok = True
            elif not csrf_ok:
                # The template sends the token first; anything else is not our form.
                raise FormError(403, rpt.R_CSRF)
            else:
                _store_answer(answers, field, value, keyring)

        if not csrf_ok:
            raise FormError(403, rpt.R_CSRF)
        if not answers.get("category"):
            raise FormError(400, rpt.R_CATEGORY)
        if not answers.get("desks"):
            raise FormError(400, rpt.R_DESKS)
        if txn is None:
            txn = storage.begin(_recipients(keyring, answers["desks"]))

        if source_task is None:
            source_task = asyncio.ensure_future(request.app[SOURCES].create())
        source = await source_task
        submission_id = new_id()
        doc = rpt.build_report(
            submission_id=submission_id, day=txn.day.isoformat(), lang=lang,
            answers=answers, desks=answers["desks"],
            reply_recipient=source.reply_recipient, attachments=attachments)
        body = json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")
        report_file = txn.new_file("report")
        report_file.write(body)
        del body, doc
        await txn.commit(submission_id=submission_id, desks=answers["desks"],
                         source_id=source.source_id, reply_recipient=source.reply_recipient)
    except BaseException:
        if txn is not None:
            txn.abort()
        if source_task is not None and not source_task.done():
            source_task.cancel()
            # If the worker already runs it, let it finish unobserved and quietly.
            source_task.add_done_callback(_discard)
        raise
    return render(request, "received.html", lang=lang, codename=source.codename,
                  words=source.codename.split(), attachments=len(attachments))


def _recipients(keyring: Keyring, desk_ids: list[str]) -> list[Recipient]:
    """The age recipients of the chosen desks (already checked against the keyring)."""
    recipients = []
    for desk_id in desk_ids:
        desk = keyring.get(desk_id)
        if desk is None:
            raise FormError(400, rpt.R_BAD_CHOICE)
        recipients.append(parse_recipient(desk.recipient))
    return recipients


def _discard(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _store_answer(answers: dict[str, Any], field: rpt.Field, value: str, keyring: Any) -> None:
    if field.kind == "text":
        if field.name in answers:
            raise FormError(400, rpt.R_MALFORMED)
        answers[field.name] = value
    elif field.kind == "choice":
        if field.name in answers:
            raise FormError(400, rpt.R_MALFORMED)
        if value == "" and not field.required:
            return
        if value not in field.choices:
            raise FormError(400, rpt.R_BAD_CHOICE)
        answers[field.name] = value
    elif field.kind == "multi":
        values: list[str] = answers.setdefault(field.name, [])
        valid = keyring.get(value) is not None if field.name == "desks" \
            else value in field.choices
        if not valid:
            raise FormError(400, rpt.R_BAD_CHOICE)
        if value in values:
            raise FormError(400, rpt.R_MALFORMED)
        values.append(value)
    elif field.kind == "flag":
        if value != "yes" or field.name in answers:
            raise FormError(400, rpt.R_BAD_CHOICE)
        answers[field.name] = True


async def _receive_file(part: BodyPartReader, txn: Transaction, limits: _Limits,
                        timeout: float) -> dict[str, Any] | None:
    cfg = limits.cfg
    first = await _read(part, timeout, FILE_CHUNK)
    if not first and not part.filename:
        # An <input type=file> left empty still sends an empty, unnamed part.
        return None
    limits.files += 1
    if limits.files > cfg.max_files:
        raise FormError(413, R_TOO_MANY_FILES)
    pending = txn.new_file("attachment")
    size = 0
    chunk = first
    while chunk:
        limits.add(len(chunk))
        size += len(chunk)
        if size > cfg.max_file_bytes:
            raise FormError(413, R_TOO_LARGE)
        # Encrypted here, between reads, while the piece is still in this core's
        # cache; hashed and written out on the upload's own thread, a batch at a
        # time, while the next pieces are read (storage.PendingFile). On any error
        # the transaction's abort() waits for that thread before deleting.
        pending.write(chunk)
        if pending.unwritten >= WRITE_BATCH:
            await pending.flush()
        chunk = await _read(part, timeout, FILE_CHUNK)
    await pending.finish()
    return {
        "file_id": pending.id,
        "name": rpt.clean_filename(part.filename),
        "media_type": _media_type(part),
        "size": pending.plaintext_size,
        "sha256": pending.sha256(),
    }


def _media_type(part: BodyPartReader) -> str:
    value = part.headers.get("Content-Type", "application/octet-stream")
    value = value.split(";", 1)[0].strip().lower()
    if len(value) > 100 or not value.isascii() or "/" not in value:
        return "application/octet-stream"
    return value
