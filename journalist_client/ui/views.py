"""The UI's pages: each handler reads its form, runs one library call on the vault's
thread (the same calls journalist_client.cli makes), saves as the CLI does, and
renders a template or redirects (POST, then redirect, then GET).

No SQL here: everything comes from the library as frozen records
(journalist_client.records). A change is saved (``vault.save()``) before its page
answers, so what the triager saw done is on disk.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar

from aiohttp import web
from multidict import MultiDictProxy, MultiMapping

from journalist_client import (
    attachments,
    continuity,
    importer,
    indicators,
    records,
    replies,
    triage,
)
from journalist_client import stats as stats_table
from journalist_client.search import SearchError
from journalist_client.taxonomy import CATEGORIES, SEVERITIES, STATUSES
from journalist_client.ui._web import (
    LANGUAGE_META,
    N_,
    STATE,
    WORKER,
    refuse,
    render,
    same_secret,
)
from journalist_client.ui._worker import ImportJob, bulk
from journalist_client.ui.i18n import LANGUAGES, translations
from journalist_client.vault import Vault, VaultError
from keys import fs, ids

__all__ = ["add_routes"]

T = TypeVar("T")

# What one inbox page shows at most unless asked (as `list`).
INBOX_LIMIT: Final = 100
SEARCH_LIMIT: Final = 50
# A source's field longer than this is cut, with a link that shows it all.
FIELD_CUT: Final = 4000

_LOCAL_PATH: Final = re.compile(r"/(?!/)[A-Za-z0-9/_-]*")

# What the library raises for a request it refuses: shown to the triager as one line.
EXPECTED: Final = (triage.TriageError, replies.OutboxError, attachments.ExportError,
                   SearchError, importer.ImportRefused, importer.QuarantineError,
                   indicators.IndicatorError, VaultError, fs.FsError)


def _t(request: web.Request, message: str) -> str:
    """``message`` in the triager's language (for texts built here, not in templates)."""
    return translations(request.app[STATE].language).gettext(message)


def _flash(request: web.Request, kind: str, text: str) -> None:
    request.app[STATE].flash.append((kind, text))


async def _vault(request: web.Request, fn: Callable[[Vault], T]) -> T:
    return await request.app[WORKER].run(fn)


async def _form(request: web.Request) -> MultiDictProxy[Any]:
    """A url-encoded form carrying this session's CSRF token; anything else is refused.

    Only url-encoded bodies: aiohttp would spool a multipart body's files to a
    temporary file, and nothing here takes a file from the browser.
    """
    if request.content_type != "application/x-www-form-urlencoded":
        raise web.HTTPBadRequest(reason=N_("A form must be sent url-encoded."))
    form = await request.post()
    token = form.get("csrf", "")
    if not isinstance(token, str) or not same_secret(request.app[STATE].csrf, token):
        raise web.HTTPForbidden(reason=N_("The form has expired: reload the page."))
    return form


def _one(form: MultiDictProxy[Any], name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


def _error_line(e: BaseException) -> str:
    if isinstance(e, OSError):
        where = f"{e.filename}: " if e.filename else ""
        return f"{where}{e.strerror or e}"
    return str(e)


def _path(value: str) -> Path:
    """A path the triager typed: absolute, so that it never depends on where the UI
    was started."""
    path = Path(value.strip())
    if not value.strip() or not path.is_absolute():
        raise triage.TriageError("give a full path, starting with /")
    return path


def _see(location: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(location)


# --- inbox ----------------------------------------------------------------------------

def _filters(query: MultiMapping[str]) -> tuple[triage.Filters, int]:
    def opt(name: str) -> str | None:
        value = query.get(name, "").strip()
        return value or None

    status, severity = opt("status"), opt("severity")
    if status is not None and status not in STATUSES:
        raise triage.TriageError(f"status must be one of {', '.join(STATUSES)}")
    if severity is not None and severity not in SEVERITIES:
        raise triage.TriageError("severity must be S1 … S5")
    for day in (opt("since"), opt("until")):
        if day is not None and not ids.DAY_RE.fullmatch(day):
            raise triage.TriageError("dates are YYYY-MM-DD")
    try:
        limit = int(query.get("limit", INBOX_LIMIT))
    except ValueError:
        raise triage.TriageError("the limit is a number from 1 to 10000") from None
    if not 1 <= limit <= 10_000:
        raise triage.TriageError("the limit is a number from 1 to 10000")
    return triage.Filters(
        status=status, severity=severity, category=opt("category"), country=opt("country"),
        desk=opt("desk"), since=opt("since"), until=opt("until"), tag=opt("tag"),
        indicator=opt("indicator"), matched=query.get("matched") == "1",
        include_followups=query.get("followups") == "1"), limit


async def inbox(request: web.Request) -> web.Response:
    try:
        filters, limit = _filters(request.query)
    except triage.TriageError as e:
        return render(request, "inbox.html", status=400, rows=[], total=0, error=str(e),
                      **_inbox_context(request))

    def run(v: Vault) -> tuple[list[records.ItemSummary], int, continuity.Continuity]:
        rows = triage.list_items(v, filters, limit=limit)
        total = triage.count_items(v, filters) if len(rows) == limit else len(rows)
        return rows, total, continuity.check(v)

    try:
        rows, total, state = await _vault(request, run)
    except triage.TriageError as e:
        return render(request, "inbox.html", status=400, rows=[], total=0, error=str(e),
                      **_inbox_context(request))
    return render(request, "inbox.html", rows=rows, total=total, error="",
                  missing=len(state.missing), losses=len(state.losses),
                  **_inbox_context(request, missing=True))


def _inbox_context(request: web.Request, *, missing: bool = False) -> dict[str, Any]:
    ctx: dict[str, Any] = {"q": request.query, "statuses": STATUSES, "severities": SEVERITIES,
                           "categories": CATEGORIES}
    if not missing:
        ctx.update(missing=0, losses=0)
    return ctx


# --- one item -------------------------------------------------------------------------

async def item(request: web.Request) -> web.Response:
    item_id = request.match_info["id"]
    try:
        shown = await _vault(request, lambda v: triage.show_item(v, item_id))
    except triage.TriageError as e:
        return refuse(request, 404, str(e))
    full = request.query.get("full") == "1"
    template = "report.html" if isinstance(shown, records.Report) else "followup.html"
    return render(request, template, item=shown, full=full, cut=FIELD_CUT,
                  statuses=STATUSES, severities=SEVERITIES, categories=CATEGORIES,
                  warning=attachments.WARNING)


async def set_fields(request: web.Request) -> web.StreamResponse:
    item_id = request.match_info["id"]
    form = await _form(request)

    def opt(name: str) -> str | None:
        return _one(form, name).strip() or None

    tags = _one(form, "tags").split()
    untags = [t for t in form.getall("untag", []) if isinstance(t, str)]
    assign = _one(form, "assign").strip() if "assign" in form else None

    def run(v: Vault) -> list[str]:
        changes = triage.set_fields(
            v, item_id, status=opt("status"), severity=opt("severity"),
            category=opt("category"), assign=assign, tags=tags, untags=untags,
            confirm_suggestion=_one(form, "confirm_suggestion") == "1")
        if changes:
            v.save()
        return changes

    try:
        changes = await _vault(request, run)
    except EXPECTED as e:
        _flash(request, "error", _error_line(e))
    else:
        if not changes:
            _flash(request, "notice", _t(request, "Nothing changed."))
        for c in changes:
            _flash(request, "notice", c)
    raise _see(f"/item/{item_id}")


async def add_note(request: web.Request) -> web.StreamResponse:
    item_id = request.match_info["id"]
    text = _one(await _form(request), "text")

    def run(v: Vault) -> None:
        triage.add_note(v, item_id, text)
        v.save()

    try:
        await _vault(request, run)
    except EXPECTED as e:
        _flash(request, "error", _error_line(e))
    else:
        _flash(request, "notice", _t(request, "Note added."))
    raise _see(f"/item/{item_id}#notes")


async def export_attachment(request: web.Request) -> web.StreamResponse:
    item_id = request.match_info["id"]
    form = await _form(request)
    try:
        number = int(_one(form, "n"))
    except ValueError:
        _flash(request, "error", _t(request, "Choose an attachment."))
        raise _see(f"/item/{item_id}#attachments") from None
    try:
        out = _path(_one(form, "path"))
        path, size = await _vault(
            request, lambda v: attachments.export_attachment(v, item_id, number, out))
    except (*EXPECTED, OSError) as e:
        _flash(request, "error", _error_line(e))
    else:
        _flash(request, "notice", _t(request, "Wrote {size} bytes to {path}.").format(
            size=size, path=path))
        _flash(request, "warning", attachments.WARNING)
    raise _see(f"/item/{item_id}#attachments")


# --- reply and refer ------------------------------------------------------------------

async def reply_form(request: web.Request) -> web.Response:
    item_id = request.match_info["id"]
    try:
        shown = await _vault(request, lambda v: triage.show_item(v, item_id))
    except triage.TriageError as e:
        return refuse(request, 404, str(e))
    return render(request, "reply.html", item=shown, text="", error="")


async def reply(request: web.Request) -> web.StreamResponse:
    item_id = request.match_info["id"]
    text = _one(await _form(request), "text")

    def run(v: Vault) -> str:
        reply_id = replies.add_reply(v, item_id, text)
        v.save()
        return reply_id

    try:
        reply_id = await _vault(request, run)
    except EXPECTED as e:
        shown = await _vault(request, lambda v: triage.show_item(v, item_id))
        return render(request, "reply.html", status=400, item=shown, text=text,
                      error=_error_line(e))
    _flash(request, "notice", _t(request, "Reply {id} is in the outbox.").format(
        id=reply_id[:12]))
    raise _see(f"/item/{item_id}")


async def refer_form(request: web.Request) -> web.Response:
    item_id = request.match_info["id"]
    try:
        shown, desks = await _vault(
            request, lambda v: (triage.show_item(v, item_id), _other_desks(v)))
    except EXPECTED as e:
        return refuse(request, 404, _error_line(e))
    return render(request, "refer.html", item=shown, desks=desks, values={}, error="")


def _other_desks(v: Vault) -> list[tuple[str, dict[str, str]]]:
    return [(d.id, dict(d.names)) for d in v.keyring() if d.id != v.desk_id]


async def refer(request: web.Request) -> web.StreamResponse:
    item_id = request.match_info["id"]
    form = await _form(request)
    values = {k: _one(form, k) for k in ("to", "note", "override")}

    def run(v: Vault) -> str:
        ref_id = replies.refer(v, item_id, values["to"], values["note"],
                               override_consent=values["override"] or None)
        v.save()
        return ref_id

    try:
        ref_id = await _vault(request, run)
    except EXPECTED as e:
        shown, desks = await _vault(
            request, lambda v: (triage.show_item(v, item_id), _other_desks(v)))
        return render(request, "refer.html", status=400, item=shown, desks=desks,
                      values=values, error=_error_line(e))
    _flash(request, "notice", _t(request, "Referral {id} to desk {desk} is in the outbox.")
           .format(id=ref_id[:12], desk=values["to"]))
    raise _see(f"/item/{item_id}")


# --- search ---------------------------------------------------------------------------

async def search(request: web.Request) -> web.Response:
    text = request.query.get("q", "").strip()
    if not text:
        return render(request, "search.html", q="", hits=[], total=0, error="")
    try:
        def run(v: Vault) -> tuple[list[tuple[records.SearchHit, Any]], int]:
            hits = triage.run_search_marked(v, text, limit=SEARCH_LIMIT)
            total = (triage.count_search(v, text) if len(hits) == SEARCH_LIMIT
                     else len(hits))
            return hits, total

        hits, total = await _vault(request, run)
    except SearchError as e:
        return render(request, "search.html", status=400, q=text, hits=[], total=0,
                      error=str(e))
    return render(request, "search.html", q=text, hits=hits, total=total, error="")


# --- outbox ---------------------------------------------------------------------------

async def outbox(request: web.Request) -> web.Response:
    show_all = request.query.get("all") == "1"
    entries = await _vault(request, lambda v: replies.list_outbox(v, include_sent=show_all))
    return render(request, "outbox.html", entries=entries, show_all=show_all)


async def outbox_bundle(request: web.Request) -> web.StreamResponse:
    form = await _form(request)

    def run(v: Vault) -> tuple[Path, int]:
        path, count = replies.bundle_outbox(v, _path(_one(form, "path")))
        # Outside the vault: dated to the day here, not by Vault.close (as the CLI does).
        fs.set_day(path, dt.datetime.now(dt.UTC).date())
        v.save()
        return path, count

    try:
        path, count = await _vault(request, run)
    except (*EXPECTED, OSError) as e:
        _flash(request, "error", _error_line(e))
    else:
        _flash(request, "notice", _t(
            request, "Wrote {count} item(s) to {path}. Carry it to the transfer machine "
                     "and run push.").format(count=count, path=path))
    raise _see("/outbox")


# --- import ---------------------------------------------------------------------------

def _import_job(v: Vault, job: ImportJob) -> None:
    lines: list[str] = []
    failed = False
    try:
        with bulk(v):
            r = importer.import_bundle(v, job.bundle, progress=False, on_item=job.progress)
        if r.repeated_bundle:
            lines.append(f"already imported; nothing changed. Its ack is {r.ack_path}")
        else:
            lines.append(f"{len(r.imported)} imported, {len(r.already)} already here, "
                         f"{len(r.quarantined)} quarantined.")
            lines += [f"quarantined {i[:12]}: {reason}" for i, reason in r.quarantined]
            lines.append(f"ack for the server: {r.ack_path}")
            if r.ack_path is not None and r.ack_path.exists():
                fs.set_day(r.ack_path, dt.datetime.now(dt.UTC).date())
        state = continuity.check(v)
        if state.missing:
            failed = True
            lines.append(f"ALARM: the server holds {len(state.missing)} item(s) for this "
                         "desk that never reached this vault (see `journalist-client "
                         "import` and docs/client.md).")
    except (*EXPECTED, OSError) as e:
        failed = True
        lines.append(_error_line(e))
    except Exception as e:  # the job must end, whatever happened; the lines say why
        failed = True
        lines.append(f"the import failed: {type(e).__name__}")
    job.finish(lines, failed=failed)


async def import_page(request: web.Request) -> web.Response:
    job = request.app[STATE].job
    snapshot = job.snapshot() if job is not None else None
    return render(request, "import.html", job=job, snapshot=snapshot)


async def start_import(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    state = request.app[STATE]
    if state.job is not None and not state.job.finished:
        _flash(request, "error", _t(request, "An import is already running."))
        raise _see("/import")
    try:
        path = _path(_one(form, "path"))
    except triage.TriageError as e:
        _flash(request, "error", str(e))
        raise _see("/import") from None
    job = ImportJob(bundle=str(path))
    state.job = job
    request.app[WORKER].submit(lambda v: _import_job(v, job))
    raise _see("/import")


# --- indicators -----------------------------------------------------------------------

async def iocs(request: web.Request) -> web.Response:
    listing = await _vault(request, lambda v: indicators.list_files(v, unsupported=True))
    return render(request, "iocs.html", listing=listing)


async def iocs_action(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    action = request.match_info["action"]

    def run(v: Vault) -> str:
        with bulk(v):
            return change(v)

    def change(v: Vault) -> str:
        if action == "import":
            r = indicators.import_file(v, _path(_one(form, "path")))
            v.save()
            f = r.info
            if r.status == "unchanged":
                return f"{f.name}: already imported with this content; nothing changed."
            return (f"{f.name}: {f.indicators} indicator(s), {f.unsupported} unsupported "
                    f"pattern(s), sha256 {f.sha256}. Rescan to match the reports already "
                    "here.")
        if action == "remove":
            f = indicators.remove_file(v, _one(form, "name"))
            v.save()
            return f"Removed {f.name}: {f.indicators} indicator(s) and their matches."
        scanned, matched = indicators.rescan(v, progress=False)
        v.save()
        return f"Rescanned {scanned} item(s); {matched} with matches."

    try:
        line = await _vault(request, run)
    except (*EXPECTED, OSError) as e:
        _flash(request, "error", _error_line(e))
    else:
        _flash(request, "notice", line)
    raise _see("/iocs")


# --- statistics, language -------------------------------------------------------------

def _stats_query(request: web.Request) -> dict[str, str]:
    today = dt.datetime.now(dt.UTC).date()
    start = today.replace(day=1) - dt.timedelta(days=335)
    return {"since": request.query.get("since", f"{start:%Y-%m}"),
            "until": request.query.get("until", f"{today:%Y-%m}"),
            "by": request.query.get("by", "category"), "k": request.query.get("k", "")}


async def _stats_table(request: web.Request, q: dict[str, str]) -> stats_table.Table:
    language = request.app[STATE].language
    k = int(q["k"]) if q["k"] else stats_table.DEFAULT_K
    return await _vault(request, lambda v: stats_table.table(
        v, q["since"], q["until"], by=q["by"], k=k, lang=language))


async def stats(request: web.Request) -> web.Response:
    """The statistics of journalist_client.stats: the same table as
    ``journalist-client stats``, suppression included, and its chart."""
    q = _stats_query(request)
    labels = [(d, _t(request, stats_table.DIMENSION_LABELS[d]))
              for d in stats_table.DIMENSIONS]
    try:
        table = await _stats_table(request, q)
    except (ValueError, stats_table.StatsError) as e:
        return render(request, "stats.html", status=400, table=None, q=q,
                      dimensions=labels, error=str(e), chart="")
    chart = "/stats/chart.svg?" + urllib.parse.urlencode(q)
    return render(request, "stats.html", table=table, q=q, dimensions=labels,
                  error="", chart=chart)


async def stats_chart(request: web.Request) -> web.Response:
    """The statistics page's chart, drawn in memory (never written to disk) as SVG: text
    as paths, no script; shown with <img>, where an SVG cannot run anything anyway."""
    q = _stats_query(request)
    try:
        table = await _stats_table(request, q)
    except (ValueError, stats_table.StatsError) as e:
        raise web.HTTPBadRequest(reason=str(e)) from None
    from journalist_client import stats_charts  # only this page loads matplotlib

    svg = await asyncio.get_running_loop().run_in_executor(
        None, stats_charts.chart, table, "svg")
    return web.Response(body=svg, content_type="image/svg+xml")


async def set_language(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    code = _one(form, "lang")
    if code not in LANGUAGES:
        raise web.HTTPBadRequest(reason=N_("Unknown language."))

    def run(v: Vault) -> None:
        v.set_meta(LANGUAGE_META + v.user, code)
        v.save()

    await _vault(request, run)
    request.app[STATE].language = code
    back = _one(form, "next")
    # Only a path of this UI (its paths are letters, digits, "/", "-" and "_"): never
    # "//elsewhere", "/\\elsewhere" (which browsers read as "//") or a full URL.
    raise _see(back if _LOCAL_PATH.fullmatch(back) else "/")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/", inbox)
    r.add_get("/item/{id}", item)
    r.add_post("/item/{id}/set", set_fields)
    r.add_post("/item/{id}/note", add_note)
    r.add_post("/item/{id}/export", export_attachment)
    r.add_get("/item/{id}/reply", reply_form)
    r.add_post("/item/{id}/reply", reply)
    r.add_get("/item/{id}/refer", refer_form)
    r.add_post("/item/{id}/refer", refer)
    r.add_get("/search", search)
    r.add_get("/outbox", outbox)
    r.add_post("/outbox/bundle", outbox_bundle)
    r.add_get("/import", import_page)
    r.add_post("/import", start_import)
    r.add_get("/iocs", iocs)
    r.add_post("/iocs/{action:import|remove|rescan}", iocs_action)
    r.add_get("/stats", stats)
    r.add_get("/stats/chart.svg", stats_chart)
    r.add_post("/language", set_language)
