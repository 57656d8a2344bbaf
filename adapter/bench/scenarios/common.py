"""What the scenarios share: sizes, the run context, the listener thread, the sender process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import simplejson

from adapter.bench.env import Env
from adapter.bench.feed import enrolled_messages
from adapter.dev_fhir import DevFhirServer
from adapter.intake import Intake
from adapter.sources.config import MllpConfig
from adapter.sources.mllp import MllpSource
from adapter.store import incoming
from adapter.translate import translate
from adapter.trial.gate import Gate


@dataclass(frozen=True, slots=True)
class Sizes:
    """How big each scenario is (``--quick`` shrinks every one)."""

    feed: int  # 1: hospital feed over MLLP
    connections: int  # 1: the "several connections"
    enrolled: int  # 2, 3: enrolled messages of 10 results
    latency_seconds: float  # 4
    backlog: tuple[int, int]  # 5: two backlog sizes
    scale: int  # 6: messages per scale-out run
    report_subjects: int  # 7
    report_visits: int  # 7: visits (10 results each) per subject
    recovery: tuple[int, float, float]  # 9: messages, rate (msg/s), outage seconds
    durable: int  # 10: enrolled messages over MLLP, each committed before its ACK


FULL = Sizes(
    100_000, 4, 20_000, 60.0, (50_000, 200_000), 5_000, 2_000, 3, (2_000, 40.0, 30.0), 6_000
)
QUICK = Sizes(2_000, 4, 300, 6.0, (4_000, 16_000), 200, 60, 3, (320, 40.0, 4.0), 300)


@dataclass
class Context:
    """A run's sizes, its temporary folder, and the local FHIR server (started on first use,
    stopped by :meth:`close`)."""

    sizes: Sizes
    work: Path
    _fhir: DevFhirServer | None = None

    @property
    def fhir(self) -> DevFhirServer:
        if self._fhir is None:
            self._fhir = DevFhirServer(port=0).start()
        return self._fhir

    def close(self) -> None:
        if self._fhir is not None:
            self._fhir.stop()


class Listener:
    """TrialBridge's MLLP listener on a free loopback port, in a thread of its own (as
    ``trialbridge run`` runs it)."""

    def __init__(self, intake: Intake) -> None:
        self.source = MllpSource(MllpConfig(enabled=True, port=0))
        self.intake = intake
        self._stop: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        stop = asyncio.Event()
        self._stop = (asyncio.get_running_loop(), stop)
        await self.source.serve(self.intake, stop)

    def __enter__(self) -> int:
        self._thread.start()
        return self.source.wait_ready()

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            loop, stop = self._stop
            loop.call_soon_threadsafe(stop.set)
        self._thread.join(30)


def send(
    port: int,
    connections: int,
    count: int,
    *,
    rate: float = 0,
    acks: Path | None = None,
    enrolled: float = 0.01,
    first: int = 0,
    timeout: float = 900,
) -> dict[str, Any]:
    """Run the sender process (:mod:`adapter.bench.mllp_peer`) to the end; its summary."""
    argv = [str(port), str(connections), str(count), str(rate)] + ([str(acks)] if acks else [])
    env = {
        **os.environ,
        "TRIALBRIDGE_BENCH_ENROLLED": str(enrolled),
        "TRIALBRIDGE_BENCH_FIRST": str(first),
    }
    done = subprocess.run(
        [sys.executable, "-m", "adapter.bench.mllp_peer", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def fill_inbox(env: Env, raws: list[bytes], batch: int = 500) -> None:
    """Put messages into the inbox through the enrolment gate (not timed)."""
    intake = Intake(env.store, env.registry)
    for start in range(0, len(raws), batch):
        intake.accept([m for raw in raws[start : start + batch] for m in incoming(raw, "bench")])


def prepared_bodies(env: Env, raws: list[bytes]) -> list[bytes]:
    """Each message's transaction as TrialBridge builds it, serialised in advance."""
    gate = Gate(env.registry.study, env.registry.index())
    bodies = []
    for raw in raws:
        for item in translate(raw, "bench", env.settings, env.mappings, gate=gate):
            assert item.bundle is not None, item.error
            bodies.append(simplejson.dumps(item.bundle, use_decimal=True).encode())
    return bodies


def bench_messages(count: int) -> list[bytes]:
    return enrolled_messages(count)
