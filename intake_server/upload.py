"""The streamed upload shared by a first report and a follow-up.

A multipart body is read part by part with request.multipart(), never buffered
whole: each file part goes chunk by chunk into an age Encryptor for every chosen
desk, straight into incoming/ (storage.Transaction). Text fields are read up to
their limit and kept in memory only until the report JSON is encrypted.

Limits bound what a client can make the server do: the whole body, each file, each
field, the number of parts, each read's wait, the pace, and the uploads writing at
once. Every Tor client arrives from 127.0.0.1, so a slow client must cost nothing
that a real source needs (issue 13, item 14):

- the request head must be complete REQUEST_HEAD_SECONDS after the connection
  opened (or after its previous answer): the runner's keep-alive timeout, set where
  the source app is served (__main__), as is LINGER_SECONDS;
- from the head on, the body must keep MIN_BYTES_PER_SECOND on average, after a
  grace of PACE_GRACE_SECONDS, counted in bytes the client has sent (received by the
  server, read or not) and checked by a timer, so that a client that sends nothing
  is dropped as surely as one that trickles. Only time the client could send counts:
  not once its whole body has arrived, nor while the server holds as much of it
  unread as it buffers (aiohttp then stops reading the connection, and the client
  cannot send), as when the upload waits for a slot, the disk or its codename;
- an upload slot (ratelimit.UploadSlots) is taken only when the upload is about to
  write: at its first file, or at the end for a report without one. With the slot,
  disk space for the whole declared body is reserved against the quota and the
  free-space floor (storage.Storage.begin), so that concurrent uploads cannot
  overshoot them together: an upload that would not fit is refused (503) before its
  files are read. An upload that finds every slot taken waits in a short queue
  (QUEUE_SECONDS at most, then 429 "busy"), its pace still checked as above: a
  trickler loses its place, a source whose browser filled the buffers keeps it.

Order matters: the CSRF token comes first, and a file part needs its recipients
before its first byte can be encrypted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import BadHttpMessage

from keys import media
from keys.age import Recipient, parse_recipient
from keys.keyring import Keyring

from . import report as rpt
from .config import Config
from .forms import csrf_matches
from .pace import MIN_BYTES_PER_SECOND, PACE_CREDIT_SECONDS, PACE_GRACE_SECONDS, Pace
from .ratelimit import UploadSlots
from .rendering import error_page
from .report import FILE_FIELD, FormError
from .state import CONFIG, UPLOADS
from .storage import WRITE_BATCH, DiskFull, QuotaExceeded, StorageError, Transaction

__all__ = [
    "CHUNK",
    "FILE_CHUNK",
    "LINGER_SECONDS",
    "MAX_TEXT_PARTS",
    "MIN_BYTES_PER_SECOND",
    "PACE_CREDIT_SECONDS",
    "PACE_GRACE_SECONDS",
    "QUEUE_LENGTH",
    "QUEUE_SECONDS",
    "REQUEST_HEAD_SECONDS",
    "R_BUSY",
    "R_FILE_TOO_LARGE",
    "R_FIELD_TOO_LARGE",
    "R_FULL",
    "R_SLOW",
    "R_TOO_LARGE",
    "R_TOO_MANY_FILES",
    "Limits",
    "Pace",
    "guarded_upload",
    "partial_text",
    "parts",
    "read_text",
    "read_upload",
    "receive_file",
    "recipients",
]

CHUNK = 64 * 1024
# File parts are read in larger pieces: aiohttp's boundary scan costs per call, and
# 256 KiB per upload in flight is still a small, fixed bound. The encryptor cuts
# them into 64 KiB age chunks.
FILE_CHUNK = 256 * 1024
# The request line and headers: one Tor cell or two, so a few seconds are plenty.
REQUEST_HEAD_SECONDS = 10.0
# After answering a body that was not read to its end (refused, too slow), how long
# the rest is still read and discarded before the connection is closed: long enough
# for the answer to be read, not long enough to keep a dropped client around.
LINGER_SECONDS = 2.0
# Uploads that may wait for a slot, and for how long, before "busy, try later".
QUEUE_LENGTH = 32
QUEUE_SECONDS = 30.0
# What an upload reserves beyond its declared body: the age headers and the report
# JSON's own keys (a report's text is in the body already). The age stream adds 16
# bytes per 64 KiB chunk, which the reservation covers with 1/1024 of the body. An
# upload that writes more than it reserved is still held to the quota, byte by byte.
RESERVE_OVERHEAD = 64 * 1024
# Text parts a well-formed form can produce (multi-valued fields included), with
# room to spare; file parts are bounded by max_files on top.
MAX_TEXT_PARTS = 200

R_TOO_LARGE = rpt.N_("Your report is larger than this server accepts: at most %(limit)s in "
                     "all. Nothing was kept. Please send fewer or smaller files.")
R_FILE_TOO_LARGE = rpt.N_("One of your files is larger than this server accepts: each file "
                          "can be at most %(limit)s. Nothing was kept.")
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


class Limits(Pace):
    """What one upload has used so far, checked against the config as it grows: its
    size, its pace (Pace), and its slot."""

    def __init__(self, config: Config, request: web.Request,
                 slots: UploadSlots | None = None) -> None:
        super().__init__(request)
        self.cfg = config
        self.timeout = config.read_timeout_seconds
        self.total = 0
        self.files = 0
        self.parts = 0
        self._slots = slots
        self.admitted = False
        # Disk space reserved with the slot: the declared body (chunked: the most a
        # body may be), bounded by the limits, as ciphertext.
        declared = request.content_length
        body = config.max_submission_bytes if declared is None \
            else min(declared, config.max_submission_bytes)
        self.expected = body + body // 1024 + RESERVE_OVERHEAD
        # Declared larger than the limit: refused at the first file part, before the
        # upload takes a slot or writes a byte. The text answers before it are read
        # (each within its own limit), only so that the form can be given back.
        self.declared_too_large = declared is not None and declared > config.max_submission_bytes

    def add(self, n: int) -> None:
        """Count ``n`` bytes of the body (0 at a part boundary) and check the pace."""
        self.total += n
        if self.total > self.cfg.max_submission_bytes:
            self.too_large()
        # The read timeout bounds the wait for each piece, not the pace: a client that
        # drips a few bytes (or empty parts) just inside it could hold a connection
        # and its slot for ever, and a handful of them every slot.
        if self.behind():
            raise FormError(408, R_SLOW)

    def too_large(self) -> None:
        raise FormError(413, R_TOO_LARGE, field=FILE_FIELD,
                        limit=self.cfg.max_submission_bytes)

    async def admit(self) -> None:
        """Take an upload slot before the first write, waiting in the queue for one
        at most QUEUE_SECONDS (busy: 429)."""
        if self.admitted or self._slots is None:
            self.admitted = True
            return
        ticket = self._slots.request(self.standing)
        try:
            async with asyncio.timeout(QUEUE_SECONDS):
                self.admitted = await asyncio.shield(ticket)
        except TimeoutError:
            pass
        finally:
            if not self.admitted:
                self._slots.withdraw(ticket)
        if not self.admitted:
            raise FormError(429, R_BUSY)

    def end(self) -> None:
        """The upload is over: stop the timer and give the slot back."""
        self.stop()
        if self.admitted and self._slots is not None:
            self._slots.release()
        self.admitted = False


async def guarded_upload(
    request: web.Request,
    receive: Callable[[web.Request, Limits], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    """Admit an upload (a report or a follow-up) and turn its failures into pages.

    Refused before a byte is read: a body that is not multipart (400, or 413 with a
    declared length over the limit). A multipart body declared too large is refused
    (413) at its first file part, or at its end if it has none
    (Limits.declared_too_large). Then ``receive`` reads it under ``Limits`` (which takes
    the upload slot when the upload is about to write, and enforces the pace), every
    failure becomes its translated page, the connection is closed (the rest of the
    body is not read), and the slot is given back.
    """
    cfg = request.app[CONFIG]
    if request.content_type != "multipart/form-data":
        if request.content_length is not None \
                and request.content_length > cfg.max_submission_bytes:
            return error_page(request, 413, R_TOO_LARGE, headers={"Connection": "close"},
                              limit=cfg.max_submission_bytes)
        return error_page(request, 400, rpt.R_MALFORMED)
    limits = Limits(cfg, request, request.app[UPLOADS])
    try:
        async with asyncio.timeout(None) as pace:
            limits.watch(pace)
            return await receive(request, limits)
    except FormError as e:
        headers = {"Connection": "close"}
        if e.status == 429:
            headers["Retry-After"] = "300"
        return error_page(request, e.status, e.reason, headers=headers, limit=e.limit)
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
        limits.end()


async def read_upload(
    request: web.Request,
    limits: Limits,
    *,
    csrf: str,
    field_limit: Callable[[str], int],
    on_field: Callable[[str, str], None],
    transaction: Callable[[], Transaction],
) -> list[dict[str, Any]]:
    """Read a multipart form: the CSRF token first, then text fields and files in order.

    ``csrf`` is the secret the token field must match. For every other text part,
    ``field_limit(name)`` gives its limit in bytes (raising FormError for a name the
    form does not have) and ``on_field(name, value)`` takes its value; before every
    file's first byte, the upload takes its slot (``limits.admit()``) and
    ``transaction()`` gives the transaction the file is encrypted into (beginning it
    the first time, with ``limits.expected`` reserved). Returns the attachments'
    metadata, in order.

    A FormError about one field names it (``field``): a text field over its limit,
    or FILE_FIELD for a file over its limit, too many files, or a body too large.
    """
    csrf_ok = False
    attachments: list[dict[str, Any]] = []
    async for part in parts(request, limits):
        name = part.name or ""
        if name == FILE_FIELD:
            if not csrf_ok:
                raise FormError(403, rpt.R_CSRF)
            if limits.declared_too_large:
                limits.too_large()
            meta = await receive_file(part, transaction, limits)
            if meta is not None:
                attachments.append(meta)
            continue
        if part.filename is not None:
            raise FormError(400, rpt.R_UNKNOWN_FIELD)
        limit = field_limit(name)
        if name != "csrf" and not csrf_ok:
            # The templates send the token first; anything else is not our form.
            raise FormError(403, rpt.R_CSRF)
        try:
            raw = await read_text(part, limit, limits)
        except FormError as e:
            e.field = e.field or name
            raise
        value = rpt.decode_text(raw)
        if name == "csrf":
            if csrf_ok or not csrf_matches(csrf, value):
                raise FormError(403, rpt.R_CSRF)
            csrf_ok = True
        else:
            on_field(name, value)
    if not csrf_ok:
        raise FormError(403, rpt.R_CSRF)
    if limits.declared_too_large:
        limits.too_large()
    return attachments


async def _read(part: BodyPartReader, timeout: float, size: int = CHUNK) -> bytes:
    async with asyncio.timeout(timeout):
        return await part.read_chunk(size)


async def parts(request: web.Request, limits: Limits) -> AsyncIterator[BodyPartReader]:
    """The parts of a multipart body, one at a time, never buffered: each read under
    the timeout, nested multipart refused, and the number of parts bounded (every part
    costs a header parse, empty ones included)."""
    timeout = limits.timeout
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


async def read_text(part: BodyPartReader, limit: int, limits: Limits) -> bytes:
    """A text part's bytes, refused (413) as soon as they pass ``limit``; the
    FormError keeps the first ``limit`` bytes read (``partial``)."""
    buf = bytearray()
    while True:
        chunk = await _read(part, limits.timeout)
        if not chunk:
            return bytes(buf)
        limits.add(len(chunk))
        buf += chunk
        if len(buf) > limit:
            error = FormError(413, R_FIELD_TOO_LARGE, limit=limit)
            error.partial = bytes(buf[:limit])
            raise error


async def receive_file(part: BodyPartReader, transaction: Callable[[], Transaction],
                       limits: Limits) -> dict[str, Any] | None:
    """Encrypt a file part into ``transaction()``; its metadata, or None for an empty
    file input. The upload's slot and disk space are taken before the file's bytes
    are read: an upload that cannot have them is refused before it sends them."""
    cfg = limits.cfg
    first: bytes | None = None
    if not part.filename:
        # An <input type=file> left empty still sends an empty, unnamed part.
        first = await _read(part, limits.timeout, FILE_CHUNK)
        if not first:
            return None
    limits.files += 1
    if limits.files > cfg.max_files:
        raise FormError(413, R_TOO_MANY_FILES, field=FILE_FIELD)
    await limits.admit()
    pending = transaction().new_file("attachment")
    size = 0
    chunk = first if first is not None else await _read(part, limits.timeout, FILE_CHUNK)
    while chunk:
        limits.add(len(chunk))
        size += len(chunk)
        if size > cfg.max_file_bytes:
            raise FormError(413, R_FILE_TOO_LARGE, field=FILE_FIELD, limit=cfg.max_file_bytes)
        # Encrypted here, between reads, while the piece is still in this core's
        # cache; hashed and written out on the upload's own thread, a batch at a
        # time, while the next pieces are read (storage.PendingFile). On any error
        # the transaction's abort() waits for that thread before deleting.
        pending.write(chunk)
        if pending.unwritten >= WRITE_BATCH:
            await pending.flush()
        chunk = await _read(part, limits.timeout, FILE_CHUNK)
    await pending.finish()
    return {
        "file_id": pending.id,
        "name": rpt.clean_filename(part.filename),
        "media_type": _media_type(part),
        "size": pending.plaintext_size,
        "sha256": pending.sha256(),
    }


def partial_text(error: FormError) -> str:
    """The beginning of a text field that was over its limit (FormError.partial), cut
    where a whole character ends; "" if it is not valid text."""
    raw = error.partial
    # The limit may fall inside a character: at most 3 of its bytes were read.
    for end in range(len(raw), max(len(raw) - 4, -1), -1):
        try:
            return rpt.decode_text(raw[:end])
        except FormError:
            continue
    return ""


def _media_type(part: BodyPartReader) -> str:
    # The one rule both sides share (keys.media): the client checks the same on import.
    return media.media_type_of_part(part.headers.get("Content-Type"))


def recipients(keyring: Keyring, desk_ids: list[str]) -> list[Recipient]:
    """The age recipients of the chosen desks (already checked against the keyring)."""
    found = []
    for desk_id in desk_ids:
        desk = keyring.get(desk_id)
        if desk is None:
            raise FormError(400, rpt.R_BAD_CHOICE)
        found.append(parse_recipient(desk.recipient))
    return found
