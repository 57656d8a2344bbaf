"""Scenario 5: a backlog of hospital-feed messages (1% enrolled) through the whole path —
enrolment gate and inbox, processing, push to the FHIR server — in a child process whose RSS
is sampled every 50 ms. Two sizes; the baseline is the child's RSS before the backlog."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

from adapter.bench.results import Row
from adapter.bench.scenarios.common import Context

LIMIT_MB = 300.0


def run(ctx: Context) -> list[Row]:
    rows = []
    peaks = []
    for size in ctx.sizes.backlog:
        ctx.fhir.reset()
        figures = _child(ctx, size)
        peaks.append(figures["peak_mb"])
        rows.append(
            Row.make(
                "5 memory",
                f"peak RSS, {size:,} backlog",
                figures["peak_mb"],
                figures["floor_mb"],
                "MB",
                "< 300 MB, flat",
                figures["peak_mb"] < LIMIT_MB,
                seconds=round(figures["seconds"], 1),
                pushed=figures["pushed"],
            )
        )
    ctx.fhir.reset()
    flat = peaks[1] <= peaks[0] * 1.15
    last = rows[-1]
    return [
        *rows[:-1],
        replace(last, met=bool(last.met) and flat, notes={**last.notes, "flat": flat}),
    ]


def _child(ctx: Context, size: int) -> dict[str, float]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "adapter.bench.backlog",
            ctx.fhir.base_url,
            str(ctx.work),
            str(size),
        ],
        capture_output=True,
        text=True,
        timeout=3600,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
