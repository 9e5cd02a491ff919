"""`journalist-client stats` and journalist_client.stats: what is counted, what is hidden,
and (Hypothesis) that no hidden count can be worked out from what the CSV shows, alone
or with the tables of adjacent month ranges (docs/stats.md)."""

from __future__ import annotations

import csv
import io
import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from journalist_client import stats
from journalist_client.stats import Counted

from .conftest import Run, Server, counted_reports

MONTHS = ["2026-01", "2026-02", "2026-03", "2026-04"]
COUNTRIES = ["AE", "EG", "LB", "MA"]


def _report(month: str, country: str, *, consented: bool = True,
            families: tuple[str, ...] = ("",)) -> Counted:
    return Counted(month, consented, {
        "month": (month,), "category": ("spyware",), "country": (country,),
        "target": ("self",), "family": families, "severity": ("",), "status": ("new",)})


# --- what a reader gets: the CSV, parsed back -----------------------------------------

def _published(tab: stats.Table) -> tuple[dict[str, str], str, str]:
    """(label -> shown) for the values, the total, the left out: from the CSV alone."""
    rows = list(csv.reader(io.StringIO(stats.to_csv(tab))))
    assert rows[0] == [tab.by_label, "Reports"]
    assert rows[-2][0] == "total"
    assert rows[-1][0] == "Left out (no consent)"
    return dict(rows[1:-2]), rows[-2][1], rows[-1][1]


def _row(published: tuple[dict[str, str], str, str], label: str) -> str:
    rows, total, _ = published
    return rows.get(label, "0" if rows or total == "0" else "?")


def _exact(shown: str) -> int | None:
    return int(shown) if shown.isdigit() else None


def _feasible(cells: dict[str, str], total: int, k: int) -> dict[str, set[int]]:
    """Every value each hidden cell can take given the marks ("<k" is 1..k-1, "x" any
    count, and a listed row is at least 1) and that the rows add up to the total: by
    building the set of sums the other hidden cells can make. Independent of
    stats._narrowed on purpose."""
    hidden = [c for c, s in cells.items() if _exact(s) is None]
    rest = total - sum(v for s in cells.values() if (v := _exact(s)) is not None)
    ranges = {c: range(1, k) if cells[c].startswith("<") else range(1, total + 1)
              for c in hidden}
    out: dict[str, set[int]] = {}
    for c in hidden:
        sums = {0}
        for other in hidden:
            if other != c:
                sums = {a + b for a in sums for b in ranges[other] if a + b <= rest}
        out[c] = {v for v in ranges[c] if rest - v in sums}
    return out


def _from_counts(counts: list[int], left: list[int]) -> list[Counted]:
    """Reports from a month x country grid of counts, and reports left out per month."""
    cells = itertools.product(MONTHS, COUNTRIES)
    out = [_report(m, c) for (m, c), n in zip(cells, counts, strict=True) for _ in range(n)]
    return out + [_report(m, "AE", consented=False)
                  for m, n in zip(MONTHS, left, strict=True) for _ in range(n)]


# Counts around k, often 0: where a small count sits next to large ones.
_count = st.one_of(st.just(0), st.integers(1, 4), st.integers(5, 14))
reports = st.builds(
    _from_counts,
    st.lists(_count, min_size=len(MONTHS) * len(COUNTRIES),
             max_size=len(MONTHS) * len(COUNTRIES)),
    st.lists(_count, min_size=len(MONTHS), max_size=len(MONTHS)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reports, st.integers(3, 6), st.sampled_from(["country", "month"]))
def test_no_hidden_cell_follows_from_the_csv_and_its_total(
        data: list[Counted], k: int, by: str) -> None:
    for a, b in itertools.combinations_with_replacement(range(len(MONTHS)), 2):
        tab = stats.tabulate(data, MONTHS[a:b + 1], by=by, k=k, lang="en")
        cells, total, _ = _published(tab)
        true = {r.label: r for r in tab.rows}
        for label, shown in cells.items():
            if _exact(shown) is None:
                assert shown in (f"<{k}", "x")
            # A mark never lies about the count behind it.
            value = sum(1 for r in data if r.month in MONTHS[a:b + 1] and r.consented
                        and (r.keys[by][0] == true[label].key))
            if shown == f"<{k}":
                assert 1 <= value < k
            elif shown == "x":
                assert value >= 1
            else:
                assert int(shown) == value
        if _exact(total) is None:
            # Rows beside a hidden total under k would pin them (four "<5" rows and a
            # total "<5" are four ones): none are shown.
            if total == f"<{k}":
                assert cells == {}
            continue
        for label, values in _feasible(cells, int(total), k).items():
            assert len(values) >= 2, (label, values, cells, total)
            if cells[label] == f"<{k}":
                assert values == set(range(1, k)), (label, values, cells, total)


@settings(max_examples=150, deadline=None)
@given(reports, st.integers(3, 6))
def test_adjacent_month_ranges_differ_by_zero_or_at_least_k(data: list[Counted],
                                                             k: int) -> None:
    """Jan-Mar minus Jan-Feb is March: anything both show differs by 0 or >= k, so no
    count from 1 to k-1 of a month (hidden in the month's own table) comes out."""
    def shown(a: int, b: int) -> tuple[dict[str, str], str, str]:
        return _published(stats.tabulate(data, MONTHS[a:b + 1], by="country", k=k,
                                         lang="en"))

    n = len(MONTHS)
    for a, b in itertools.combinations_with_replacement(range(n), 2):
        wide = shown(a, b)
        narrower = [(a, b - 1)] if b > a else []
        narrower += [(a + 1, b)] if b > a else []
        for c, d in narrower:
            small = shown(c, d)
            month = shown(b, b) if d == b - 1 else shown(a, a)
            pairs = [(wide[1], small[1], month[1]), (wide[2], small[2], month[2])]
            # A missing row is 0 only where the table breaks its total down at all.
            pairs += [(wide[0][lab], _row(small, lab), _row(month, lab)) for lab in wide[0]]
            for big, little, alone in pairs:
                x, y = _exact(big), _exact(little)
                if x is None or y is None:
                    continue
                assert x - y == 0 or x - y >= k
                # The month's own table hides what the difference would show.
                assert _exact(alone) in (x - y, None) or alone == "0"
                if alone.startswith("<"):
                    raise AssertionError(f"a hidden month count follows: {big}-{little}")


def test_one_small_cell_takes_a_second_with_it_and_the_total_stays() -> None:
    data = ([_report("2026-01", "AE")] * 9 + [_report("2026-01", "LB")] * 8
            + [_report("2026-01", "EG")] * 2)
    tab = stats.tabulate(data, ["2026-01"], by="country", k=5, lang="en")
    assert [(r.key, r.shown) for r in tab.rows] == [("AE", "9"), ("EG", "<5"), ("LB", "x")]
    assert tab.total.shown == "19"
    # Rows are in code order, never by count: the order would rank the hidden ones.
    assert [r.key for r in tab.rows] == sorted(r.key for r in tab.rows)


def test_a_month_with_one_small_count_hides_the_range_count() -> None:
    data = [_report("2026-01", "AE")] * 6 + [_report("2026-02", "AE")] * 1 + \
        [_report("2026-02", "LB")] * 9
    jan = stats.tabulate(data, ["2026-01"], by="country", k=5, lang="en")
    both = stats.tabulate(data, ["2026-01", "2026-02"], by="country", k=5, lang="en")
    assert [r.shown for r in jan.rows] == ["6"]
    # 7 over the two months, but 7 - 6 would be February's single report.
    assert {r.key: r.shown for r in both.rows}["AE"] == "x"


def test_families_count_a_report_under_each_and_stay_protected() -> None:
    data = [_report("2026-01", "AE", families=("Pegasus", "Predator"))] * 2 + \
        [_report("2026-01", "AE", families=("Pegasus",))] * 6 + \
        [_report("2026-01", "AE")] * 7
    tab = stats.tabulate(data, ["2026-01"], by="family", k=5, lang="en")
    shown = {r.key: r.shown for r in tab.rows}
    assert shown["Predator"] == "<5"
    assert shown["Pegasus"] in ("8", "x")
    assert tab.total.shown == "15"


def test_labels_and_numerals_in_arabic() -> None:
    data = [_report("2026-03", "AE")] * 12
    tab = stats.tabulate(data, ["2026-03"], by="country", k=5, lang="ar")
    assert tab.by_label == "الدولة" or tab.by_label != "Country"
    assert tab.rows[0].label == "الإمارات العربية المتحدة"
    month = stats.tabulate(data, ["2026-03"], by="month", k=5, lang="ar")
    assert month.rows[0].label.startswith("مارس")


def test_k_below_three_and_a_backwards_range_are_refused() -> None:
    with pytest.raises(stats.StatsError, match="at least 3"):
        stats.table(None, "2026-01", "2026-02", k=2)  # type: ignore[arg-type]
    with pytest.raises(stats.StatsError, match="before"):
        stats.month_range("2026-05", "2026-01")
    with pytest.raises(stats.StatsError, match="YYYY-MM"):
        stats.month_range("May 2026", "2026-06")


# --- the command ----------------------------------------------------------------------

@pytest.fixture
def counted(run: Run, server: Server) -> None:
    docs = counted_reports()
    code, _, err = run("import", str(server.bundle([server.item(d) for d in docs])))
    assert code == 0, err


def test_stats_csv_table_and_json(run: Run, counted: None) -> None:
    code, out, err = run("stats", "--since", "2026-10-15", "--until", "2026-11",
                         "--by", "country", "--format", "csv")
    assert code == 0, err
    assert list(csv.reader(io.StringIO(out))) == [
        ["Country", "Reports"], ["United Arab Emirates", "15"], ["Egypt", "<5"],
        ["Lebanon", "x"], ["total", "30"], ["Left out (no consent)", "<5"]]
    code, out, _ = run("stats", "--since", "2026-10", "--until", "2026-11", "--by", "country",
                       "--json")
    doc: dict[str, Any] = json.loads(out)
    assert doc["rows"][0] == {"key": "AE", "label": "United Arab Emirates", "count": 15,
                              "shown": "15"}
    assert doc["rows"][1]["count"] is None  # a hidden count is not in the JSON either
    assert doc["total"] == {"count": 30, "shown": "30"}
    code, out, _ = run("stats", "--since", "2026-10", "--until", "2026-11", "--by", "month")
    assert code == 0
    assert "November 2026       19" in out
    assert "Left out (source did not consent to anonymised figures): <5" in out


def test_stats_errors(run: Run, counted: None) -> None:
    code, _, err = run("stats", "--since", "2026-12", "--until", "2026-01")
    assert code == 1
    assert err == "error: --until is before --since\n"
    with pytest.raises(SystemExit) as e:
        run("stats", "--since", "2026-01", "--k", "2")
    assert e.value.code == 2


def test_stats_in_the_shell(counted: None, vault_dir: Path, passfile: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "journalist_client.cli", "--vault", str(vault_dir),
         "--passphrase-file", str(passfile), "shell"],
        input="stats --since 2026-10 --until 2026-11 --by country --format csv\nexit\n",
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "United Arab Emirates,15\n" in proc.stdout


def test_the_advocacy_pack(run: Run, counted: None, tmp_path: Path) -> None:
    out_dir = tmp_path / "packs"
    out_dir.mkdir()
    code, out, err = run("stats", "--since", "2026-10", "--until", "2026-11", "--lang", "ar",
                         "--pack", str(out_dir))
    assert code == 0, err
    (folder,) = out_dir.iterdir()
    assert folder.name.startswith("amana-stats-20")
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(["README.txt", *(f"{d}.{x}" for d in stats.DIMENSIONS
                                            for x in ("csv", "svg", "png"))])
    readme = (folder / "README.txt").read_text()
    assert "k = 5" in readme
    assert "docs/stats.md" in readme
    assert "<script" not in (folder / "country.svg").read_text()
    assert (folder / "country.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "الإمارات" in (folder / "country.csv").read_text()


def test_arabic_chart_text_keeps_months_and_marks_left_to_right() -> None:
    # Without isolates, the bidi algorithm drew "من 2026-10 إلى 2026-11" with the
    # second month as "11-2026" (seen in a rendered PNG).
    from journalist_client import stats_charts

    data = [_report("2026-10", "AE") for _ in range(6)] + [_report("2026-11", "EG")]
    for lang, since, until in (("ar", "\u20662026-10\u2069", "\u20662026-11\u2069"),
                               ("en", "2026-10", "2026-11")):
        tab = stats.tabulate(data, ["2026-10", "2026-11"], by="country", k=5, lang=lang)
        title = stats_charts._title(tab)
        assert since in title, title
        assert until in title, title
    assert "\u2066" not in title  # English needs none


# --- the reader who asks every month-rounded question ---------------------------------

_WINDOW = MONTHS[:2]
_FEW = COUNTRIES[:3]
_NAMES = {"AE": "United Arab Emirates", "EG": "Egypt", "LB": "Lebanon"}


def _grid_reports(grid: tuple[int, ...]) -> list[Counted]:
    """Reports from counts per (month, country) over _WINDOW x _FEW."""
    cells = itertools.product(_WINDOW, _FEW)
    return [_report(m, c) for (m, c), n in zip(cells, grid, strict=True) for _ in range(n)]


def _agrees(counts: dict[str, int], published: tuple[dict[str, str], str, str],
            k: int) -> bool:
    """Whether a world's counts (label -> count) could have given this CSV, judged by
    what it says: a number is that number, "<k" is 1..k-1, "x" at least 1, a label
    missing from a table that lists rows is 0."""
    rows, total, _ = published

    def fits(value: int, shown: str) -> bool:
        if shown == f"<{k}":
            return 1 <= value < k
        if shown == "x":
            return value >= 1
        return value == int(shown)

    if not fits(sum(counts.values()), total):
        return False
    if rows:
        return all(fits(counts.get(label, 0), shown) for label, shown in rows.items()) \
            and all(n == 0 for label, n in counts.items() if label not in rows)
    return True


@settings(max_examples=30, deadline=None)
@given(st.lists(st.one_of(st.just(0), st.integers(1, 2), st.integers(3, 6)),
                min_size=6, max_size=6))
# Found by Hypothesis: 1 + 1 under a range's "<3" were two ones; a month with one
# small count and no complementary suppression gave it away across the ranges.
@example([1, 2, 0, 1, 0, 4])
@example([4, 0, 0, 0, 1, 4])
def test_no_hidden_month_count_follows_from_every_range_together(grid: list[int]) -> None:
    """k = 3, two months, three countries: every world of counts 0..7 that agrees with
    the CSVs of January, February and January-February (by country, and by month for
    the month totals). A count hidden in its month's table must still take two values
    or more across those worlds: the three tables together do not pin it."""
    k = 3
    data = _grid_reports(tuple(grid))

    def csvs(months: list[str]) -> tuple[Any, Any]:
        return tuple(_published(stats.tabulate(data, months, by=by, k=k, lang="en"))
                     for by in ("country", "month"))

    per_month = []
    for m in _WINDOW:
        by_country, by_month = csvs([m])
        per_month.append([w for w in itertools.product(range(8), repeat=len(_FEW))
                          if _agrees({_NAMES[c]: n for c, n in zip(_FEW, w, strict=True)},
                                     by_country, k)
                          and _agrees({"m": sum(w)}, (by_month[0] and {"m": next(
                              iter(by_month[0].values()))}, by_month[1], ""), k)])
    by_country, by_month = csvs(_WINDOW)
    month_rows = list(by_month[0].values())
    worlds = [a + b for a in per_month[0] for b in per_month[1]
              if _agrees({_NAMES[c]: a[i] + b[i] for i, c in enumerate(_FEW)}, by_country, k)
              and _agrees({"jan": sum(a), "feb": sum(b)},
                          ({"jan": month_rows[0], "feb": month_rows[1]} if month_rows
                           else {}, by_month[1], ""), k)]
    assert tuple(grid) in worlds
    for i, m in enumerate(_WINDOW):
        month = stats.tabulate(data, [m], by="country", k=k, lang="en")
        for r in month.rows:
            if r.value is None:
                cell = i * len(_FEW) + _FEW.index(r.key)
                assert len({w[cell] for w in worlds}) >= 2, (m, r.key, grid)


def test_family_names_from_indicator_files_stay_text() -> None:
    """A family name is whatever an imported STIX file says: never a spreadsheet
    formula in the CSV, never TeX or a bidi override in a chart."""
    from journalist_client import stats_charts

    hostile = ("=HYPERLINK(\"http://x\")", "$\\frac{1}{0}$\u202e")
    data = [_report("2026-01", "AE", families=(hostile[0],))] * 6 + \
        [_report("2026-01", "AE", families=(hostile[1],))] * 6
    tab = stats.tabulate(data, ["2026-01"], by="family", k=5, lang="en")
    rows = list(csv.reader(io.StringIO(stats.to_csv(tab))))
    assert rows[1:3] == [["$\\frac{1}{0}$\u202e", "6"], ["'" + hostile[0], "6"]]
    svg = stats_charts.chart(tab, "svg")
    png = stats_charts.chart(tab, "png")
    assert svg.startswith(b"<?xml")
    assert png.startswith(b"\x89PNG")
