"""report.html: one self-contained page (inline CSS and SVG, no scripts, no network)."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from typing import TYPE_CHECKING, Any

import pandas as pd

from adapter.report import plots
from adapter.report.htmltable import table_html
from adapter.report.model import ANALYTE, SCORE
from adapter.report.tables import DUE, NOT_DUE, PRESENT

if TYPE_CHECKING:
    from adapter.report import Report

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:75rem;color:#222;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.2rem;border-bottom:1px solid #ccc;padding-top:1rem}
table{border-collapse:collapse;font-size:.8rem;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.15rem .4rem;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.plots{display:flex;flex-wrap:wrap;gap:1rem}.plot{margin:0;flex:1 1 34rem}
.plot svg{max-width:100%;height:auto}.wide{overflow-x:auto}
.note{color:#555;font-size:.9rem}
"""


def render_html(report: Report) -> str:
    """The whole page for a report."""
    study = report.study
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(study.identifier)}: trial report</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{escape(study.identifier)}: laboratory results, scores and survival</h1>",
        _intro(report),
        *_subjects(report),
        *_survival(report),
        *_trajectories(report),
        *_completeness(report),
        *_safety(report),
        "<h2 id='summary'>Summary by arm and visit</h2>",
        _note(report.summary_note),
        _table(report.tables.summary, "summary"),
        "<h2 id='visits'>Values by subject and visit</h2>",
        "<details><summary>The chosen value per subject, visit and measure "
        f"({len(report.tables.visits)} rows)</summary>",
        _table(report.tables.visits, "visits"),
        "</details>",
        *_excluded(report),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _intro(report: Report) -> str:
    study = report.study
    subjects = report.tables.subjects
    return _note(
        f"{escape(study.title)}. {len(subjects)} subjects; "
        f"{len(report.data.measurements)} results read; "
        f"value per visit window by the rule <b>{escape(report.rule)}</b>; "
        f"due dates as of <b>{report.as_of.isoformat()}</b>; study days counted from day 0 "
        f"(first infusion) in UTC{_offset(study)}."
    )


def _subjects(report: Report) -> Iterable[str]:
    yield "<h2 id='subjects'>Subjects</h2>"
    yield _table(report.tables.subjects, "subjects")


def _survival(report: Report) -> Iterable[str]:
    yield "<h2 id='survival'>Survival</h2>"
    yield _plot(plots.km_svg(report.survival, report.study, report.horizon), "km")
    yield _note(
        f"Kaplan-Meier estimate at {report.horizon} days with its 95% confidence interval "
        "(exponential Greenwood). Blank when no subject of the arm was followed that long."
    )
    yield _table(report.survival_table, "survival")


def _trajectories(report: Report) -> Iterable[str]:
    cells = report.tables.cells
    for kind, title in ((ANALYTE, "Laboratory values by visit"), (SCORE, "Scores by visit")):
        measures = [m for m in report.measures if m.kind == kind]
        if not measures:
            continue
        yield f"<h2 id='{kind}s'>{title}</h2>"
        yield _note("Each subject a faint line; each arm's median a bold line.")
        yield "<div class='plots'>"
        for measure in measures:
            yield _plot(plots.trajectory_svg(cells, measure, report.study), measure.key)
        yield "</div>"


def _completeness(report: Report) -> Iterable[str]:
    table = report.tables.completeness
    yield "<h2 id='completeness'>Completeness</h2>"
    yield _plot(plots.heatmap_svg(report.tables.cells, report.study), "heatmap")
    counts = table.groupby("state", sort=True).size().reset_index(name="results")
    yield _table(counts, "states")
    gaps = table[~table["state"].isin([PRESENT, NOT_DUE, DUE])]
    yield _note(f"{len(gaps)} subject/visit/analyte gaps (missing, overdue, out of window…):")
    yield _table(gaps, "gaps")


def _safety(report: Report) -> Iterable[str]:
    safety = report.safety
    yield f"<h2 id='safety'>Safety: {escape(safety.version)} grades</h2>"
    yield _note(
        "Per subject and test: the baseline (the last result on or before day 0, graded "
        "against its own reference range) and the worst grade after it. ALT, AST, alkaline "
        "phosphatase and bilirubin are graded in multiples of the baseline when the baseline "
        "was above ULN, creatinine by the higher of its ULN and baseline grades, as CTCAE "
        "v5.0 says. INR (the grade depends on anticoagulation, not recorded), sodium of "
        "125-129 mmol/L (depends on symptoms) and censored values get no grade; "
        "<i>none</i> counts them, and safety.csv gives the reasons."
    )
    shift = safety.shift[safety.shift["subjects"] > 0]
    yield _note("Shift table: subjects by baseline grade (rows) and worst post-baseline grade:")
    yield _table(shift, "safety-shift")
    yield (
        "<details><summary>Baseline and worst grade per subject and test "
        f"({len(safety.subjects)} rows)</summary>"
    )
    yield _table(safety.subjects, "safety")
    yield "</details>"


def _excluded(report: Report) -> Iterable[str]:
    yield "<h2 id='excluded'>Observations not used</h2>"
    if report.excluded.empty:
        yield _note("None.")
    else:
        yield _table(report.excluded, "excluded")


def _table(frame: pd.DataFrame, name: str) -> str:
    # What DataFrame.to_html writes, in a fraction of its time (adapter/report/htmltable.py).
    html = table_html(frame, name, float_format=lambda x: f"{x:.6g}")
    return f"<div class='wide'>{html}</div>"


def _plot(svg: str, name: str) -> str:
    return f"<figure class='plot' id='plot-{escape(name)}'>{svg}</figure>"


def _note(text: str) -> str:
    return f"<p class='note'>{text}</p>"


def _offset(study: Any) -> str:
    offset = study.timezone.utcoffset(None)
    hours, rest = divmod(int(offset.total_seconds()), 3600)
    return f"{hours:+03d}:{abs(rest) // 60:02d}"
