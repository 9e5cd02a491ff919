"""Charts of journalist_client.stats tables (SVG, PNG) and the dated advocacy pack.

Drawn with matplotlib (3.11 or later: it lays text out with libraqm, so Arabic is
shaped and right to left without help; checked by rendering, see the commit). A chart
draws exactly what the table shows: a shown count is a bar, a hidden one is no bar
but its mark ("<5", "x") where the bar would be, so a bar's length never tells more
than the table. Fonts: Noto Sans Arabic (Debian's fonts-noto-core) for Arabic, else
DejaVu Sans. The SVG has its text as paths and no script, date or random id.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Final, Literal

import matplotlib

matplotlib.use("Agg")  # no display: never a window, never a GUI toolkit

from matplotlib.figure import Figure  # noqa: E402 - after choosing the backend
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from journalist_client import stats  # noqa: E402
from journalist_client.display import inert  # noqa: E402
from journalist_client.vault import Vault  # noqa: E402
from keys import fs  # noqa: E402

__all__ = ["chart", "write_pack"]

FONTS: Final = ["Noto Sans Arabic", "DejaVu Sans"]


def _ltr(text: str, lang: str) -> str:
    """``text`` (a month such as 2026-10, a count or a mark such as <5) isolated as left
    to right in an Arabic line (LRI ... PDI). Without it the bidi algorithm moves the
    digits and the hyphen of "2026-10" around the Arabic words (drawn "10-2026"), and
    mirrors the "<" of a mark."""
    return f"\u2066{text}\u2069" if lang == "ar" else text


def _title(tab: stats.Table) -> str:
    _ = stats.gettext_for(tab.lang).gettext
    return _("Reports by {dimension}, {since} to {until}").format(
        dimension=tab.by_label, since=_ltr(tab.since, tab.lang),
        until=_ltr(tab.until, tab.lang))


def chart(tab: stats.Table, fmt: Literal["svg", "png"]) -> bytes:
    """The table as a horizontal bar chart, titled and labelled in its language."""
    _ = stats.gettext_for(tab.lang).gettext
    rtl = tab.lang == "ar"
    # text.parse_math off: a family name from an indicator file is text, never TeX
    # ("$\\frac…$" would otherwise be parsed, or fail to).
    with matplotlib.rc_context({"svg.hashsalt": "amana", "svg.fonttype": "path",
                                "font.family": FONTS, "text.parse_math": False}):
        rows = tab.rows
        fig = Figure(figsize=(8, max(2.5, 0.45 * len(rows) + 1.8)), dpi=100)
        ax = fig.add_subplot()
        ys = list(range(len(rows)))[::-1]
        values = [r.value or 0 for r in rows]
        ax.barh(ys, values, color="#3b6ea8")
        top = max([*values, tab.k, 1])
        for y, r in zip(ys, rows, strict=True):
            # Hidden counts: their mark, at the start of the bar, never a length.
            ax.text(r.value or 0, y, f" {_ltr(r.shown, tab.lang)} ", va="center",
                    ha="right" if rtl else "left", fontsize=9, language=tab.lang)
        # Controls and bidi overrides in a family name shown as escapes, as in the CLI.
        ax.set_yticks(ys, [inert(r.label) for r in rows])
        for label in ax.get_yticklabels():
            label.set_language(tab.lang)
        ax.set_xlim(0, top * 1.15)
        # Right to left: the bars grow leftwards and the labels sit on the right.
        if rtl:
            ax.invert_xaxis()
            ax.yaxis.tick_right()
        ax.xaxis.set_major_formatter(
            FuncFormatter(lambda v, _p: stats.number(int(v), tab.lang)))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(_("Reports"), language=tab.lang)
        ax.set_title(_title(tab), language=tab.lang, fontsize=11)
        foot = _("Counts under {k} are hidden (“<{k}”), with others (“x”) so none can be "
                 "worked out. Total: {total}. Left out (no consent): {left}.").format(
            k=stats.number(tab.k, tab.lang), total=_ltr(tab.total.shown, tab.lang),
            left=_ltr(tab.left_out.shown, tab.lang))
        if tab.note:
            foot = tab.note + "\n" + foot
        fig.text(0.99 if rtl else 0.01, 0.01, foot, fontsize=7, wrap=True,
                 ha="right" if rtl else "left", language=tab.lang)
        fig.tight_layout(rect=(0, 0.06, 1, 1))
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, metadata={"Date": None} if fmt == "svg" else
                    {"Software": None})
    return buf.getvalue()


def write_pack(vault: Vault, since: str, until: str, out_dir: str | Path, *, k: int,
               lang: str) -> Path:
    """A new folder ``amana-stats-YYYY-MM-DD`` in ``out_dir``: for every dimension a CSV,
    an SVG and a PNG, and README.txt stating the range, the method and k."""
    _ = stats.gettext_for(lang).gettext
    folder = Path(out_dir) / f"amana-stats-{fs.today().isoformat()}"
    fs.private_dir(folder)
    tables = [stats.table(vault, since, until, by=d, k=k, lang=lang) for d in stats.DIMENSIONS]
    for tab in tables:
        fs.atomic_write_bytes(folder / f"{tab.by}.csv", stats.to_csv(tab).encode("utf-8"))
        fs.atomic_write_bytes(folder / f"{tab.by}.svg", chart(tab, "svg"))
        fs.atomic_write_bytes(folder / f"{tab.by}.png", chart(tab, "png"))
    first = tables[0]
    readme = _(
        "Amana advocacy pack, written {day}.\n\n"
        "Reports received from {since} to {until} (whole months) whose source consented "
        "to anonymised figures. Reports left out because their source did not: {left}.\n\n"
        "Method (docs/stats.md): counts from 1 to {km1} are shown as “<{k}” (k = {k}). "
        "Suppression is decided month by month: in each month, other counts are hidden "
        "with them (“x”) until none can be worked out from the month's total, and a "
        "figure for several months is shown only if it is shown in every one of them. "
        "So two packs for ranges that share months differ, in anything they show, by 0 "
        "or by at least {k}.\n\n"
        "Files: one CSV (label, count; then the total and the reports left out), one SVG "
        "and one PNG chart per breakdown: {files}.\n").format(
        day=fs.today().isoformat(), since=first.since,
        until=first.until, left=first.left_out.shown, k=k, km1=k - 1,
        files=", ".join(stats.DIMENSIONS))
    fs.atomic_write_bytes(folder / "README.txt", readme.encode("utf-8"))
    return folder
