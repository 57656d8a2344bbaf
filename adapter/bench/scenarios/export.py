"""Scenario 8: ``trialbridge export sdtm`` (Dataset-JSON and XPT of every domain) on scenario
7's simulated study of 2,000 subjects, against a plain paging loop over the same Observation
searches (the study's analyte codes: the export reads no scores)."""

from __future__ import annotations

from adapter.bench.env import Stopwatch, environment
from adapter.bench.results import Row
from adapter.bench.scenarios.common import Context

# Scenario 7's loader and baseline loop, so both scenarios measure the same data.
from adapter.bench.scenarios.report import _load, _plain_loop
from adapter.export import analyte_catalogue, run_export
from adapter.export.settings import load_sdtm_settings
from adapter.fhir_client import FhirClient


def run(ctx: Context) -> list[Row]:
    sizes = ctx.sizes
    with environment(ctx.work / "export", subjects=sizes.report_subjects) as env:
        ctx.fhir.reset()
        patients = _load(ctx, env, sizes.report_visits)
        study = env.registry.study
        cat = analyte_catalogue(study, env.mappings)
        clock = Stopwatch()
        with FhirClient(ctx.fhir.base_url, retries=0) as client:
            summary = run_export(
                client, study, env.mappings, ctx.work / "export-out",
                settings=load_sdtm_settings(),
            )  # fmt: skip
        seconds = clock.seconds()
        read = summary.lb_rows + sum(summary.omitted.values())
        clock = Stopwatch()
        plain = _plain_loop(ctx.fhir.base_url, patients, cat.code_tokens())
        plain_seconds = clock.seconds()
    ctx.fhir.reset()
    figure = f"{summary.subjects:,} subjects, {summary.lb_rows:,} LB rows, 9 domains x 2 formats"
    return [
        Row.make("8 export sdtm", f"time, {figure}", seconds, plain_seconds, "s", "", None),
        Row.make(
            "8 export sdtm",
            "Observations read/s",
            read / seconds,
            plain / plain_seconds,
            "obs/s",
            "report",
            None,
        ),
    ]
