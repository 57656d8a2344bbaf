"""Scenario 4: a steady 50 messages/s over MLLP into ``trialbridge run``'s service with the
default schedule; from each ACK to its Observation being readable on the FHIR server.
Baseline: the same transaction posted directly and read back (the server's own floor)."""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import requests

from adapter.bench.env import Env, environment
from adapter.bench.results import Row
from adapter.bench.scenarios.common import Context, bench_messages, prepared_bodies, send
from adapter.build import search_token
from adapter.fhir_client import FhirClient
from adapter.intake import Intake
from adapter.service.scheduler import Service, SourceSpec
from adapter.service.stages import Stages
from adapter.sources.config import MllpConfig
from adapter.sources.mllp import MllpSource
from adapter.store.service import ServiceStore

RATE = 50.0
_CHUNK = 40
_HEADERS = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def run(ctx: Context) -> list[Row]:
    count = int(RATE * ctx.sizes.latency_seconds)
    with environment(ctx.work / "latency") as env:
        floor = _baseline(ctx, env)
        ctx.fhir.reset()
        seen, acks = _service_run(ctx, env, count)
    ctx.fhir.reset()
    lags = sorted(seen[i] - acks[f"BM{i:010d}"] for i in seen if f"BM{i:010d}" in acks)
    p50, p95 = _percentile(lags, 50), _percentile(lags, 95)
    figure = f"{count:,} msgs at {RATE:.0f}/s"
    notes = {"readable": len(lags), "sent": count}
    return [
        Row.make(
            "4 latency", f"p50, {figure}", p50, _percentile(floor, 50), "s", "", None, **notes
        ),
        Row.make(
            "4 latency",
            f"p95, {figure}",
            p95,
            _percentile(floor, 95),
            "s",
            "p95 < 5 s",
            p95 < 5.0 and len(lags) == count,
            **notes,
        ),
    ]


def _percentile(values: list[float], p: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def _token(i: int) -> str:
    return search_token("urn:trialbridge:lis-result", f"B{i:09d}^NTC-LIS/ALT^L/1")


def _baseline(ctx: Context, env: Env) -> list[float]:
    """Post a prepared transaction, then search until its first Observation is there."""
    bodies = prepared_bodies(env, bench_messages(50))
    lags = []
    with requests.Session() as session:
        for i, body in enumerate(bodies):
            started = time.perf_counter()
            session.post(ctx.fhir.base_url, data=body, headers=_HEADERS, timeout=60)
            while not _found(session, ctx.fhir.base_url, [i]):
                time.sleep(0.01)
            lags.append(time.perf_counter() - started)
    return lags


def _found(session: requests.Session, base: str, numbers: list[int]) -> set[int]:
    query = ",".join(_token(i) for i in numbers)
    url = f"{base}/Observation?identifier={query}&_count=1000&_elements=identifier"
    bundle = session.get(url, headers=_HEADERS, timeout=60).json()
    values = {e["resource"]["identifier"][0]["value"] for e in bundle.get("entry", [])}
    return {i for i in numbers if f"B{i:09d}^NTC-LIS/ALT^L/1" in values}


def _service_run(ctx: Context, env: Env, count: int) -> tuple[dict[int, float], dict[str, float]]:
    stop = threading.Event()
    with FhirClient(ctx.fhir.base_url, retries=0) as client:
        stages = Stages(
            ServiceStore(env.store), client, env.settings, env.mappings, env.registry, env.service
        )
        source = MllpSource(MllpConfig(enabled=True, port=0))
        service = Service(
            stages,
            Intake(env.store, env.registry),
            env.service,
            sources=[SourceSpec("mllp", source)],
            stop=stop,
        )
        runner = threading.Thread(target=service.run, daemon=True)
        runner.start()
        try:
            port = source.wait_ready(30)
            poller = _Poller(ctx.fhir.base_url, count)
            poller.start()
            acks_file = ctx.work / "acks.txt"
            send(port, 1, count, rate=RATE, acks=acks_file, enrolled=1.0)
            poller.join(ctx.sizes.latency_seconds + 60)
            poller.stop.set()
        finally:
            stop.set()
            runner.join(60)
    return poller.seen, _read_acks(acks_file)


def _read_acks(path: Path) -> dict[str, float]:
    pairs = (line.split() for line in path.read_text(encoding="utf-8").splitlines())
    return {control: float(at) for control, at in pairs}


class _Poller(threading.Thread):
    """Records when each message's first Observation becomes readable (wall clock)."""

    def __init__(self, base: str, count: int) -> None:
        super().__init__(daemon=True)
        self.base, self.count = base, count
        self.seen: dict[int, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        started = time.time()
        with requests.Session() as session:
            while len(self.seen) < self.count and not self.stop.is_set():
                sent = min(self.count, int((time.time() - started) * RATE) + int(RATE))
                waiting = [i for i in range(sent) if i not in self.seen]
                for start in range(0, len(waiting), _CHUNK):
                    for i in _found(session, self.base, waiting[start : start + _CHUNK]):
                        self.seen[i] = time.time()
                self.stop.wait(0.1)
