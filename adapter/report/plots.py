"""The report's figures as inline SVG text: deterministic, self-contained (no network).

matplotlib's SVG backend through :class:`~matplotlib.figure.Figure` (no pyplot, no display,
no global state). The same data gives byte-identical SVG: ids are salted with a fixed string,
the metadata date is dropped, and text stays text (``svg.fonttype: none``).
"""

from __future__ import annotations

import io
import math
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

import matplotlib
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.markers import TICKLEFT
from matplotlib.patches import Patch
from matplotlib.transforms import ScaledTranslation, blended_transform_factory

from adapter.report.model import ANALYTE, Measure
from adapter.report.survival import ArmSurvival
from adapter.report.tables import (
    DUE,
    MISSING,
    NO_DAY_0,
    NOT_DUE,
    NOT_EXPECTED,
    OUT_OF_WINDOW,
    OVERDUE,
    PRESENT,
    Cell,
)
from adapter.trial.study import Study

# Typed loosely: matplotlib types rcParams keys as a Literal of every known key.
_RC: dict[Any, Any] = {
    "svg.hashsalt": "trialbridge-report",
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_RC_TICK_SIZE, _RC_TICK_PAD = 3.5, 3.5  # matplotlib's default y tick length and pad, in pt
ARM_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
# Heat map: the state of a subject x visit over the study's analytes, worst first.
HEAT_STATES = (
    ("complete", "#2e7d32"),
    ("partial", "#9ccc65"),
    (OUT_OF_WINDOW, "#ffb300"),
    (MISSING, "#ef6c00"),
    (OVERDUE, "#c62828"),
    (DUE, "#90caf9"),
    (NOT_DUE, "#eeeeee"),
    (NOT_EXPECTED, "#bdbdbd"),
    (NO_DAY_0, "#616161"),
)


def to_svg(fig: Figure) -> str:
    """The figure as SVG text, byte-identical for the same figure."""
    with matplotlib.rc_context(_RC):
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _figure(width: float, height: float) -> Figure:
    with matplotlib.rc_context(_RC):
        return Figure(figsize=(width, height), dpi=100)


def trajectory_svg(cells: Sequence[Cell], measure: Measure, study: Study) -> str:
    """One measure by visit: each subject a faint line, each arm's median a bold line."""
    with matplotlib.rc_context(_RC):
        fig = _figure(6.4, 3.4)
        ax = fig.add_subplot()
        visits = [v.code for v in study.visits]
        plotted = False
        for colour, arm in zip(ARM_COLOURS, study.arms, strict=False):
            series = _series(cells, measure, arm.code, visits)
            # All the arm's subjects in one line, broken between subjects (NaN): one SVG
            # path per arm, not one element per subject (drawing time grows with the data).
            lines_x, lines_y = _joined(series.values())
            if lines_x:
                ax.plot(lines_x, lines_y, color=colour, alpha=0.25, lw=0.8, marker=".")
                plotted = True
            xs, ys = _present(
                [_median([p[i] for p in series.values()]) for i in range(len(visits))]
            )
            if xs:
                ax.plot(xs, ys, color=colour, lw=2.6, label=f"{arm.name} median")
        ax.set_xticks(range(len(visits)), visits)
        ax.set_xlim(-0.3, len(visits) - 0.7)
        ax.set_ylabel(f"{measure.display} ({measure.unit})")
        ax.set_title(measure.display, loc="left", fontsize=10)
        if plotted:
            ax.legend(frameon=False, fontsize=8)
        else:
            ax.text(0.5, 0.5, "no values on the server", ha="center", transform=ax.transAxes)
            ax.set_yticks([])
        return to_svg(fig)


def _series(
    cells: Sequence[Cell], measure: Measure, arm: str, visits: list[str]
) -> dict[str, list[float | None]]:
    series: dict[str, list[float | None]] = {}
    for cell in cells:
        if cell.measure.key != measure.key or cell.subject.arm != arm:
            continue
        points = series.setdefault(cell.subject.subject, [None] * len(visits))
        if cell.chosen is not None:
            points[visits.index(cell.visit.code)] = float(cell.chosen.value)
    return dict(sorted(series.items()))


def _joined(lines: Iterable[Sequence[float | None]]) -> tuple[list[float], list[float]]:
    """Lines (each :func:`_present`) joined into one, with a NaN point between them."""
    xs: list[float] = []
    ys: list[float] = []
    for points in lines:
        x, y = _present(points)
        if x:
            if xs:
                xs.append(math.nan)
                ys.append(math.nan)
            xs.extend(x)
            ys.extend(y)
    return xs, ys


def _present(points: Sequence[float | None]) -> tuple[list[int], list[float]]:
    """The visits (x) and values (y) of a line, skipping visits without a value."""
    pairs = [(i, v) for i, v in enumerate(points) if v is not None]
    return [i for i, _ in pairs], [v for _, v in pairs]


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def km_svg(results: Sequence[ArmSurvival], study: Study, horizon: int) -> str:
    """Kaplan-Meier survival by arm, with 95% bands, censoring ticks and the horizon marked."""
    with matplotlib.rc_context(_RC):
        fig = _figure(6.4, 3.6)
        ax = fig.add_subplot()
        names = {a.code: a.name for a in study.arms}
        for colour, result in zip(ARM_COLOURS, results, strict=False):
            curve = result.curve
            if curve is None:
                continue
            label = f"{names.get(result.arm, result.arm)} (n={result.n}, deaths={result.events})"
            if result.estimate is not None:
                label += f": {result.estimate:.2f} at {horizon} d"
            ax.step(curve.times, curve.survival, where="post", color=colour, lw=2, label=label)
            ax.fill_between(
                curve.times, curve.lower, curve.upper, step="post", color=colour, alpha=0.15
            )
            ticks = [_at(curve.times, curve.survival, t) for t in curve.censored_times]
            ax.plot(curve.censored_times, ticks, "|", color=colour, ms=8)
        ax.axvline(horizon, color="#555555", ls="--", lw=0.8)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("days since day 0 (first infusion)")
        ax.set_ylabel("survival probability")
        ax.set_title("Kaplan-Meier survival by arm", loc="left", fontsize=10)
        ax.legend(frameon=False, fontsize=8, loc="lower left")
        return to_svg(fig)


def _at(times: Sequence[float], values: Sequence[float], t: float) -> float:
    return next(v for tt, v in zip(reversed(times), reversed(values), strict=True) if tt <= t)


def heat_state(cells: Sequence[Cell]) -> str:
    """One subject x visit over its analytes: complete, partial, or the worst other state."""
    states = [c.state for c in cells if c.measure.kind == ANALYTE]
    if states and all(s == PRESENT for s in states):
        return "complete"
    if PRESENT in states:
        return "partial"
    order = [name for name, _ in HEAT_STATES]
    return min(states, key=order.index) if states else NOT_DUE


def heatmap_svg(cells: Sequence[Cell], study: Study) -> str:
    """Subjects (rows) by visits (columns), coloured by :func:`heat_state`."""
    subjects = sorted({c.subject.subject for c in cells})
    visits = [v.code for v in study.visits]
    groups: dict[tuple[str, str], list[Cell]] = {}
    for cell in cells:
        groups.setdefault((cell.subject.subject, cell.visit.code), []).append(cell)
    order = [name for name, _ in HEAT_STATES]
    matrix = [[order.index(heat_state(groups.get((s, v), []))) for v in visits] for s in subjects]
    with matplotlib.rc_context(_RC):
        fig = _figure(6.4, max(2.0, 0.22 * len(subjects) + 1.2))
        ax = fig.add_subplot()
        cmap = ListedColormap([colour for _, colour in HEAT_STATES])
        if subjects:
            # interpolation "none": the SVG holds the subjects x visits image itself, shown
            # pixelated (sharp cells, as before), not resampled to the figure's size.
            ax.imshow(
                matrix,
                cmap=cmap,
                vmin=-0.5,
                vmax=len(order) - 0.5,
                aspect="auto",
                interpolation="none",
            )
        ax.set_xticks(range(len(visits)), visits)
        _row_labels(fig, ax, subjects)
        ax.set_title("Data completeness (liver panel and chemistry)", loc="left", fontsize=10)
        handles = [Patch(color=colour, label=name) for name, colour in HEAT_STATES]
        ax.legend(handles=handles, bbox_to_anchor=(1.02, 1), loc="upper left", frameon=False)
        return to_svg(fig)


def _row_labels(fig: Figure, ax: Any, labels: Sequence[str]) -> None:
    """The heat map's subject labels, drawn as y ticks look (a 3.5 pt mark, the label 3.5 pt
    left of it, fontsize 7) without matplotlib's Tick objects: a tick costs milliseconds to
    make and lay out, and 2,000 subjects took most of the report's time (issue 16)."""
    ax.set_yticks([])
    if not labels:
        return
    rows = blended_transform_factory(ax.transAxes, ax.transData)
    pad = (_RC_TICK_SIZE + _RC_TICK_PAD) / 72
    ax.plot(
        [0.0] * len(labels),
        range(len(labels)),
        ls="none",
        marker=TICKLEFT,
        ms=_RC_TICK_SIZE,
        mew=0.8,
        color="black",
        transform=rows,
        clip_on=False,
    )
    shift = rows + ScaledTranslation(-pad, 0, fig.dpi_scale_trans)
    for row, label in enumerate(labels):
        ax.text(0, row, label, fontsize=7, ha="right", va="center_baseline", transform=shift)
