"""Anonymised statistics for advocacy: counts of reports with small-count suppression.

``journalist-client stats`` and the UI's statistics page call :func:`table`. Only
reports whose source ticked ``consent.publish_anonymised`` are counted; the others are
counted apart as "left out". docs/stats.md states the method and why it holds; in short:

- date ranges are whole months (a day is rounded out to its month);
- suppression is decided per *month*: in each month, a count from 1 to k-1 is hidden
  ("<k"), and other counts are hidden with it ("x", hidden with no bound) until no
  hidden count can be worked out from the month's total; a month where that is impossible, or whose
  total is itself from 1 to k-1, has its total hidden in every dimension;
- a count over a range of months is shown only when it is shown in every month of
  the range (so it is a sum of shown month counts, each 0 or at least k), and the
  range's total only when every month's total is shown. Two ranges that differ by
  some months then differ, in anything shown, by 0 or by at least k.

Nothing here writes a file; journalist_client.stats_charts draws and writes the pack.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import gettext
import io
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from babel import Locale
from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import Translations

from journalist_client import records
from journalist_client.taxonomy import SEVERITIES
from journalist_client.vault import Vault

__all__ = ["DEFAULT_K", "DIMENSIONS", "MIN_K", "Cell", "Counted", "Row", "StatsError", "Table",
           "month_range", "months", "table", "tabulate", "to_csv", "to_json"]

DIMENSIONS: Final = ("month", "category", "country", "target", "family", "severity", "status")
DEFAULT_K: Final = 5
# Below 3, a "<k" cell is 1 or 2: hardly hidden at all.
MIN_K: Final = 3
MAX_MONTHS: Final = 240
LANGS: Final = ("en", "ar", "fr")

_LOCALES_DIR: Final = Path(__file__).resolve().parent / "locales"
_MONTH_RE: Final = re.compile(r"(\d{4})-(\d{2})(?:-(\d{2}))?")


def N_(message: str) -> str:  # noqa: N802 - the gettext marker's usual name
    """Mark a string for the ``ui`` catalogue; translated when shown."""
    return message


# Labels of the codes the reports hold (docs/report-format.md, the taxonomy).
DIMENSION_LABELS: Final = {
    "month": N_("Month"), "category": N_("Category"), "country": N_("Country"),
    "target": N_("Who was targeted"), "family": N_("Spyware family"),
    "severity": N_("Severity"), "status": N_("Status"),
}
CATEGORY_LABELS: Final = {
    "spyware": N_("Spyware"), "msg": N_("Suspicious message"),
    "acct": N_("Account problem"), "device": N_("Device acting strangely"),
    "seized": N_("Device taken or lost"), "harass": N_("Harassment"),
    "impersonation": N_("Impersonation"), "exposure": N_("Data exposed"),
    "web": N_("Website attacked"), "network": N_("Network watched or blocked"),
    "legal": N_("Legal pressure"), "advice": N_("Advice"), "other": N_("Something else"),
}
TARGET_LABELS: Final = {
    "self": N_("The person reporting"), "other_person": N_("Someone else"),
    "organisation": N_("An organisation"), "": N_("not answered"),
}
COUNTRY_WORDS: Final = {"": N_("not answered"), "elsewhere": N_("elsewhere"),
                        "undisclosed": N_("not disclosed")}
NO_FAMILY: Final = N_("no published indicator found")
NOT_SET: Final = N_("not set")
TOTAL: Final = N_("Total")
LEFT_OUT: Final = N_("Left out (no consent)")


class StatsError(ValueError):
    """A request for statistics that cannot be answered as asked (the message says why)."""


@dataclass(frozen=True)
class Cell:
    """One published count: ``value`` when shown, else None; ``shown`` is what is printed
    ("12", "<5" for a count from 1 to k-1, "x" for one hidden to protect those)."""

    value: int | None
    shown: str


@dataclass(frozen=True)
class Row:
    key: str  # the code counted ("AE", "spyware", "2026-03" …)
    label: str  # in the chosen language
    value: int | None
    shown: str


@dataclass(frozen=True)
class Table:
    by: str
    by_label: str
    since: str  # YYYY-MM
    until: str  # YYYY-MM
    k: int
    lang: str
    rows: tuple[Row, ...]
    total: Cell
    left_out: Cell
    # Why no rows are shown although reports were counted, else empty.
    note: str


@functools.cache
def _translations(lang: str) -> gettext.NullTranslations:
    """The client's ``ui`` catalogue (as journalist_client.ui.i18n, without loading the UI)."""
    if lang == "en":
        return gettext.NullTranslations()
    with (_LOCALES_DIR / lang / "LC_MESSAGES" / "ui.po").open("rb") as f:
        catalog = read_po(f, locale=lang)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return Translations(fp=buf, domain="ui")


def gettext_for(lang: str) -> gettext.NullTranslations:
    if lang not in LANGS:
        raise StatsError(f"language must be one of {', '.join(LANGS)}")
    return _translations(lang)


def number(n: int, lang: str) -> str:
    """``n`` with the digits the locale's CLDR data uses by default."""
    return format_decimal(n, locale=lang)


def month_range(since: str, until: str) -> tuple[dt.date, dt.date]:
    """First days of the first and last months: ``YYYY-MM`` or a day, rounded out."""
    def first(text: str, what: str) -> dt.date:
        m = _MONTH_RE.fullmatch(text.strip())
        if m is None:
            raise StatsError(f"{what}: give a month as YYYY-MM (or a day, YYYY-MM-DD)")
        try:
            return dt.date(int(m[1]), int(m[2]), int(m[3] or 1)).replace(day=1)
        except ValueError:
            raise StatsError(f"{what}: {text!r} is not a date") from None
    start, end = first(since, "--since"), first(until, "--until")
    if end < start:
        raise StatsError("--until is before --since")
    if _months_between(start, end) > MAX_MONTHS:
        raise StatsError(f"at most {MAX_MONTHS} months at a time")
    return start, end


def _months_between(a: dt.date, b: dt.date) -> int:
    return (b.year - a.year) * 12 + b.month - a.month + 1


def months(start: dt.date, end: dt.date) -> list[str]:
    """The months from ``start`` to ``end``, as YYYY-MM."""
    out, y, m = [], start.year, start.month
    for _ in range(_months_between(start, end)):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


# --- reading the vault ----------------------------------------------------------------

@dataclass(frozen=True)
class Counted:
    """What the statistics know of one report: no id, no text."""

    month: str
    consented: bool
    keys: dict[str, tuple[str, ...]]  # dimension -> the codes it counts under


def _reports(vault: Vault, start: dt.date, end: dt.date) -> list[Counted]:
    last = months(end, end)[0] + "-31"
    conn = vault.conn
    # A report's families are those of its case, as `list` counts matches: its own and
    # those found in its follow-ups (same reply recipient).
    families: dict[str, set[str]] = defaultdict(set)
    for item_id, family in conn.execute(
            "SELECT r.id, m.family FROM items r JOIN items i ON i.id = r.id OR "
            "(i.type = 'followup' AND i.reply_recipient = r.reply_recipient) "
            "JOIN ioc_matches m ON m.item_id = i.id WHERE r.type = 'report' "
            "AND r.received_day BETWEEN ? AND ?", (start.isoformat(), last)):
        families[item_id].add(family or "")
    out = []
    for (item_id, day, category, triage_category, country, status, severity, target,
         consent) in conn.execute(
            "SELECT id, received_day, category, triage_category, country, status, severity, "
            "coalesce(json_extract(doc, '$.answers.target'), ''), "
            "json_extract(doc, '$.answers.consent.publish_anonymised') "
            "FROM items WHERE type = 'report' AND received_day BETWEEN ? AND ?",
            (start.isoformat(), last)):
        top = (triage_category or category or "other").split(".", 1)[0]
        fam = families.get(item_id)
        keys = {
            "month": (day[:7],),
            "category": (top,),
            "country": (country or "",),
            "target": (target if isinstance(target, str) else "",),
            # An unnamed family is "" too: counted with "none found" would be wrong, so
            # it keeps a key of its own below.
            "family": tuple(sorted(f or "unattributed" for f in fam)) if fam else ("",),
            "severity": (severity or "",),
            "status": (status or "",),
        }
        out.append(Counted(day[:7], consent == 1, keys))
    return out


# --- suppression ----------------------------------------------------------------------

def _narrowed(cells: Mapping[str, int], hidden: set[str], total: int, k: int,
              *, exact_sum: bool) -> bool:
    """Whether the month's total and shown cells narrow a hidden cell beyond what its
    mark says: a "<k" cell must stay anywhere in 1..k-1, an "x" cell (at least k)
    must not be pinned to one value.

    The hidden cells add up to ``total`` minus the shown ones (``exact_sum``), or to at
    least that (a report may count under several families). With one constraint and
    each cell in its own bounds, these intervals are exactly what can be derived.
    """
    rest = total - sum(v for c, v in cells.items() if c not in hidden)
    bounds = {c: (1, k - 1) if cells[c] < k else (k, total) for c in hidden}
    lo_all = sum(lo for lo, _ in bounds.values())
    hi_all = sum(hi for _, hi in bounds.values())
    for c in hidden:
        lo, hi = bounds[c]
        low = max(lo, rest - (hi_all - hi))
        high = min(hi, rest - (lo_all - lo)) if exact_sum else hi
        if cells[c] < k and (low > 1 or high < k - 1):
            return True
        if cells[c] >= k and low >= high:
            return True
    return False


def _protect(cells: Mapping[str, int], total: int, k: int, *,
             exact_sum: bool) -> set[str] | None:
    """The cells to hide in one month, or None when the month's total must be hidden."""
    # Complementary suppression: hide the smallest shown cells (ties by code, never by
    # anything secret) until no hidden cell can be narrowed.
    return _protect_marks(cells, {c for c, v in cells.items() if 0 < v < k}, total, k,
                          exact_sum=exact_sum)


def _protect_marks(cells: Mapping[str, int], hidden: set[str], total: int, k: int, *,
                   exact_sum: bool) -> set[str] | None:
    """``hidden`` and the shown cells to hide with it so that no hidden cell is narrowed,
    or None when even hiding all of them is not enough."""
    hidden = set(hidden)
    while hidden and _narrowed(cells, hidden, total, k, exact_sum=exact_sum):
        shown = sorted((v, c) for c, v in cells.items() if c not in hidden and v > 0)
        if not shown:
            return None
        hidden.add(shown[0][1])
    return hidden


def _month_counts(reports: Iterable[Counted], dim: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in reports:
        for key in r.keys[dim]:
            out[r.month][key] += 1
    return out


@dataclass(frozen=True)
class _Month:
    total: int
    total_shown: bool
    cells: dict[str, int]
    hidden: set[str]


def _plan(reports: list[Counted], months: list[str], k: int) -> dict[str, dict[str, _Month]]:
    """Per dimension, per month: the counts and what is hidden. A month's total is
    shown only if every dimension can be protected with it shown, so that no dimension
    publishes a total another must hide."""
    totals: dict[str, int] = defaultdict(int)
    for r in reports:
        totals[r.month] += 1
    per_dim = {d: _month_counts(reports, d) for d in DIMENSIONS}
    hidden: dict[str, dict[str, set[str] | None]] = {d: {} for d in DIMENSIONS}
    total_ok: dict[str, bool] = {}
    for m in months:
        t = totals.get(m, 0)
        ok = t == 0 or t >= k
        for d in DIMENSIONS:
            h = _protect(per_dim[d].get(m, {}), t, k, exact_sum=d != "family") if ok else None
            hidden[d][m] = h
            ok = ok and h is not None
        total_ok[m] = ok
    plan: dict[str, dict[str, _Month]] = {}
    for d in DIMENSIONS:
        plan[d] = {}
        for m in months:
            cells = dict(per_dim[d].get(m, {}))
            h = hidden[d][m]
            plan[d][m] = _Month(totals.get(m, 0), total_ok[m], cells,
                                set(cells) if h is None or not total_ok[m] else h)
    return plan


def _cell(value: int, shown: bool, k: int, lang: str, *, months: int = 1) -> Cell:
    """A count as published. ``months``: in how many months of the range it has reports.

    "<k" only for a count that sits in one month: over several months, "<k" would bound
    their sum, and with each month's own "<k" (and the row listed there, so at least 1)
    pin them (1 + 1 under "<3"). Those, and the counts hidden to protect others, are "x":
    hidden, with no bound."""
    if shown:
        return Cell(value, number(value, lang))
    return Cell(None, f"<{number(k, lang)}" if value < k and months <= 1 else "x")


def _series_cell(counts: Iterable[int], k: int, lang: str) -> Cell:
    """A count made of month counts with no breakdown (the reports left out): shown
    when every month's count is 0 or at least k."""
    values = list(counts)
    return _cell(sum(values), all(v == 0 or v >= k for v in values), k, lang,
                 months=sum(1 for v in values if v))


# --- the table ------------------------------------------------------------------------

def _label(dim: str, key: str, t: gettext.NullTranslations, lang: str) -> str:
    _ = t.gettext
    if dim == "month":
        return format_date(dt.date.fromisoformat(key + "-01"), "LLLL y", locale=lang)
    if dim == "category":
        return _(CATEGORY_LABELS[key]) if key in CATEGORY_LABELS else key
    if dim == "country":
        if key in COUNTRY_WORDS:
            return _(COUNTRY_WORDS[key])
        return str(Locale.parse(lang).territories.get(key, key))
    if dim == "target":
        return _(TARGET_LABELS[key]) if key in TARGET_LABELS else key
    if dim == "family":
        return _(NO_FAMILY) if key == "" else key
    if dim == "severity":
        return f"{key} {_(SEVERITIES[key])}" if key in SEVERITIES else _(NOT_SET)
    return _(key) if key else _(NOT_SET)


def table(vault: Vault, since: str, until: str, *, by: str = "category",
          k: int = DEFAULT_K, lang: str = "en") -> Table:
    """Counts of consented reports received from month ``since`` to month ``until``
    (inclusive, whole months), by ``by``, with counts under ``k`` hidden as above."""
    if by not in DIMENSIONS:
        raise StatsError(f"--by must be one of {', '.join(DIMENSIONS)}")
    if not isinstance(k, int) or k < MIN_K:
        raise StatsError(f"k must be a whole number of at least {MIN_K}")
    start, end = month_range(since, until)
    return tabulate(_reports(vault, start, end), months(start, end), by=by, k=k, lang=lang)


def tabulate(everything: list[Counted], months: list[str], *, by: str, k: int,
             lang: str) -> Table:
    """:func:`table` on reports already read: ``months`` are the range, in order."""
    if by not in DIMENSIONS:
        raise StatsError(f"--by must be one of {', '.join(DIMENSIONS)}")
    t = gettext_for(lang)
    consented = [r for r in everything if r.consented]
    left: dict[str, int] = defaultdict(int)
    for r in everything:
        if not r.consented:
            left[r.month] += 1
    left_out = _series_cell((left.get(m, 0) for m in months), k, lang)
    plan = _plan(consented, months, k)[by]
    total_value = sum(plan[m].total for m in months)
    total_shown = all(plan[m].total_shown for m in months)
    total = _cell(total_value, total_shown, k, lang,
                  months=sum(1 for m in months if plan[m].total))
    note = ""
    rows: list[Row] = []
    if by == "month":
        # Every month is a row, also an empty one, so presence tells nothing here.
        # When the total is under k, rows and total together would pin the rows.
        if total_shown or total_value >= k:
            for m in months:
                c = _cell(plan[m].total, plan[m].total_shown, k, lang)
                rows.append(Row(m, _label(by, m, t, lang), c.value, c.shown))
        elif total_value:
            note = t.gettext("Too few reports in this range to break them down.")
    elif total_shown:
        keys = sorted({c for m in months for c, v in plan[m].cells.items() if v})
        values = {key: sum(plan[m].cells.get(key, 0) for m in months) for key in keys}
        # Hidden over the range: hidden in any of its months.
        hidden = {key for key in keys if any(key in plan[m].hidden for m in months)}
        # The range's own marks, beside its total, must not pin a hidden count either
        # ("x", "x" and a total of 2k are k and k): hide more, as in a month.
        more = _protect_marks(values, hidden, total_value, k, exact_sum=by != "family")
        if more is None:
            note = t.gettext("Too few reports in this range to break them down.")
            keys = []
        for key in keys:
            c = _cell(values[key], key not in (more or set()), k, lang,
                      months=sum(1 for m in months if plan[m].cells.get(key)))
            rows.append(Row(key, _label(by, key, t, lang), c.value, c.shown))
    elif total_value:
        note = t.gettext("Some months in this range have too few reports to break them "
                         "down without revealing one: choose other months, or by month.")
    return Table(by=by, by_label=t.gettext(DIMENSION_LABELS[by]),
                 since=months[0], until=months[-1], k=k, lang=lang, rows=tuple(rows),
                 total=total, left_out=left_out, note=note)


def to_csv(tab: Table) -> str:
    """Header, one row per value (label, count), then the total and the reports left out."""
    t = gettext_for(tab.lang)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([tab.by_label, t.gettext("Reports")])
    for r in tab.rows:
        w.writerow([_not_a_formula(r.label), r.shown])
    w.writerow(["total", tab.total.shown])
    w.writerow([t.gettext(LEFT_OUT), tab.left_out.shown])
    return buf.getvalue()


def _not_a_formula(label: str) -> str:
    """A family name comes from an imported indicator file: one starting like a formula
    ("=HYPERLINK(…)") would run as one when the pack is opened in a spreadsheet."""
    return "'" + label if label[:1] in ("=", "+", "-", "@", "\t", "\r") else label


def to_json(tab: Table) -> str:
    doc = {"by": tab.by, "since": tab.since, "until": tab.until, "k": tab.k,
           "lang": tab.lang, "method": "docs/stats.md",
           "rows": [{"key": r.key, "label": r.label, "count": r.value, "shown": r.shown}
                    for r in tab.rows],
           "total": {"count": tab.total.value, "shown": tab.total.shown},
           "left_out": {"count": tab.left_out.value, "shown": tab.left_out.shown},
           "note": tab.note}
    # Family names come from imported indicator files: escaped as every --json is.
    return records.to_json(doc)
