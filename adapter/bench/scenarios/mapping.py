"""Scenarios 2 and 3: enrolled messages of 10 results from the inbox to the outbox (against
python-hl7 parsing them), and all the way into the local FHIR server (against the same
transactions, prepared in advance, posted by a plain loop)."""

from __future__ import annotations

import hl7
import requests

from adapter.bench.env import Env, Stopwatch, environment
from adapter.bench.results import Row
from adapter.bench.scenarios.common import Context, bench_messages, fill_inbox, prepared_bodies
from adapter.fhir_client import FhirClient
from adapter.pipeline import push_messages
from adapter.service.stages import Stages
from adapter.service.summary import PushSummary
from adapter.store import incoming
from adapter.store.service import ServiceStore


def run_mapping(ctx: Context) -> list[Row]:
    raws = bench_messages(ctx.sizes.enrolled)
    clock = Stopwatch()
    for raw in raws:
        hl7.parse(raw.decode("utf-8"))
    baseline = len(raws) / clock.seconds()
    with environment(ctx.work / "mapping") as env:
        fill_inbox(env, raws)
        clock = Stopwatch()
        processed = _process_all(env)
        rate = len(raws) / clock.seconds()
    return [
        Row.make(
            "2 mapping",
            f"{len(raws):,} msgs inbox->outbox",
            rate,
            baseline,
            "msg/s",
            ">= 0.5x parse",
            rate >= 0.5 * baseline and processed == len(raws),
        )
    ]


def _process_all(env: Env) -> int:
    with FhirClient("http://127.0.0.1:9/unused", retries=0) as client:
        stages = Stages(
            ServiceStore(env.store), client, env.settings, env.mappings, env.registry, env.service
        )
        summary = PushSummary()
        total = 0
        while claimed := stages.process_inbox(env.service.job("process").batch_size, summary):
            total += claimed
        return total


def run_push(ctx: Context) -> list[Row]:
    raws = bench_messages(ctx.sizes.enrolled)
    with environment(ctx.work / "push") as env:
        bodies = prepared_bodies(env, raws)
        ctx.fhir.reset()
        baseline = _post_all(ctx.fhir.base_url, bodies)
        ctx.fhir.reset()
        clock = Stopwatch()
        with FhirClient(ctx.fhir.base_url, retries=0) as client:
            messages = [m for raw in raws for m in incoming(raw, "bench")]
            summary = push_messages(
                messages, client, env.settings, env.mappings, env.store, registry=env.registry
            )
        seconds = clock.seconds()
    return [
        Row.make(
            "3 end to end",
            f"{len(raws):,} msgs into FHIR",
            seconds,
            baseline,
            "s",
            "<= 1.5x plain loop",
            seconds <= 1.5 * baseline and summary.pushed == len(raws),
            pushed=summary.pushed,
            observations=summary.observations,
        )
    ]


def _post_all(base_url: str, bodies: list[bytes]) -> float:
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
    with requests.Session() as session:
        clock = Stopwatch()
        for body in bodies:
            response = session.post(base_url, data=body, headers=headers, timeout=60)
            response.raise_for_status()
        return clock.seconds()
