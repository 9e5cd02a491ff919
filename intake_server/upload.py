"""The streamed upload shared by a first report and a follow-up.

A multipart body is read part by part with request.multipart(), never buffered
whole: each file part goes chunk by chunk into an age Encryptor for every chosen
desk, straight into incoming/ (storage.Transaction). Text fields are read up to
their limit and kept in memory only until the report JSON is encrypted.

Limits bound what a client can make the server do: the whole body, each file, each
field, the number of parts, the pace (a client that trickles cannot keep an upload
slot), each read's wait, and the uploads in progress (ratelimit.UploadSlots).

Order matters: the CSRF token comes first, and a file part needs its recipients
before its first byte can be encrypted.
"""

from __future__ import annotations

import asyncio
import time
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
from .rendering import error_page
from .report import FILE_FIELD, FormError
from .state import CONFIG, UPLOADS
from .storage import WRITE_BATCH, DiskFull, QuotaExceeded, StorageError, Transaction

__all__ = [
    "CHUNK",
    "FILE_CHUNK",
    "MAX_TEXT_PARTS",
    "MIN_BYTES_PER_SECOND",
    "PACE_CREDIT_SECONDS",
    "PACE_GRACE_SECONDS",
    "R_BUSY",
    "R_FIELD_TOO_LARGE",
    "R_FULL",
    "R_SLOW",
    "R_TOO_LARGE",
    "R_TOO_MANY_FILES",
    "Limits",
    "guarded_upload",
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


class Limits:
    """What one upload has used so far, checked against the config as it grows."""

    def __init__(self, config: Config) -> None:
        self.cfg = config
        self.timeout = config.read_timeout_seconds
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
    file part, ``transaction()`` gives the transaction the file is encrypted into
    (beginning it the first time). Returns the attachments' metadata, in order.
    """
    csrf_ok = False
    attachments: list[dict[str, Any]] = []
    async for part in parts(request, limits):
        name = part.name or ""
        if name == FILE_FIELD:
            if not csrf_ok:
                raise FormError(403, rpt.R_CSRF)
            meta = await receive_file(part, transaction(), limits)
            if meta is not None:
                attachments.append(meta)
            continue
        if part.filename is not None:
            raise FormError(400, rpt.R_UNKNOWN_FIELD)
        limit = field_limit(name)
        if name != "csrf" and not csrf_ok:
            # The templates send the token first; anything else is not our form.
            raise FormError(403, rpt.R_CSRF)
        value = rpt.decode_text(await read_text(part, limit, limits))
        if name == "csrf":
            if csrf_ok or not csrf_matches(csrf, value):
                raise FormError(403, rpt.R_CSRF)
            csrf_ok = True
        else:
            on_field(name, value)
    if not csrf_ok:
        raise FormError(403, rpt.R_CSRF)
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
    """A text part's bytes, refused (413) as soon as they pass ``limit``."""
    buf = bytearray()
    while True:
        chunk = await _read(part, limits.timeout)
        if not chunk:
            return bytes(buf)
        limits.add(len(chunk))
        buf += chunk
        if len(buf) > limit:
            raise FormError(413, R_FIELD_TOO_LARGE)


async def receive_file(part: BodyPartReader, txn: Transaction,
                       limits: Limits) -> dict[str, Any] | None:
    """Encrypt a file part into ``txn``; its metadata, or None for an empty file input."""
    cfg = limits.cfg
    first = await _read(part, limits.timeout, FILE_CHUNK)
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
        chunk = await _read(part, limits.timeout, FILE_CHUNK)
    await pending.finish()
    return {
        "file_id": pending.id,
        "name": rpt.clean_filename(part.filename),
        "media_type": _media_type(part),
        "size": pending.plaintext_size,
        "sha256": pending.sha256(),
    }


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
