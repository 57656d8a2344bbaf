"""One row per scenario figure: the figure, its baseline measured in the same run, the ratio,
the target and whether it is met; printed as a table and written as JSON."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Row:
    """A figure against its baseline. ``ratio`` is figure/baseline; ``target`` says which
    way is good, and ``met`` is None where the issue sets no target (just report)."""

    scenario: str
    figure: str
    value: float
    baseline: float
    unit: str
    target: str
    met: bool | None
    ratio: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def make(
        scenario: str,
        figure: str,
        value: float,
        baseline: float,
        unit: str,
        target: str,
        met: bool | None,
        **notes: Any,
    ) -> Row:
        ratio = value / baseline if baseline else None
        return Row(scenario, figure, value, baseline, unit, target, met, ratio, notes)


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table (what the README shows)."""
    lines = [
        "| scenario | figure | TrialBridge | baseline | ratio | target | met? |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}"
        met = {True: "yes", False: "**no**", None: "n/a"}[r.met]
        lines.append(
            f"| {r.scenario} | {r.figure} | {_fmt(r.value)} {r.unit} | {_fmt(r.baseline)} "
            f"{r.unit} | {ratio} | {r.target} | {met} |"
        )
    return "\n".join(lines)


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


def write_json(rows: list[Row], path: Path, *, quick: bool, elapsed: float) -> None:
    doc = {
        "machine": machine(),
        "quick": quick,
        "elapsed_seconds": round(elapsed, 1),
        "rows": [asdict(r) for r in rows],
    }
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
