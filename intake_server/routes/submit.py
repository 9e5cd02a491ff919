"""The questionnaire (GET) and the streamed, encrypted report (POST).

The POST body is read by upload.read_upload, part by part; this module says what the
questionnaire's fields mean (report.FIELDS) and when the transaction begins: at the
first attachment, since the desks chosen before it are its recipients. The source is
shown the codename only after Transaction.commit() returned, i.e. once the files are
in store/ and the row is committed.

Order of the form matters and the template keeps it: the CSRF token first, the
desks before the attachments, the attachments last.

A report refused for something the source can put right (no desk or no category
ticked, a file or the whole report too large, too many files, a text too long) is
answered with the form again (issue 14): every answer read before the problem is
back in its field, the problem is shown next to the field it is about, and a note
says that files must be chosen again (no browser lets a page fill a file input).
The answers live only in this request's memory and in that answer: nothing is
stored or logged. Only a form whose CSRF token matched is ever given back, so that
another site cannot make this one show what it chose.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from intake_server import report as rpt
from intake_server.forms import CSRF_COOKIE, csrf_token, set_csrf_cookie
from intake_server.i18n import LANG_SEGMENT
from intake_server.rendering import render
from intake_server.report import FIELDS, FILE_FIELD, FormError
from intake_server.sources import NewSource
from intake_server.state import CONFIG, KEYRING, SOURCES, STORAGE
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
from keys.keyring import Keyring

__all__ = ["default_desk", "routes"]

routes = web.RouteTableDef()


def default_desk(request: web.Request) -> str:
    """The desk a report goes to when the source picks none: the config's, or the first."""
    cfg = request.app[CONFIG]
    return cfg.default_desk or request.app[KEYRING].desks[0].id


# The refusals answered with the form again; any other is an error page (a body
# that is not our form, a wrong token, a busy or full server).
KEPT_REASONS = frozenset({rpt.R_DESKS, rpt.R_CATEGORY, R_TOO_LARGE, R_FILE_TOO_LARGE,
                          R_TOO_MANY_FILES, R_FIELD_TOO_LARGE})


@routes.get(f"/{LANG_SEGMENT}/submit")
async def form(request: web.Request) -> web.Response:
    return render_form(request)


def render_form(request: web.Request, *, answers: dict[str, Any] | None = None,
                problem: FormError | None = None) -> web.Response:
    """The questionnaire: empty, or given back with ``answers`` and the ``problem``
    (status 400 or 413, and the connection closed: the body may not have been read
    to its end)."""
    lang = request.match_info["lang"]
    token = csrf_token(request)
    desks = [{"id": d.id, "name": d.name(lang), "fingerprint": d.fingerprint}
             for d in request.app[KEYRING].desks]
    cfg = request.app[CONFIG]
    resp = render(request, "submit.html", lang=lang, csrf=token, desks=desks,
                  status=problem.status if problem is not None else 200,
                  default_desk=default_desk(request), categories=rpt.CATEGORIES,
                  targets=rpt.TARGETS, professions=rpt.PROFESSIONS,
                  platforms=rpt.PLATFORMS, countries=rpt.COUNTRIES,
                  country_extra=rpt.COUNTRY_EXTRA, max_files=cfg.max_files,
                  max_file_bytes=cfg.max_file_bytes,
                  max_submission_bytes=cfg.max_submission_bytes,
                  answers=answers or {}, kept=problem is not None,
                  problem=_problem(problem))
    set_csrf_cookie(resp, token)
    if problem is not None:
        resp.force_close()
    return resp


def _problem(error: FormError | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {
        "status": error.status,
        "reason": error.reason,
        "limit": error.limit,
        # Where the message goes: the field's own place in the form.
        "field": error.field or {rpt.R_DESKS: "desks",
                                 rpt.R_CATEGORY: "category"}.get(error.reason, FILE_FIELD),
        # Reading stopped inside a text field: the parts after it never arrived.
        "stopped": error.reason == R_FIELD_TOO_LARGE,
    }


@routes.post(f"/{LANG_SEGMENT}/submit")
async def receive(request: web.Request) -> web.StreamResponse:
    try:
        return await guarded_upload(request, _receive)
    finally:
        # Top the codename reserve up now that this upload no longer needs the CPU.
        request.app[SOURCES].refill()


async def _receive(request: web.Request, limits: Limits) -> web.StreamResponse:
    lang = request.match_info["lang"]
    storage = request.app[STORAGE]
    storage.check_quota()
    storage.check_free_space()
    report = _Report(request, limits)
    try:
        attachments = await read_upload(
            request, limits, csrf=request.cookies.get(CSRF_COOKIE, ""),
            field_limit=report.field_limit, on_field=report.answer,
            transaction=report.transaction)
        source = await report.commit(lang, attachments)
    except FormError as e:
        report.abort()
        if e.reason not in KEPT_REASONS or e.field == "csrf":
            raise
        return render_form(request, answers=report.kept_answers(e), problem=e)
    except BaseException:
        report.abort()
        raise
    return render(request, "received.html", lang=lang, codename=source.codename,
                  words=source.codename.split(), attachments=len(attachments))


class _Report:
    """One report being received: its answers, its transaction, its new source."""

    def __init__(self, request: web.Request, limits: Limits) -> None:
        self.app = request.app
        self.limits = limits
        self.keyring = request.app[KEYRING]
        self.answers: dict[str, Any] = {}
        self.txn: Transaction | None = None
        # The codename (from the reserve, or else derived: about a second of a
        # worker's CPU) is taken only once the whole report has arrived. Taken at the
        # first attachment, it let anyone who starts uploads and drops them spend a
        # derivation each, and empty the reserve real sources rely on.
        self.source_task: asyncio.Future[NewSource] | None = None

    def field_limit(self, name: str) -> int:
        field = FIELDS.get(name)
        if field is None:
            raise FormError(400, rpt.R_UNKNOWN_FIELD)
        if field.name == "desks" and self.txn is not None:
            # The files already written are encrypted to the desks named before
            # them; a desk added afterwards could not read them.
            raise FormError(400, rpt.R_MALFORMED)
        max_field_bytes = self.app[CONFIG].max_field_bytes
        return min(field.max_bytes or max_field_bytes, max_field_bytes)

    def answer(self, name: str, value: str) -> None:
        _store_answer(self.answers, FIELDS[name], value, self.keyring)

    def kept_answers(self, error: FormError) -> dict[str, Any]:
        """The answers to give back with the form: those read, and the beginning of a
        text field that was too long (cut where a whole character ends)."""
        field = FIELDS.get(error.field or "")
        if error.reason == R_FIELD_TOO_LARGE and field is not None and field.kind == "text":
            self.answers[field.name] = partial_text(error)
        return self.answers

    def transaction(self) -> Transaction:
        """The report's transaction, begun the first time (the upload holds its slot:
        limits.admit()), with the space the upload declared reserved."""
        if not self.answers.get("desks"):
            raise FormError(400, rpt.R_DESKS)
        if self.txn is None:
            self.txn = self.app[STORAGE].begin(recipients(self.keyring, self.answers["desks"]),
                                               expected=self.limits.expected)
        return self.txn

    def _source(self) -> asyncio.Future[NewSource]:
        if self.source_task is None:
            self.source_task = asyncio.ensure_future(self.app[SOURCES].create())
        return self.source_task

    async def commit(self, lang: str, attachments: list[dict[str, Any]]) -> NewSource:
        """Check the answers are complete, encrypt the report, commit; the new source."""
        if not self.answers.get("category"):
            raise FormError(400, rpt.R_CATEGORY)
        await self.limits.admit()  # a report without attachments writes only now
        txn = self.transaction()
        source = await self._source()
        desks = self.answers["desks"]
        submission_id = new_id()
        doc = rpt.build_report(
            submission_id=submission_id, day=txn.day.isoformat(), lang=lang,
            answers=self.answers, desks=desks,
            reply_recipient=source.reply_recipient,
            reply_recipient_pq=source.reply_recipient_pq, attachments=attachments)
        body = json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")
        txn.new_file("report").write(body)
        del body, doc
        await txn.commit(submission_id=submission_id, desks=desks,
                         source_id=source.source_id, reply_recipient=source.reply_recipient)
        return source

    def abort(self) -> None:
        if self.txn is not None:
            self.txn.abort()
        if self.source_task is not None and not self.source_task.done():
            self.source_task.cancel()
            # If the worker already runs it, let it finish unobserved and quietly.
            self.source_task.add_done_callback(_discard)


def _discard(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _store_answer(answers: dict[str, Any], field: rpt.Field, value: str,
                  keyring: Keyring) -> None:
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
