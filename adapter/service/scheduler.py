"""The running service: APScheduler jobs under the scheduler lease, the sources, the HTTP
endpoint, and a clean stop.

One scheduler per store: the instance holding the ``scheduler`` lease (table ``leases``) runs
the jobs and renews the lease every third of its life; another instance started on the same
store waits as a standby (its jobs paused) and takes over when the lease expires. Even so,
the jobs share their rows through row leases (:mod:`adapter.store.service`), so no row is
worked on twice.

Jobs: ``source:NAME`` (poll each pollable source), ``process`` (inbox -> outbox), ``push``
(outbox -> FHIR server), ``scores`` (the recompute hook, when one is given) and ``purge``
(raw bytes past retention). A job drains its queue batch by batch, stopping between batches
when the service stops; it never raises: its error is recorded (``trialbridge status``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any, Protocol, runtime_checkable

import requests
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from adapter.errors import TrialBridgeError
from adapter.fhir_client import FhirClient
from adapter.intake import Intake
from adapter.logs import get_logger
from adapter.service import metrics
from adapter.service.config import ServiceConfig
from adapter.service.stages import Stages

LEASE = "scheduler"
log = get_logger(__name__)

# The scores job: recompute the scores of the subjects whose results were pushed since the
# last run; returns how many score Observations it wrote.
Recompute = Callable[[Sequence[str]], int]


@runtime_checkable
class Pollable(Protocol):
    """A source read on schedule (file drop, LIS query pull)."""

    def poll(self, intake: Intake) -> int: ...


@runtime_checkable
class Servable(Protocol):
    """A source that listens (MLLP): it commits through ``intake`` until ``stop`` is set."""

    async def serve(self, intake: Intake, stop: asyncio.Event) -> None: ...


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """A source the service runs: polled every ``interval_seconds`` (None: the
    ``service.jobs.sources`` interval) when it is :class:`Pollable`, served in a thread of its
    own when it is :class:`Servable`."""

    name: str
    source: object
    interval_seconds: float | None = None


@dataclass
class Service:
    """Everything ``trialbridge run`` runs, for one store."""

    stages: Stages
    intake: Intake
    config: ServiceConfig
    sources: Sequence[SourceSpec] = ()
    recompute: Recompute | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    active: bool = False

    def __post_init__(self) -> None:
        # A run skipped because the previous one still drains its queue is expected.
        logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
        self.stages.stopping = self.stop.is_set
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=5)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._listeners: list[threading.Thread] = []
        self._loop_stop: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    @property
    def holder(self) -> str:
        return self.stages.holder

    # Running -----------------------------------------------------------------------------

    def run(self) -> None:
        """Run until :attr:`stop` is set; then finish the current batches and return."""
        self._add_jobs()
        self._scheduler.start(paused=True)
        self._start_listeners()
        log.info("service.started", worker=self.holder, sources=len(self.sources))
        try:
            self._keep_lease()
        finally:
            self._shutdown()

    def _keep_lease(self) -> None:
        ttl = timedelta(seconds=self.config.lease_seconds)
        while not self.stop.is_set():
            self._set_active(self._try_lease(ttl))
            self.stop.wait(self.config.lease_seconds / 3)

    def _try_lease(self, ttl: timedelta) -> bool:
        try:
            return self.stages.store.acquire_lease(LEASE, self.holder, ttl)
        except TrialBridgeError as exc:
            log.warning("lease.error", error=type(exc).__name__)
            return False

    def _set_active(self, held: bool) -> None:
        if held == self.active:
            return
        self.active = held
        metrics.ACTIVE.set(1 if held else 0)
        if held:
            self._resume_scores()
            self._scheduler.resume()
            log.info("lease.taken", worker=self.holder)
        else:
            self._scheduler.pause()
            log.warning("lease.lost", worker=self.holder)

    def _resume_scores(self) -> None:
        """The subjects pushed since the scores job last succeeded (by any instance, before
        any crash) are recomputed: the list of touched subjects is not lost with a process."""
        if self.recompute is None:
            return
        runs = {run.name: run for run in self.stages.store.job_runs()}
        last = runs["scores"].last_success_at if "scores" in runs else None
        self.stages.touched.update(self.stages.store.subjects_sent_since(last))

    def _shutdown(self) -> None:
        self.stop.set()
        self._scheduler.shutdown(wait=True)  # the running batches finish
        self._stop_listeners()
        try:
            self.stages.store.release_lease(LEASE, self.holder)
        except TrialBridgeError as exc:
            log.warning("lease.release-failed", error=type(exc).__name__)
        log.info("service.stopped", worker=self.holder)

    # Jobs --------------------------------------------------------------------------------

    def _add_jobs(self) -> None:
        jobs: dict[str, Callable[[], int]] = {
            "process": self._process,
            "push": self._push,
            "purge": lambda: self.stages.purge_raw(self.config.raw_retention),
        }
        if self.recompute is not None:
            jobs["scores"] = self._scores
        intervals = {name: self.config.job(name).interval_seconds for name in jobs}
        for spec in self.sources:
            if isinstance(spec.source, Pollable):
                name = f"source:{spec.name}"
                jobs[name] = partial(self._poll, spec.source)
                default = self.config.job("sources").interval_seconds
                intervals[name] = spec.interval_seconds or default
        for name, work in jobs.items():
            self._scheduler.add_job(
                self._job,
                "interval",
                args=(name, work),
                seconds=intervals[name],
                id=name,
                name=name,
            )

    def _job(self, name: str, work: Callable[[], int]) -> None:
        if not self.active or self.stop.is_set():
            return
        metrics.JOB_RUNS.labels(job=name).inc()
        try:
            count = work()
        except Exception as exc:  # a job never dies; its error is recorded and shown
            log.error("job.failed", job=name, error=type(exc).__name__)
            self._record(name, 0, f"{type(exc).__name__}: {exc}")
            return
        metrics.JOB_LAST_SUCCESS.labels(job=name).set(time.time())
        self._record(name, count, None)
        self._refresh_depths()
        if count:
            log.info("job.done", job=name, count=count)

    def _record(self, name: str, count: int, error: str | None) -> None:
        try:
            self.stages.store.record_run(name, self.holder, count, error)
        except TrialBridgeError as exc:
            log.warning("job.record-failed", job=name, error=type(exc).__name__)

    def _process(self) -> int:
        size = self.config.job("process").batch_size
        total = 0
        while not self.stop.is_set() and (claimed := self.stages.process_inbox(size)):
            total += claimed
            if claimed < size:
                break
        return total

    def _push(self) -> int:
        size = self.config.job("push").batch_size
        total = 0
        while not self.stop.is_set() and (claimed := self.stages.push_outbox(size)):
            total += claimed
            if claimed < size:
                break
        return total

    def _scores(self) -> int:
        subjects = self.stages.take_touched()
        if not subjects or self.recompute is None:
            return 0
        try:
            return self.recompute(subjects)
        except BaseException:
            self.stages.touched.update(subjects)  # tried again next run
            raise

    def _poll(self, source: Pollable) -> int:
        if self.stop.is_set():
            return 0
        return source.poll(self.intake)

    def _refresh_depths(self) -> None:
        depths = self.stages.store.depths()
        for queue, value in (
            ("inbox", depths.inbox),
            ("outbox", depths.outbox),
            ("dead_letters", depths.dead_letters),
            ("held", depths.held),
        ):
            metrics.QUEUE_DEPTH.labels(queue=queue).set(value)

    # Listening sources (MLLP) --------------------------------------------------------------

    def _start_listeners(self) -> None:
        for spec in self.sources:
            if isinstance(spec.source, Servable):
                thread = threading.Thread(
                    target=self._serve,
                    args=(spec.source,),
                    name=f"trialbridge-{spec.name}",
                    daemon=True,
                )
                thread.start()
                self._listeners.append(thread)

    def _serve(self, source: Servable) -> None:
        async def main() -> None:
            stop = asyncio.Event()
            self._loop_stop.append((asyncio.get_running_loop(), stop))
            await source.serve(self.intake, stop)

        try:
            asyncio.run(main())
        except Exception as exc:
            log.error("source.failed", source=type(source).__name__, error=type(exc).__name__)

    def _stop_listeners(self) -> None:
        for loop, event in self._loop_stop:
            loop.call_soon_threadsafe(event.set)
        for thread in self._listeners:
            thread.join(timeout=30)

    # Probes ------------------------------------------------------------------------------

    def healthy(self) -> bool:
        return not self.stop.is_set() or self._scheduler.running

    def ready(self) -> tuple[bool, dict[str, Any]]:
        checks: dict[str, Any] = {"role": "active" if self.active else "standby"}
        try:
            self.stages.store.ping()
            checks["store"] = "ok"
        except TrialBridgeError as exc:
            checks["store"] = type(exc).__name__
        checks["fhir"] = fhir_reachable(self.stages.client)
        return checks["store"] == "ok" and checks["fhir"] == "ok", checks


def fhir_reachable(client: FhirClient) -> str:
    """``ok`` when the FHIR server answers at all (``/metadata``, below 500), else why not."""
    try:
        response = client.session.get(f"{client.base_url}/metadata", timeout=5)
    except requests.RequestException as exc:
        return f"unreachable ({type(exc).__name__})"
    return "ok" if response.status_code < 500 else f"HTTP {response.status_code}"
