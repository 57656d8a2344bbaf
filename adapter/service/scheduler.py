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

Every configured listener must listen: :meth:`Service.start_listeners` waits for each and
raises :class:`~adapter.errors.SourceError` naming its configuration key and address when one
cannot (the port is taken, say), so ``trialbridge run`` exits non-zero instead of running
deaf. A listener that dies later marks its source down (``/readyz`` 503 naming it,
``trialbridge_source_up`` 0, ``trialbridge status``). Each source's health
(:mod:`adapter.service.health`) is published to the store every lease tick.
"""

from __future__ import annotations

import asyncio
import json
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

from adapter.errors import FhirError, SourceError, TrialBridgeError
from adapter.fhir_client import FhirClient
from adapter.intake import Intake
from adapter.logs import get_logger
from adapter.service import metrics
from adapter.service.config import ServiceConfig
from adapter.service.health import HEALTH, LISTENER, SourceHealth, own_health
from adapter.service.stages import Stages
from adapter.service.summary import PushSummary
from adapter.store.service import Depths

LEASE = "scheduler"
log = get_logger(__name__)
# How long a listener may take to bind before start-up gives up on it.
LISTEN_TIMEOUT_SECONDS = 15.0
# /readyz asks the FHIR server at most this often (a scrape every second must not become a
# request to the trial's server every second).
FHIR_PROBE_SECONDS = 5.0

# The scores job: recompute the scores of the subjects whose results were pushed since the
# last run; returns how many score Observations it wrote.
Recompute = Callable[[Sequence[str]], int]


@runtime_checkable
class Pollable(Protocol):
    """A source read on schedule (file drop, LIS query pull)."""

    def poll(self, intake: Intake) -> int: ...


@runtime_checkable
class Servable(Protocol):
    """A source that listens (MLLP): it commits through ``intake`` until ``stop`` is set.

    ``ready`` is set once it listens (start-up waits for it); ``serve`` raising before that
    means it could not listen."""

    ready: threading.Event

    async def serve(self, intake: Intake, stop: asyncio.Event) -> None: ...


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """A source the service runs: polled every ``interval_seconds`` (None: the
    ``service.jobs.sources`` interval) when it is :class:`Pollable`, served in a thread of its
    own when it is :class:`Servable`. ``key`` is its configuration key and ``address`` the
    host:port a listener binds, both for error messages; ``health`` is what the service
    knows of it (its events update it)."""

    name: str
    source: object
    interval_seconds: float | None = None
    key: str = ""
    address: str = ""
    health: SourceHealth | None = None

    def state(self) -> SourceHealth:
        assert self.health is not None  # set by Service for every spec
        return self.health


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
        self._loop_lock = threading.Lock()
        self._listening = False
        self._fhir_probe: tuple[float, str] | None = None  # (monotonic time, answer)
        self._probe_lock = threading.Lock()
        self._depths: Depths | None = None  # as the last job run left them
        self.sources = [_with_health(spec) for spec in self.sources]
        self._restore_health()

    def _restore_health(self) -> None:
        """Each source's last message as the previous run published it (a LIS silent
        for hours before a restart is still silent after it); the start time otherwise."""
        try:
            published = self.stages.store.store.states(HEALTH)
        except TrialBridgeError:
            published = {}
        started = time.time()
        for spec in self.sources:
            before = json.loads(published.get(spec.name, "{}")).get("last_message_at")
            state = spec.state()
            if state.last_message_at is None and isinstance(before, int | float):
                state.last_message_at = float(before)
            last = state.last_message_at or started
            metrics.SOURCE_LAST_MESSAGE.labels(source=spec.name).set(last)
            limit = self.config.silent_seconds(spec.name)
            if limit:
                metrics.SOURCE_SILENCE_LIMIT.labels(source=spec.name).set(limit)

    @property
    def holder(self) -> str:
        return self.stages.holder

    # Running -----------------------------------------------------------------------------

    def run(self) -> None:
        """Run until :attr:`stop` is set; then finish the current batches and return.
        Starts the listeners first unless :meth:`start_listeners` already did."""
        try:
            if not self._listening:
                self.start_listeners()
            self._add_jobs()
            self._scheduler.start(paused=True)
            log.info("service.started", worker=self.holder, sources=len(self.sources))
            self._keep_lease()
        finally:
            self._shutdown()

    def _keep_lease(self) -> None:
        ttl = timedelta(seconds=self.config.lease_seconds)
        while not self.stop.is_set():
            self._set_active(self._try_lease(ttl))
            self._publish_health()
            self.stop.wait(self.config.lease_seconds / 3)

    def _publish_health(self) -> None:
        """Each source's health into the store, for ``trialbridge status``."""
        for spec in self.sources:
            self._check_own_health(spec)
            record = json.dumps(spec.state().record(self.holder))
            try:
                self.stages.store.store.set_state(HEALTH, spec.name, record)
            except TrialBridgeError as exc:
                log.warning("health.publish-failed", source=spec.name, error=type(exc).__name__)

    def _check_own_health(self, spec: SourceSpec) -> None:
        ok, problem, detail = own_health(spec.source)
        state = spec.state()
        state.detail = detail
        if not ok and problem is not None:
            self._down(spec, _OWN + problem)
        elif _own_problem(state):
            self._up(spec)  # its own problem went away

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
        if self._scheduler.running:
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
                jobs[name] = partial(self._poll, spec)
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
        except _WaitingError:  # nothing could be tried (push: every row waits for its retry)
            self._refresh_depths()
            return
        except Exception as exc:  # a job never dies; its error is recorded and shown
            log.error("job.failed", job=name, error=type(exc).__name__)
            metrics.JOB_LAST_ERROR.labels(job=name).set(time.time())
            self._record(name, 0, _error_text(exc))
            self._refresh_depths()
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
        """Push batches until the outbox is drained. A run in which transactions were tried
        and none was accepted is a failed run (its first error is the job's last error);
        a run that could try nothing while rows wait for their retry is no success either."""
        size = self.config.job("push").batch_size
        total = 0
        summary = PushSummary()
        while not self.stop.is_set() and (claimed := self.stages.push_outbox(size, summary)):
            total += claimed
            if claimed < size:
                break
        if summary.failed and not summary.pushed:
            first = summary.errors[0] if summary.errors else ""
            raise FhirError(f"{summary.failed} transaction(s) failed, none accepted; {first}")
        if not total and self._depths is not None and self._depths.retrying:
            raise _WaitingError
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

    def _poll(self, spec: SourceSpec) -> int:
        if self.stop.is_set():
            return 0
        assert isinstance(spec.source, Pollable)
        try:
            count = spec.source.poll(self.intake)
        except Exception as exc:
            self._down(spec, _error_text(exc))
            raise
        if not _own_problem(spec.state()):  # (that one clears when health() says so)
            self._up(spec)
        return count

    def _up(self, spec: SourceSpec) -> None:
        if spec.state().up is not True:
            log.info("source.up", source=spec.name)
        spec.state().mark_up()
        metrics.SOURCE_UP.labels(source=spec.name).set(1)

    def _down(self, spec: SourceSpec, problem: str) -> None:
        if spec.state().up is not False:
            log.error("source.down", source=spec.name, setting=spec.key, listen=spec.address)
        spec.state().mark_down(problem)
        metrics.SOURCE_UP.labels(source=spec.name).set(0)

    def _refresh_depths(self) -> None:
        try:
            depths = self._depths = self.stages.store.depths()
        except TrialBridgeError as exc:
            log.warning("depths.failed", error=type(exc).__name__)
            return
        for queue, value in (
            ("inbox", depths.inbox),
            ("outbox", depths.outbox),
            ("retrying", depths.retrying),
            ("dead_letters", depths.dead_letters),
            ("held", depths.held),
            ("quarantined", getattr(depths, "quarantined", 0)),
        ):
            metrics.QUEUE_DEPTH.labels(queue=queue).set(value)
        now = self.stages.store.now()
        for queue, oldest in (("inbox", depths.oldest_inbox), ("outbox", depths.oldest_outbox)):
            age = 0.0 if oldest is None else max((now - oldest).total_seconds(), 0.0)
            metrics.OLDEST_PENDING_AGE.labels(queue=queue).set(age)

    # Listening sources (MLLP) --------------------------------------------------------------

    def start_listeners(self, timeout: float = LISTEN_TIMEOUT_SECONDS) -> None:
        """Start every listening source and wait until each listens. One that cannot
        raises SourceError naming its key and address (the others are stopped again)."""
        self._listening = True
        for spec in self.sources:
            if isinstance(spec.source, Servable):
                thread = threading.Thread(
                    target=self._serve, args=(spec,), name=f"trialbridge-{spec.name}", daemon=True
                )
                thread.start()
                self._listeners.append(thread)
                self._wait_listening(spec, thread, timeout)

    def _wait_listening(self, spec: SourceSpec, thread: threading.Thread, timeout: float) -> None:
        assert isinstance(spec.source, Servable)
        deadline = time.monotonic() + timeout
        while not spec.source.ready.wait(0.05):
            if not thread.is_alive() or time.monotonic() > deadline:
                problem = spec.state().problem or f"did not listen within {timeout:g} s"
                self._stop_listeners()
                raise SourceError(_cannot_listen(spec, problem))
        port = getattr(spec.source, "port", None)
        if isinstance(port, int) and spec.address:  # the port it got (0 picks a free one)
            spec.state().address = f"{spec.address.rsplit(':', 1)[0]}:{port}"
        self._up(spec)

    def _serve(self, spec: SourceSpec) -> None:
        assert isinstance(spec.source, Servable)
        source = spec.source

        async def main() -> None:
            stop = asyncio.Event()
            with self._loop_lock:
                self._loop_stop.append((asyncio.get_running_loop(), stop))
            if self.stop.is_set():
                stop.set()
            await source.serve(self.intake, stop)

        try:
            asyncio.run(main())
        except Exception as exc:  # could not listen, or died: the source is down
            log.error("source.failed", source=spec.name, error=type(exc).__name__)
            self._down(spec, _error_text(exc))
            return
        if not self.stop.is_set():  # returned although nobody asked it to stop
            self._down(spec, "the listener stopped")

    def _stop_listeners(self) -> None:
        with self._loop_lock:
            loops = list(self._loop_stop)
        for loop, event in loops:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # its loop already ended (the listener died)
                continue
        for thread in self._listeners:
            thread.join(timeout=30)

    # Probes ------------------------------------------------------------------------------

    def healthy(self) -> bool:
        return not self.stop.is_set() or self._scheduler.running

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """Ready when the store answers, the FHIR server answered (asked at most every
        :data:`FHIR_PROBE_SECONDS`) and did not refuse the last push's credentials, and every
        source is up; the body names what is not."""
        checks: dict[str, Any] = {"role": "active" if self.active else "standby"}
        try:
            self.stages.store.ping()
            checks["store"] = "ok"
        except TrialBridgeError as exc:
            checks["store"] = type(exc).__name__
        checks["fhir"] = self._fhir()
        if checks["fhir"] == "ok" and (refused := self.stages.auth_failure):
            checks["fhir"] = f"auth failing: {refused}"  # /metadata is public: it answers
        sources = {s.name: _source_check(s.state()) for s in self.sources}
        checks["sources"] = sources
        down = [name for name, found in sources.items() if found != "ok" and found != "starting"]
        if down:
            checks["not_ready"] = down
        ok = checks["store"] == "ok" and checks["fhir"] == "ok" and not down
        return ok, checks

    def _fhir(self) -> str:
        with self._probe_lock:
            now = time.monotonic()
            if self._fhir_probe is None or now - self._fhir_probe[0] >= FHIR_PROBE_SECONDS:
                self._fhir_probe = (now, fhir_reachable(self.stages.client))
            return self._fhir_probe[1]


_OWN = "reported by the source: "  # prefix of a problem a source's health() reported


class _WaitingError(Exception):
    """A push run that could try nothing: every pending row waits for its retry."""


def _with_health(spec: SourceSpec) -> SourceSpec:
    if spec.health is not None:
        return spec
    kind = LISTENER if isinstance(spec.source, Servable) else "polled"
    health = SourceHealth(spec.name, kind=kind, key=spec.key, address=spec.address)
    return SourceSpec(spec.name, spec.source, spec.interval_seconds, spec.key, spec.address, health)


def _own_problem(health: SourceHealth) -> bool:
    return health.problem is not None and health.problem.startswith(_OWN)


def _source_check(health: SourceHealth) -> str:
    if health.up is None:
        return "starting"
    return "ok" if health.up else f"down: {health.problem}"


def _cannot_listen(spec: SourceSpec, problem: str) -> str:
    where = f" on {spec.address}" if spec.address else ""
    key = spec.key or f"sources.{spec.name}"
    return (
        f"{key}: the {spec.name} listener cannot listen{where}: {problem} — free the port "
        f"(another program or a second TrialBridge holds it) or set {key}.port / {key}.host"
    )


def _error_text(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def fhir_reachable(client: FhirClient) -> str:
    """``ok`` when the FHIR server answers at all (``/metadata``, below 500), else why not."""
    try:
        response = client.session.get(f"{client.base_url}/metadata", timeout=5)
    except requests.RequestException as exc:
        return f"unreachable ({type(exc).__name__})"
    return "ok" if response.status_code < 500 else f"HTTP {response.status_code}"
