"""The source's way back in: codename login, the inbox of replies, follow-ups, logout.

Login: the codename typed (or pasted) into a POST form is normalised in this
process (cheap, no key material yet), then both Argon2id derivations run in the
login worker pool (sources.LoginDeriver), which is bounded apart from the
submissions' pool. A global token bucket caps attempts per minute for the whole
server, since every Tor client arrives from 127.0.0.1. Every failed login, a
malformed codename as much as an unknown one, gets the same page after at least
FAILURE_SECONDS, so neither the answer nor its timing says which it was.

Session: the cookie holds an opaque random token and nothing else (sessions.py);
the source id and the reply identity stay in this process's memory, for 30
minutes of idleness at most, and logout wipes them.

Inbox: each reply is read from replies/ (the staff side stores them there),
decrypted in memory with the session's reply identities (X25519, and mlkem768x25519
with a post-quantum keyring), checked against the
amana-reply format (docs/transfer-format.md) and rendered autoescaped. A reply
that fails any of that is shown as "could not be read", never as an error.

Follow-up: same streamed encryption and durability path as a first report
(storage.Transaction), recorded as a submission of type "followup" for the
source id, addressed to the desks the source has written to (docs/report-format.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

from intake_server import report as rpt
from intake_server.forms import (
    CSRF_COOKIE,
    csrf_matches,
    csrf_token,
    read_small_form,
    set_csrf_cookie,
)
from intake_server.i18n import LANG_SEGMENT
from intake_server.rendering import error_page, render
from intake_server.report import FormError
from intake_server.sessions import Session
from intake_server.sources import LoginBusy
from intake_server.state import (
    CONFIG,
    KEYRING,
    LOGIN_BUCKET,
    LOGINS,
    REPLIES,
    SESSIONS,
    STORAGE,
)
from intake_server.storage import Transaction, new_id
from intake_server.upload import (
    R_FIELD_TOO_LARGE,
    R_FILE_TOO_LARGE,
    R_TOO_LARGE,
    R_TOO_MANY_FILES,
    Limits,
    guarded_upload,
    partial_text,
    read_upload,
    recipients,
)
from keys import fs, ids, strict_json
from keys.age import AgeError, HybridIdentity, X25519Identity, decrypt
from keys.codename import InvalidCodename, normalize_codename

from .submit import default_desk

__all__ = [
    "FAILURE_SECONDS",
    "MAX_REPLY_BODY",
    "MAX_REPLY_CIPHERTEXT",
    "SESSION_COOKIE",
    "routes",
]

routes = web.RouteTableDef()


log = logging.getLogger("intake_server.inbox")

SESSION_COOKIE = "amana_session"
# Every failed login is answered no sooner than this after it arrived.
FAILURE_SECONDS = 2.0
# A reply is a short text; anything larger is not one of ours.
MAX_REPLY_CIPHERTEXT = 512 * 1024
MAX_REPLY_BODY = 64 * 1024


R_LOGIN_FAILED = rpt.N_("This codename did not open an inbox. Check each word against "
                        "the codename you wrote down, and try again.")
R_LOGIN_BUSY = rpt.N_("Too many people are trying to log in right now. Nothing was sent. "
                      "Please wait a few minutes and try again.")
R_SESSION_ENDED = rpt.N_("You were logged out, because the session was unused for 30 "
                         "minutes or the server restarted. Please log in again.")
R_EMPTY_FOLLOWUP = rpt.N_("Please write a message or attach a file.")
R_NO_REPLY = rpt.N_("This reply does not exist. It may already have been deleted.")
# Refused follow-ups answered with the inbox and the message kept.
KEPT_FOLLOWUP_REASONS = frozenset({R_EMPTY_FOLLOWUP, R_TOO_LARGE, R_FILE_TOO_LARGE,
                                   R_TOO_MANY_FILES, R_FIELD_TOO_LARGE})


# -- helpers -------------------------------------------------------------------

def _session(request: web.Request) -> tuple[str | None, Session | None]:
    token = request.cookies.get(SESSION_COOKIE)
    return token, request.app[SESSIONS].get(token)


def _see_other(location: str) -> web.Response:
    # A plain response rather than raising HTTPSeeOther: cookies are set on it.
    return web.Response(status=303, headers={"Location": location})


def _to_login(lang: str, *, ended: bool = False) -> web.Response:
    return _see_other(f"/{lang}/login" + ("?ended=1" if ended else ""))


def _busy(request: web.Request) -> web.Response:
    return error_page(request, 429, R_LOGIN_BUSY, headers={"Retry-After": "120"})


async def _small_form(request: web.Request, names: frozenset[str]) -> dict[str, str]:
    return await read_small_form(request, names,
                                 timeout=request.app[CONFIG].read_timeout_seconds)


def _set_session_cookie(resp: web.StreamResponse, token: str) -> None:
    # No Max-Age: the browser forgets it when closed. No Secure flag: the onion
    # service speaks plain HTTP (Tor encrypts end to end), and Tor Browser would
    # drop a Secure cookie on it.
    resp.set_cookie(SESSION_COOKIE, token, path="/", httponly=True, samesite="Strict")


# -- login ---------------------------------------------------------------------

@routes.get(f"/{LANG_SEGMENT}/login")
async def login_form(request: web.Request) -> web.Response:
    lang = request.match_info["lang"]
    _, session = _session(request)
    if session is not None:
        return _see_other(f"/{lang}/inbox")
    return _render_login(request, ended=request.query.get("ended") == "1")


def _render_login(request: web.Request, *, failed: bool = False, ended: bool = False,
                  status: int = 200) -> web.Response:
    lang = request.match_info["lang"]
    token = csrf_token(request)
    resp = render(request, "login.html", lang=lang, status=status, csrf=token, page="login",
                  failed=failed, ended=ended, message_failed=R_LOGIN_FAILED,
                  message_ended=R_SESSION_ENDED)
    set_csrf_cookie(resp, token)
    return resp


@routes.post(f"/{LANG_SEGMENT}/login")
async def login(request: web.Request) -> web.Response:
    lang = request.match_info["lang"]
    try:
        fields = await _small_form(request, frozenset({"csrf", "codename"}))
    except FormError as e:
        return error_page(request, e.status, e.reason)
    if not csrf_matches(request.cookies.get(CSRF_COOKIE, ""), fields["csrf"]):
        return error_page(request, 403, rpt.R_CSRF)
    if not request.app[LOGIN_BUCKET].try_take():
        return _busy(request)

    loop = asyncio.get_running_loop()
    started = loop.time()
    keys = None
    try:
        codename: str | None = normalize_codename(fields["codename"])
    except InvalidCodename:
        codename = None
    del fields
    if codename is not None:
        try:
            keys = await request.app[LOGINS].derive(codename)
        except LoginBusy:
            return _busy(request)
        finally:
            del codename
    storage = request.app[STORAGE]
    identity = X25519Identity.parse(keys.reply_identity) if keys is not None else None
    pq_identity = (HybridIdentity.parse(keys.reply_pq_identity)
                   if keys is not None and keys.reply_pq_identity is not None else None)
    known = storage.find_source(keys.source_id) if keys is not None else None
    if identity is None or keys is None or known != str(identity.recipient()):
        # The same page, no sooner than FAILURE_SECONDS after the request arrived,
        # whether the text was no codename at all or nobody's codename.
        await asyncio.sleep(max(0.0, started + FAILURE_SECONDS - loop.time()))
        return _render_login(request, failed=True, status=403)
    storage.touch_source(keys.source_id)
    sessions = request.app[SESSIONS]
    # A session this browser had before is ended, not left to idle out: one login,
    # one live token.
    sessions.delete(request.cookies.get(SESSION_COOKIE))
    token, _ = sessions.create(keys.source_id, identity, pq_identity)
    del keys, identity, pq_identity
    resp = _see_other(f"/{lang}/inbox")
    _set_session_cookie(resp, token)
    return resp


# -- inbox ---------------------------------------------------------------------

def _read_reply(request: web.Request, session: Session, row: dict[str, Any]) -> str | None:
    """The reply's text, or None if it cannot be read as an amana-reply from its desk."""
    try:
        path = request.app[REPLIES].reply_path(row["id"])
        ciphertext = fs.read_quietly(path, MAX_REPLY_CIPHERTEXT)
        plain = decrypt(ciphertext, session.reply_identities)
        doc = strict_json.loads(plain, max_bytes=MAX_REPLY_CIPHERTEXT, max_depth=2)
    except (OSError, fs.FsError, AgeError, ValueError):
        # FsError: a file over MAX_REPLY_CIPHERTEXT. ValueError (StrictJSONError is
        # one) covers bad UTF-8, bad JSON, duplicate keys and a malformed id.
        return None
    if not isinstance(doc, dict) or set(doc) != {"format", "version", "desk", "day", "body"}:
        return None
    if (doc["format"] != "amana-reply" or type(doc["version"]) is not int
            or doc["version"] != 1 or doc["desk"] != row["desk"]
            or not isinstance(doc["day"], str) or not ids.DAY_RE.fullmatch(doc["day"])
            or not isinstance(doc["body"], str) or len(doc["body"]) > MAX_REPLY_BODY):
        return None
    return doc["body"]


@routes.get(f"/{LANG_SEGMENT}/inbox")
async def inbox(request: web.Request) -> web.Response:
    lang = request.match_info["lang"]
    token, session = _session(request)
    if session is None:
        return _to_login(lang, ended=token is not None)
    notice = request.query.get("done", "")
    return _render_inbox(request, session, notice=notice if notice in ("sent", "deleted") else "")


def _render_inbox(request: web.Request, session: Session, *, notice: str = "",
                  message: str = "", problem: FormError | None = None) -> web.Response:
    """The inbox; after a refused follow-up, with its ``message`` back in the form and
    the ``problem`` next to it (the status is the refusal's, the connection closed)."""
    lang = request.match_info["lang"]
    keyring = request.app[KEYRING]
    replies = []
    for row in request.app[REPLIES].replies_for(session.reply_recipient):
        desk = keyring.get(row["desk"])
        replies.append({
            "id": row["id"],
            "day": row["day"],
            "desk": desk.name(lang) if desk is not None else row["desk"],
            "body": _read_reply(request, session, row),
        })
    cfg = request.app[CONFIG]
    resp = render(request, "inbox.html", lang=lang, page="inbox", csrf=session.csrf,
                  status=problem.status if problem is not None else 200,
                  replies=replies, notice=notice, max_files=cfg.max_files,
                  max_file_bytes=cfg.max_file_bytes,
                  max_submission_bytes=cfg.max_submission_bytes, message=message,
                  kept=problem is not None, problem=problem,
                  problem_field=(problem.field or "message") if problem is not None else "")
    if problem is not None:
        resp.force_close()
    return resp


@routes.post(f"/{LANG_SEGMENT}/inbox/delete")
async def delete_reply(request: web.Request) -> web.Response:
    lang = request.match_info["lang"]
    token, session = _session(request)
    if session is None:
        return _to_login(lang, ended=token is not None)
    try:
        fields = await _small_form(request, frozenset({"csrf", "reply"}))
    except FormError as e:
        return error_page(request, e.status, e.reason)
    if not csrf_matches(session.csrf, fields["csrf"]):
        return error_page(request, 403, rpt.R_CSRF)
    if not ids.is_hex_id(fields["reply"]):
        return error_page(request, 400, rpt.R_MALFORMED)
    # Only the source's own replies: the row must carry the session's recipient.
    if not request.app[REPLIES].delete_reply(fields["reply"], session.reply_recipient):
        return error_page(request, 404, R_NO_REPLY)
    return _see_other(f"/{lang}/inbox?done=deleted")


# -- logout --------------------------------------------------------------------

@routes.post(f"/{LANG_SEGMENT}/logout")
async def logout(request: web.Request) -> web.Response:
    token, session = _session(request)
    if session is not None:
        try:
            fields = await _small_form(request, frozenset({"csrf"}))
        except FormError as e:
            return error_page(request, e.status, e.reason)
        if not csrf_matches(session.csrf, fields["csrf"]):
            return error_page(request, 403, rpt.R_CSRF)
        request.app[SESSIONS].delete(token)
    resp = render(request, "logged_out.html")
    resp.del_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Strict")
    return resp


# -- follow-up -----------------------------------------------------------------

def _followup_desks(request: web.Request, session: Session) -> list[str]:
    """Where a follow-up goes: the desks the source wrote to, and those that replied.

    A desk that replied has the case (it may have been referred there). A desk no
    longer in the keyring is skipped; if none is left, the default desk.
    """
    keyring = request.app[KEYRING]
    desks = request.app[STORAGE].source_desks(session.source_id)
    for row in request.app[REPLIES].replies_for(session.reply_recipient):
        if row["desk"] not in desks:
            desks.append(row["desk"])
    desks = [d for d in desks if keyring.get(d) is not None]
    return desks or [default_desk(request)]


@routes.post(f"/{LANG_SEGMENT}/followup")
async def followup(request: web.Request) -> web.StreamResponse:
    lang = request.match_info["lang"]
    token, session = _session(request)
    if session is None:
        resp = _to_login(lang, ended=token is not None)
        resp.headers["Connection"] = "close"  # the body was not read
        return resp

    async def receive(request: web.Request, limits: Limits) -> web.StreamResponse:
        message: list[str] = []
        try:
            await _receive_followup(request, session, limits, message)
        except FormError as e:
            # Something the source can put right: the inbox again, the message kept
            # (this answer only: nothing is stored or logged), the problem beside it.
            if e.reason not in KEPT_FOLLOWUP_REASONS or e.field == "csrf":
                raise
            kept = message[0] if message else partial_text(e)
            return _render_inbox(request, session, message=kept, problem=e)
        return _see_other(f"/{lang}/inbox?done=sent")

    return await guarded_upload(request, receive)


async def _receive_followup(request: web.Request, session: Session, limits: Limits,
                            message: list[str]) -> None:
    """Read, encrypt and commit a follow-up; its text goes into ``message`` as it is
    read (the caller gives it back if the follow-up is refused)."""
    lang = request.match_info["lang"]
    cfg = request.app[CONFIG]
    desks = _followup_desks(request, session)
    request.app[STORAGE].check_quota()  # already full: refused before reading
    request.app[STORAGE].check_free_space()
    # Recipients are known before the first byte, but the transaction (and the space
    # it reserves) begins only when the upload takes its slot: at the first file, or
    # at the end for a message alone.
    began: list[Transaction] = []

    def transaction() -> Transaction:
        if not began:
            began.append(request.app[STORAGE].begin(recipients(request.app[KEYRING], desks),
                                                    expected=limits.expected))
        return began[0]

    def field_limit(name: str) -> int:
        if name == "csrf":
            return rpt.FIELDS["csrf"].max_bytes  # the same token field as the report's
        if name == "message":
            return cfg.max_field_bytes
        raise FormError(400, rpt.R_UNKNOWN_FIELD)

    def on_field(name: str, value: str) -> None:
        if message:  # the message, twice
            raise FormError(400, rpt.R_MALFORMED)
        message.append(value)

    try:
        attachments = await read_upload(request, limits, csrf=session.csrf,
                                        field_limit=field_limit, on_field=on_field,
                                        transaction=transaction)
        text = message[0] if message else ""
        if not text.strip() and not attachments:
            raise FormError(400, R_EMPTY_FOLLOWUP)
        await limits.admit()
        txn = transaction()
        submission_id = new_id()
        doc = rpt.build_followup(
            submission_id=submission_id, day=txn.day.isoformat(), lang=lang,
            message=text, desks=desks, reply_recipient=session.reply_recipient,
            reply_recipient_pq=session.reply_recipient_pq, attachments=attachments)
        body = json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")
        txn.new_file("report").write(body)
        del body, doc, text
        await txn.commit(submission_id=submission_id, desks=desks,
                         source_id=session.source_id,
                         reply_recipient=session.reply_recipient, kind="followup")
    except BaseException:
        if began:
            began[0].abort()
        raise
