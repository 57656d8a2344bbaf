"""Scenario 6: scenario 3's messages with the PostgreSQL store, drained by one and then by two
worker processes (each processes and pushes, coordinating through row claims). Figure: the
messages/s of two workers; baseline: one worker."""

from __future__ import annotations

import json
import subprocess
import sys

from adapter.bench.env import environment
from adapter.bench.results import Row
from adapter.bench.scenarios.common import Context, bench_messages, fill_inbox


def run(ctx: Context) -> list[Row]:
    raws = bench_messages(ctx.sizes.scale)
    rates = {}
    for workers in (1, 2):
        with environment(ctx.work / "scale", postgres=True) as env:
            fill_inbox(env, raws)
            ctx.fhir.reset()
            seconds, pushed = _drain(env.settings.store_url, ctx.fhir.base_url, workers)
        rates[workers] = (len(raws) / seconds, pushed)
    ctx.fhir.reset()
    (two, pushed), (one, _) = rates[2], rates[1]
    return [
        Row.make(
            "6 scale-out",
            f"{len(raws):,} msgs, PostgreSQL, 2 workers vs 1",
            two,
            one,
            "msg/s",
            "report (2 cores)",
            None,
            pushed=pushed,
        )
    ]


def _drain(store_url: str, fhir_url: str, workers: int) -> tuple[float, int]:
    command = [sys.executable, "-m", "adapter.bench.worker", store_url, fhir_url]
    children = [
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(workers)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            child.stdout.readline()  # ready
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        outputs = [child.communicate(timeout=3600)[0] for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    figures = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    return max(f["seconds"] for f in figures), sum(f["pushed"] for f in figures)
