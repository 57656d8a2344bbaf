"""The stages after the inbox, as jobs: process (inbox -> outbox) and push (outbox -> FHIR
server), plus the retention purge. ``trialbridge push`` and ``trialbridge run`` both use
them, so there is one code path from the inbox to the FHIR server.

- :meth:`Stages.process_inbox` claims a batch of received messages, translates each
  (enrolment gate, mapping, trial context: :func:`adapter.translate.translate`) and, in the
  same database transaction, writes their transactions to the outbox, their held results and
  their new status. An ADT death updates the registry and queues the subject's transaction.
- :meth:`Stages.push_outbox` claims due transactions subject by subject (in the order their
  messages were received), reconciles each with what the server holds
  (:mod:`adapter.lifecycle`) and sends it. A connection error, 429 or 5xx schedules the
  transaction again with exponential backoff and jitter (Retry-After honoured) and holds
  back that subject's later ones; any other 4xx makes it a dead letter.

Bad input never stops the flow (issue 12): whatever goes wrong with one message — a project
error or any other exception, while translating, writing its outcome or pushing it — sets
that message alone aside in the quarantine (:mod:`adapter.service.quarantine` says what is
recorded), and the rest of the batch and every later batch go on. A quarantined result
message holds back its subject's later transactions until it is retried or discarded, so
each subject's results still reach the server in the order they were received.
"""

from __future__ import annotations

import random
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import orjson
import simplejson
from sqlalchemy.exc import DataError, IntegrityError

from adapter.build.subject import subject_transaction
from adapter.config import Settings
from adapter.errors import FhirError, StoreError
from adapter.fhir_client import FhirClient
from adapter.lifecycle import reconcile, remember, stored_for
from adapter.logs import get_logger
from adapter.mappings import MappingSet
from adapter.service import metrics
from adapter.service.config import ServiceConfig
from adapter.service.outage import Outage
from adapter.service.plan import Backoff, next_attempt, pick_due, retryable, split_bundle
from adapter.service.quarantine import Fault, carries_results, fault_of, refusal
from adapter.service.summary import PushSummary
from adapter.store import REFUSED, Outcome
from adapter.store.quarantine import Quarantined
from adapter.store.schema import PROCESS_STAGE, PUSH_STAGE, RESULTS, SUBJECT
from adapter.store.service import (
    Death,
    InboxMessage,
    OutboxRow,
    Processed,
    Queued,
    ServiceStore,
)
from adapter.translate import Translation, death_date, outcome_of, translate
from adapter.trial.gate import Gate
from adapter.trial.registry import Registry

_ALL = metrics.ALL_SOURCES
log = get_logger(__name__)


def new_holder() -> str:
    """A name for this worker in leases and claims (no host names: just unique)."""
    return f"worker-{uuid.uuid4().hex[:12]}"


@dataclass
class Stages:
    """The jobs' work over one store and one FHIR server."""

    store: ServiceStore
    client: FhirClient
    settings: Settings
    mappings: MappingSet
    registry: Registry | None
    config: ServiceConfig
    holder: str = field(default_factory=new_holder)
    rng: random.Random = field(default_factory=random.Random)
    stopping: Callable[[], bool] = lambda: False
    touched: set[str] = field(default_factory=set)  # subjects pushed since take_touched()
    outage: Outage | None = None  # the server seen down (made from the config if None)
    # Our credentials as the last push refused them (401/403, or the SMART token endpoint),
    # until a push is accepted: /readyz says so (the server's /metadata is public).
    auth_failure: str | None = None
    # Inbox row id -> the file a message came from, given by ``trialbridge push`` alone: its
    # summary's errors name the file for the person at the terminal. Never stored or logged
    # (a file name can identify a patient), so the service's errors say MSH-10 only.
    sources: Mapping[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.outage is None:
            # the store's clock, so that a test's clock moves the probes too
            self.outage = Outage(self.config.probe_seconds, lambda: self.store.now().timestamp())

    def take_touched(self) -> list[str]:
        """The subjects whose results were pushed since the last call (for the scores)."""
        subjects, self.touched = sorted(self.touched), set()
        return subjects

    # Process: inbox -> outbox ----------------------------------------------------------

    def process_inbox(self, batch_size: int, summary: PushSummary | None = None) -> int:
        """Process up to ``batch_size`` received messages; how many were claimed.

        A message that fails is set aside with its batch's outcome. Should writing the
        batch's outcome itself fail for a reason of one message's (a value the database
        refuses), the batch is processed again one message at a time, and the one that
        cannot be written is set aside alone. A store that is down stops the job (it is
        tried again at the next run) and sets nothing aside.
        """
        summary = summary if summary is not None else PushSummary()
        registry = self.registry
        gate = Gate(registry.study, registry.index()) if registry else None
        attempt = PushSummary()
        try:
            with self.store.claim_inbox(batch_size) as claim:
                parts = [self._process(message, gate, attempt) for message in claim.messages]
                claim.finish(_merged(parts), self.store.now())
        except Exception as exc:
            if not _one_message(exc):
                raise
            return self._process_singly(batch_size, gate, summary)
        summary.add(attempt)
        return len(claim.messages)

    def _process_singly(self, limit: int, gate: Gate | None, summary: PushSummary) -> int:
        claimed = 0
        while claimed < limit and self._process_alone(gate, summary):
            claimed += 1
        return claimed

    def _process_alone(self, gate: Gate | None, summary: PushSummary) -> int:
        """Claim and process one message in a transaction of its own; set it aside alone
        when its outcome cannot be written. How many were claimed (0 or 1)."""
        claimed: list[InboxMessage] = []
        attempt = PushSummary()
        try:
            with self.store.claim_inbox(1) as claim:
                claimed = claim.messages
                processed = _merged([self._process(m, gate, attempt) for m in claimed])
                claim.finish(processed, self.store.now())
        except Exception as exc:
            if not claimed or not _one_message(exc):
                raise
            message = claimed[0]
            entry = self._entry(message, fault_of(exc), gate, PROCESS_STAGE)
            self.store.quarantine_alone(entry, entry.reason)
            _count_quarantined(entry, summary, self._source(message))
            return 1
        summary.add(attempt)
        return len(claimed)

    def _process(self, message: InboxMessage, gate: Gate | None, summary: PushSummary) -> Processed:
        try:
            items = list(
                translate(
                    message.raw,
                    self._source(message),
                    self.settings,
                    self.mappings,
                    gate=gate,
                    received_at=message.received_at,
                )
            )
            return _merged([self._planned(message, item, gate, summary) for item in items])
        except Exception as exc:  # never stop the batch for one message, whatever it raised
            entry = self._entry(message, fault_of(exc), gate, PROCESS_STAGE)
            _count_quarantined(entry, summary, self._source(message))
            return Processed([Outcome(message.row_id, REFUSED, entry.reason, ())], [], (), [entry])

    @staticmethod
    def _source(message: InboxMessage) -> str:
        return f"message {message.control_id or message.row_id}"

    def _planned(
        self, message: InboxMessage, item: Translation, gate: Gate | None, summary: PushSummary
    ) -> Processed:
        row_id = message.row_id
        _count_processed(item, summary)
        error = str(item.error) if item.bundle is None and item.error else None
        outcome = outcome_of(row_id, item, error)
        subject = item.subject.subject_id if item.subject else ""
        if outcome.status == REFUSED:  # refused with a project error: set aside as well
            kind = type(item.error).__name__ if item.error else "MessageError"
            fault = refusal(error or "refused", item.error.location if item.error else None, kind)
            entry = self._entry(message, fault, gate, PROCESS_STAGE, subject=subject)
            summary.quarantined += 1  # counted as refused by _count_processed
            _note_quarantined(entry)
            return Processed([replace(outcome, reason=fault.reason)], [], (), [entry])
        if item.bundle is not None:
            parts = split_bundle(item.bundle, self.config.max_bundle_entries)
            queued = [Queued(row_id, subject, row_id, RESULTS, _json(part)) for part in parts]
            return Processed([outcome], queued)
        death = self._death(item)
        if death is None:
            return Processed([outcome], [])
        summary.vital += 1
        return Processed([outcome], [self._subject_queued(row_id, item, death)], [death])

    def _entry(
        self,
        message: InboxMessage,
        fault: Fault,
        gate: Gate | None,
        stage: str,
        *,
        subject: str | None = None,
    ) -> Quarantined:
        """The quarantine entry of a message: its subject (the enrolment gate's reading of
        PID-3, when translation did not get that far) and whether it holds that subject."""
        subject_id = subject if subject is not None else _subject_of(message, gate)
        holds = bool(subject_id) and carries_results(message.raw)
        return Quarantined(
            message.row_id,
            stage,
            subject_id,
            holds,
            fault.error_class,
            fault.reason,
            fault.location,
        )

    def _death(self, item: Translation) -> Death | None:
        vital, subject, registry = item.vital, item.subject, self.registry
        if vital is None or subject is None or registry is None or not vital.died:
            return None
        return Death(subject.subject_id, death_date(vital, registry.study.timezone))

    def _subject_queued(self, row_id: int, item: Translation, death: Death) -> Queued:
        assert item.subject is not None and self.registry is not None
        record = replace(item.subject.record, died_on=death.died_on, status="off-study")
        bundle = subject_transaction(self.registry.study, record)
        return Queued(row_id, death.subject_id, row_id, SUBJECT, _json(bundle))

    # Push: outbox -> FHIR server ---------------------------------------------------------

    def push_outbox(
        self,
        batch_size: int,
        summary: PushSummary | None = None,
        *,
        ignore_schedule: bool = False,
        tried: set[int] | None = None,
    ) -> int:
        """Push up to ``batch_size`` due transactions; how many were claimed.

        ``ignore_schedule`` (``trialbridge push``) tries rows waiting for their next
        attempt now, each at most once per ``tried`` set. Otherwise (the service), while
        the server is down nothing is claimed: it is probed (:mod:`adapter.service.outage`).
        """
        summary = summary if summary is not None else PushSummary()
        if not ignore_schedule and not self._server_up():
            return 0
        rows = self._claim(batch_size, ignore_schedule, tried or set())
        if tried is not None:
            tried.update(row.row_id for row in rows)
        done: set[int] = set()
        sent: list[int] = []  # marked with the rest of the batch, in one commit
        try:
            for subject_rows in _by_subject(rows):
                if not ignore_schedule and self._down():
                    break  # the rest are released, due when the server answers again
                self._push_subject(subject_rows, summary, done, sent)
        finally:
            unsent = [r.row_id for r in rows if r.row_id not in done]
            self.store.finish_push(sent, unsent, self.holder)
        return len(rows)

    def _down(self) -> bool:
        return self.outage is not None and self.outage.down

    def _server_up(self) -> bool:
        """False while the server is down; when a probe finds it answering again, the rows
        backed off meanwhile are made due at once (not after their backoff, up to 300 s)."""
        if self.outage is None or not self.outage.down:
            return True
        if not self.outage.recovered(self.client):
            return False
        due = self.store.bring_forward()
        log.info("push.resumed", due_now=due)
        return True

    def _claim(self, limit: int, ignore_schedule: bool, tried: set[int]) -> list[OutboxRow]:
        now = self.store.now()
        until = now + timedelta(seconds=self.config.claim_seconds)
        with self.store.claiming() as conn:
            pending, barrier = self.store.candidates(conn)
            # A row tried and still pending (failed, or held back behind one that failed)
            # holds back the rest of its subject, in later claims too; so does a quarantined
            # message, until it is retried or discarded.
            blocked = {p.subject_id for p in pending if p.row_id in tried}
            holds = self.store.holds(conn)
            pending = [
                p
                for p in pending
                if p.subject_id not in blocked and p.sequence < holds.get(p.subject_id, _NEVER)
            ]
            ids = pick_due(pending, now, limit, barrier=barrier, ignore_schedule=ignore_schedule)
            return self.store.claim(conn, ids, self.holder, until)

    def _push_subject(
        self, rows: list[OutboxRow], summary: PushSummary, done: set[int], sent: list[int]
    ) -> None:
        bundles: list[dict[str, Any]] = []
        for n, row in enumerate(rows):
            try:
                bundles.append(simplejson.loads(row.bundle, use_decimal=True))
            except Exception as exc:  # unreadable text: set aside, the later ones wait
                self._unpushable(row, exc, summary)
                _count_held_back(rows[n + 1 :], summary)
                rows = rows[:n]
                break
        results = [b for row, b in zip(rows, bundles, strict=True) if row.kind == RESULTS]
        stored: dict[str, dict[str, Any]] | None
        try:  # what the server holds for all of them, looked up at once
            stored = stored_for(self.client, results)
        except FhirError as exc:  # fails as the first row's own lookup would have
            if not self._failed(rows[0], exc, summary):
                _count_held_back(rows[1:], summary)
                return
            done.add(rows[0].row_id)
            rows, bundles, stored = rows[1:], bundles[1:], None
        except Exception:  # an answer not understood: each row looks up its own (below)
            stored = None
        for n, (row, bundle) in enumerate(zip(rows, bundles, strict=True)):
            if self.stopping() or not self._push_row(row, bundle, stored, summary, sent):
                _count_held_back(rows[n + 1 :], summary)
                return
            done.add(row.row_id)

    def _push_row(
        self,
        row: OutboxRow,
        bundle: dict[str, Any],
        stored: dict[str, dict[str, Any]] | None,
        summary: PushSummary,
        sent: list[int],
    ) -> bool:
        """Push one transaction (``sent`` collects it, to be marked with the subject's
        others in one commit); False when the subject's later ones must wait."""
        started = time.perf_counter()
        try:
            skipped: Sequence[Any] = ()
            queued = bundle
            if row.kind == RESULTS:
                current = stored if stored is not None else stored_for(self.client, [bundle])
                bundle, skipped = reconcile(bundle, current)
            # Unchanged by the reconciliation: the outbox's text is what goes.
            self.client.transaction(row.bundle if bundle is queued else bundle)
        except FhirError as exc:
            return self._failed(row, exc, summary)
        except Exception as exc:  # not a server's answer we know: tried again, then set aside
            self._unpushable(row, exc, summary)
            return False
        finally:
            metrics.PUSH_LATENCY.observe(time.perf_counter() - started)
        if stored is not None and row.kind == RESULTS:
            remember(stored, bundle)
        sent.append(row.row_id)
        self.auth_failure = None
        if row.kind == RESULTS and row.subject_id:
            self.touched.add(row.subject_id)
        metrics.PUSHED.labels(source=_ALL).inc()
        _count_sent(row, bundle, len(skipped), summary, self._analytes())
        return True

    def _unpushable(self, row: OutboxRow, exc: Exception, summary: PushSummary) -> None:
        """A transaction whose push raised something that is not a FHIR server's error:
        tried again with backoff (it may have been a passing oddity of the server), and set
        aside after :data:`PUSH_TRIES` tries, with its message."""
        fault = fault_of(exc)
        summary.failed += 1
        summary.errors.append(f"{self._name(row)} ({row.kind}): {fault.reason}")
        if row.attempts + 1 < PUSH_TRIES:
            backoff = Backoff(self.config.backoff_base_seconds, self.config.backoff_max_seconds)
            at = next_attempt(self.store.now(), backoff.delay(row.attempts + 1, None, self.rng))
            self.store.retry_later(row, self.holder, f"{fault.error_class}: {fault.reason}", at)
            metrics.FAILED.labels(source=_ALL, outcome="retry").inc()
            return
        entry = Quarantined(
            row.message_id,
            PUSH_STAGE,
            row.subject_id,
            bool(row.subject_id) and row.kind == RESULTS,
            fault.error_class,
            fault.reason,
            fault.location,
            outbox_id=row.row_id,
        )
        self.store.quarantine_push(entry)
        summary.quarantined += 1
        metrics.FAILED.labels(source=_ALL, outcome="quarantined").inc()
        _note_quarantined(entry)

    def _failed(self, row: OutboxRow, exc: FhirError, summary: PushSummary) -> bool:
        summary.failed += 1
        if exc.auth_failure:
            self.auth_failure = str(exc)
        summary.errors.append(f"{self._name(row)} ({row.kind}): {exc}")
        if exc.retryable or retryable(exc.status):
            backoff = Backoff(self.config.backoff_base_seconds, self.config.backoff_max_seconds)
            delay = backoff.delay(row.attempts + 1, _retry_after(exc), self.rng)
            at = next_attempt(self.store.now(), delay)
            self.store.retry_later(row, self.holder, str(exc), at)
            metrics.FAILED.labels(source=_ALL, outcome="retry").inc()
            server_level = exc.status is None and not exc.auth_failure
            if self.outage is not None and (server_level or (exc.status or 0) >= 500):
                self.outage.push_failed(self.client)  # is the server itself down?
            return False
        self.store.mark_dead(row, self.holder, exc.status, exc.outcome or str(exc))
        metrics.FAILED.labels(source=_ALL, outcome="dead").inc()
        return True

    def _name(self, row: OutboxRow) -> str:
        """A message as a person finds it: its file (``trialbridge push`` only) and MSH-10."""
        where = self.sources.get(row.message_id)
        msh10 = f"MSH-10 {row.control_id}" if row.control_id else "no MSH-10"
        name = f"message {msh10} (inbox row {row.message_id})"
        return f"{where}: {name}" if where else name

    def _analytes(self) -> dict[str, str]:
        return {a.loinc: key for key, a in self.mappings.analytes.items()}

    # Retention ---------------------------------------------------------------------------

    def purge_raw(self, retention: timedelta) -> int:
        """Forget raw bytes (and sent transactions) older than ``retention``."""
        return self.store.purge_raw(self.store.now() - retention)

    # The whole way, for ``trialbridge push`` ----------------------------------------------

    def run_to_completion(self, summary: PushSummary, batch_size: int = 200) -> None:
        """Process every received message and push every pending transaction once, the two
        side by side as the service's jobs run (mapping overlaps the server's answers); the
        outbox's order rules keep each subject in order."""
        processed, pushed = PushSummary(), PushSummary()
        progress = threading.Event()
        done = threading.Event()
        failure: list[BaseException] = []

        def process() -> None:
            try:
                while self.process_inbox(batch_size, processed):
                    progress.set()
            except BaseException as exc:  # re-raised in the caller's thread
                failure.append(exc)
            finally:
                done.set()
                progress.set()

        worker = threading.Thread(target=process, name="process-inbox", daemon=True)
        claim = batch_size
        with _prompt_switches():
            worker.start()
            tried: set[int] = set()
            while True:
                started = time.monotonic()
                if claimed := self.push_outbox(claim, pushed, ignore_schedule=True, tried=tried):
                    rate = claimed / max(time.monotonic() - started, 1e-3)
                    claim = _claim_size(rate, self.config.claim_seconds, batch_size)
                    continue
                if done.is_set():  # one more pass for what the last batch queued
                    if not self.push_outbox(claim, pushed, ignore_schedule=True, tried=tried):
                        break
                    continue
                progress.wait()
                progress.clear()
            worker.join()
        if failure:
            raise failure[0]
        summary.add(processed)
        summary.add(pushed)


# At most this many rows claimed at once by run_to_completion. Each claim lists every
# pending row (the backlog being pushed) and commits twice; 200 at a time, claims were a
# tenth of a 20,000-message push. A claim holds its rows' bundles in memory (~20 KB of text
# each for 10 results), so the cap is also what bounds memory for any backlog: at 1,000 the
# peak RSS grew 125 -> 149 MB from a 50,000 to a 200,000 backlog. Whatever is claimed but
# not yet sent is re-sent after a crash, harmlessly.
_PUSH_CLAIM = 400


# A transaction whose push raised something other than a FHIR server's error is tried this
# many times (with backoff, as after a 5xx) before its message is set aside.
PUSH_TRIES = 3
_NEVER = sys.maxsize  # no quarantined message holds the subject back


def _claim_size(rate: float, lease_seconds: float, least: int) -> int:
    """Rows to claim next: what the last claim's pace pushes in half the lease (so the
    lease never runs out mid-batch), between ``least`` and :data:`_PUSH_CLAIM`."""
    return max(least, min(_PUSH_CLAIM, int(rate * lease_seconds / 2)))


# While the processing thread computes, the pushing thread's every answer from the server
# waits for the GIL: up to the switch interval (5 ms by default, about a transaction's own
# server time), so the server sat idle. 0.5 ms hands it over promptly.
_SWITCH_SECONDS = 0.0005


@contextmanager
def _prompt_switches() -> Iterator[None]:
    """A short GIL switch interval for the block (the process-wide one restored after)."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, _SWITCH_SECONDS))
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _merged(parts: Sequence[Processed]) -> Processed:
    return Processed(
        [o for p in parts for o in p.outcomes],
        [q for p in parts for q in p.queued],
        [d for p in parts for d in p.deaths],
        [q for p in parts for q in p.quarantined],
    )


def _json(bundle: dict[str, Any]) -> str:
    """The outbox text of a Bundle. orjson (C) is ~10x faster than simplejson here; decimals
    go out as their own digits (``1.50`` stays ``1.50``), as simplejson's ``use_decimal``
    writes them; non-finite decimals, dates and dataclasses are refused as simplejson would."""
    return orjson.dumps(bundle, default=_exact_decimal, option=_PASSTHROUGH).decode()


_PASSTHROUGH = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME


def _exact_decimal(value: object) -> orjson.Fragment:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"Out of range decimal values are not JSON compliant: {value}")
        return orjson.Fragment(str(value))
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _count_processed(item: Translation, summary: PushSummary) -> None:
    summary.messages += 1
    summary.held += len(item.held)
    summary.dropped_results += item.dropped_results
    metrics.HELD.labels(source=_ALL).inc(len(item.held))
    if item.dropped:
        summary.dropped += 1
    elif item.bundle is not None:
        metrics.MAPPED.labels(source=_ALL).inc()
    elif item.vital is None and item.error is not None:
        summary.refused += 1
        summary.errors.append(f"{item.source}: {item.error}")
        metrics.REFUSED.labels(source=_ALL).inc()


def _count_quarantined(entry: Quarantined, summary: PushSummary, source: str) -> None:
    summary.messages += 1
    summary.refused += 1
    summary.quarantined += 1
    summary.errors.append(f"{source}: set aside ({entry.error_class}): {entry.reason}")
    metrics.REFUSED.labels(source=_ALL).inc()
    _note_quarantined(entry)


def _note_quarantined(entry: Quarantined) -> None:
    """The metric and a log event: the error's class and where, never the message's
    content (a reason may quote a value, so it stays in the store)."""
    metrics.QUARANTINED.labels(stage=entry.stage).inc()
    log.info(  # info: the service logs it; a command's own summary already says so
        "message.quarantined",
        stage=entry.stage,
        message_row=entry.message_id,
        error=entry.error_class,
        location=entry.location,
        holds_subject=entry.holds,
    )


def _one_message(exc: BaseException) -> bool:
    """Whether a failure to write a batch may be one message's doing (a value the database
    refuses), rather than the store being unreachable or busy (tried again later)."""
    if not isinstance(exc, StoreError):
        return True
    cause = exc.__cause__
    return isinstance(cause, DataError | IntegrityError)


def _subject_of(message: InboxMessage, gate: Gate | None) -> str:
    """The enrolled subject a message is for, as the enrolment gate reads its PID-3."""
    if gate is None:
        return ""
    try:
        decision = gate.admit(message.raw, message.received_at)
    except Exception:  # the gate could not read it either: nobody to hold back
        return ""
    return decision.subject.subject_id if decision.subject else ""


def _count_sent(
    row: OutboxRow,
    bundle: dict[str, Any],
    skipped: int,
    summary: PushSummary,
    analytes: dict[str, str],
) -> None:
    if row.kind != RESULTS:
        return
    if row.message_id not in summary.sent_messages:  # a message cut in parts counts once
        summary.sent_messages.add(row.message_id)
        summary.pushed += 1
    summary.skipped += skipped
    if row.subject_id:
        summary.subjects.add(row.subject_id)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Observation":
            summary.observations += 1
            key = analytes.get(resource["code"]["coding"][0].get("code", ""), "other")
            summary.by_analyte[key] = summary.by_analyte.get(key, 0) + 1


def _count_held_back(rows: Sequence[OutboxRow], summary: PushSummary) -> None:
    summary.failed += len(rows)


def _by_subject(rows: Sequence[OutboxRow]) -> Iterator[list[OutboxRow]]:
    groups: dict[str, list[OutboxRow]] = {}
    for row in rows:
        groups.setdefault(row.subject_id, []).append(row)
    yield from groups.values()


def _retry_after(exc: FhirError) -> float | None:
    """The server's Retry-After in seconds, when the FHIR client read one."""
    return exc.retry_after
