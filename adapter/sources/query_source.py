"""The LIS query pull: for each enrolled subject, ask the LIS for the results reported since
the subject's watermark, put them through the inbox door, then advance the watermark.

The first query of a subject goes back to the start of the study's first visit window
(baseline: day 0 - 14 days), so baseline results taken before enrolment arrive too. Each
later query starts ``overlap_minutes`` before the watermark (results the LIS files late are
not missed; the inbox deduplicates what comes twice). A watermark moves only after the
subject's results were committed, so a crash in between asks again and loses nothing.

A result released later than that with an earlier report time is never asked for by this
incremental pull: :class:`Reconciliation` (a scheduled job of its own, see
:mod:`adapter.sources.reconcile`) asks each subject's whole window again at a slower cadence
and counts what it finds that the incremental pulls missed.

Each message sent has its own MSH-10 (continuations too); replies are matched on MSA-2 and on
the query tag (:mod:`adapter.sources.query`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta

from adapter.errors import QueryError
from adapter.intake import Intake
from adapter.sources.client import MllpClient
from adapter.sources.config import QueryConfig
from adapter.sources.events import Events
from adapter.sources.mllp import control_ids
from adapter.sources.query import Dialect, PatientQuery, build_query, read_answer
from adapter.sources.reconcile import Cadence, Record, window
from adapter.store import Store
from adapter.store.inbox import Incoming, incoming
from adapter.trial.enrolment import EnrolledSubject, HospitalId
from adapter.trial.study import Study

Clock = Callable[[], datetime]
Connect = Callable[[QueryConfig], MllpClient]
WATERMARK = "watermark:"
# Source state holding each query source's reconciliation record, keyed by the query
# source's name; adapter/service/runner.py reads it for ``trialbridge status``.
RECONCILIATION = "reconciliation"


def connect(config: QueryConfig) -> MllpClient:
    tls = config.tls.client_context() if config.tls else None
    return MllpClient(config.host, config.port, timeout=config.timeout_seconds, tls=tls)


def baseline_start(subject: EnrolledSubject, study: Study) -> datetime:
    """Midnight (study time zone) of the first day of the study's earliest visit window."""
    first_day = min((v.first_day for v in study.visits), default=0)
    day = subject.day0 + timedelta(days=first_day)
    return datetime.combine(day, time(0), tzinfo=study.timezone)


def current_subjects(intake: Intake) -> list[EnrolledSubject]:
    return [s for s in intake.registry.subjects() if s.withdrawn_at is None]


class QuerySource:
    """Pulls results from a LIS that answers queries. ``poll`` is one scheduled run."""

    def __init__(
        self,
        config: QueryConfig,
        *,
        events: Events | None = None,
        clock: Clock | None = None,
        ids: Callable[[], str] | None = None,
        connector: Connect = connect,
    ) -> None:
        self.config = config
        self.events = events or Events()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.ids = ids or control_ids("TQ")
        self.connector = connector
        self.dialect = Dialect(
            protocol=config.protocol,
            version=config.version,
            query_name=config.query_name,
            application=config.application,
            facility=config.facility,
            lis_application=config.lis_application,
            lis_facility=config.lis_facility,
            where_subject=config.where_subject,
        )

    def poll(self, intake: Intake) -> int:
        """Ask for every current subject's new results; return the messages handed in."""
        subjects = current_subjects(intake)
        if not subjects:
            return 0
        total = 0
        with self.connector(self.config) as client:
            for subject in subjects:
                try:
                    total += self._pull(intake, client, subject)
                except QueryError as exc:  # this subject waits for the next run; others go on
                    self.report_refused(subject, exc)
        self.events.emit("query.polled", subjects=len(subjects), total=total)
        return total

    def reconciliation(self) -> Reconciliation | None:
        """The reconciliation pull as a scheduled source (None when switched off)."""
        return Reconciliation(self) if self.config.reconcile_every_hours > 0 else None

    def watermark(self, intake: Intake, subject_id: str) -> datetime | None:
        value = intake.store.get_state(self.config.name, WATERMARK + subject_id)
        return datetime.fromisoformat(value) if value else None

    def _pull(self, intake: Intake, client: MllpClient, subject: EnrolledSubject) -> int:
        until = self.clock()
        mark = self.watermark(intake, subject.subject_id)
        overlap = timedelta(minutes=self.config.overlap_minutes)
        since = mark - overlap if mark else baseline_start(subject, intake.registry.study)
        found = self.fetch(client, subject, since, until)
        if found:
            accepted = intake.accept(found)
            kept = sum(a.kept for a in accepted)
            self.events.emit(
                "query.accepted", subject=subject.subject_id, messages=len(found), kept=kept
            )
        intake.store.set_state(self.config.name, WATERMARK + subject.subject_id, until.isoformat())
        return len(found)

    def fetch(
        self, client: MllpClient, subject: EnrolledSubject, since: datetime, until: datetime
    ) -> list[Incoming]:
        """Every result of ``subject`` the LIS reports in ``[since, until)``, as inbox items."""
        found: list[Incoming] = []
        for hospital_id in self._asked(subject):
            found += self._ask(client, hospital_id, since, until)
        return found

    def report_refused(self, subject: EnrolledSubject, exc: QueryError) -> None:
        self.events.emit(
            "query.refused",
            level=logging.WARNING,
            subject=subject.subject_id,
            error=type(exc).__name__,
        )

    def _asked(self, subject: EnrolledSubject) -> list[HospitalId]:
        wanted = self.config.authorities
        return [h for h in subject.hospital_ids if not wanted or h.authority.upper() in wanted]

    def _ask(
        self, client: MllpClient, hospital_id: HospitalId, since: datetime, until: datetime
    ) -> list[Incoming]:
        query = PatientQuery(hospital_id.value, hospital_id.authority, since, until, self.ids())
        found: list[Incoming] = []
        continuation = ""
        for _page in range(self.config.max_pages):
            control_id = self.ids()  # every message its own MSH-10, continuations too
            request = build_query(
                self.dialect, query, self.clock(), control_id=control_id, continuation=continuation
            )
            answer = read_answer(client.request(request), control_id, query.query_id)
            for message in answer.messages:
                found += incoming(message, f"{self.config.name}:{query.query_id}")
            continuation = answer.continuation
            if not continuation:
                break
        else:  # the watermark must not pass results not yet read
            raise QueryError(
                f"query {query.query_id} still had more after {self.config.max_pages} pages; "
                "raise sources.query.max_pages"
            )
        return found


class Reconciliation:
    """The reconciliation pull, scheduled as a source of its own: each ``poll`` (every
    ``poll_seconds``) runs it when the cadence says a run is due, else does nothing.

    ``poll`` returns how many results the run found that the incremental pulls had missed
    (0 when all is well, or when no run was due).
    """

    def __init__(self, source: QuerySource) -> None:
        self.source = source
        self.config = source.config
        self.events = source.events

    def cadence(self, study: Study) -> Cadence:
        every = timedelta(hours=self.config.reconcile_every_hours)
        return Cadence(every, self.config.reconcile_at, study.timezone)

    def record(self, store: Store) -> Record:
        return Record.from_json(store.get_state(RECONCILIATION, self.config.name))

    def poll(self, intake: Intake) -> int:
        now = self.source.clock()
        record = self.record(intake.store)
        if not self.cadence(intake.registry.study).due(record.last_started, now):
            return 0
        return self.run(intake)

    def run(self, intake: Intake) -> int:
        """One reconciliation of every current subject, now; the results it found missed."""
        started = self.source.clock()
        subjects = current_subjects(intake)
        checked = refused = missed = 0
        if subjects:
            with self.source.connector(self.config) as client:
                for subject in subjects:
                    try:
                        found = self._reconcile(intake, client, subject)
                    except QueryError as exc:  # the others go on; counted in the record
                        self.source.report_refused(subject, exc)
                        refused += 1
                        continue
                    checked += found[0]
                    missed += found[1]
        record = self.record(intake.store).completed(
            started, self.source.clock(), len(subjects), checked, refused
        )
        intake.store.set_state(RECONCILIATION, self.config.name, record.to_json())
        self.events.emit(
            "query.reconciliation",
            level=logging.WARNING if record.missed else logging.INFO,
            subjects=len(subjects),
            checked=checked,
            missed=record.missed,
            refused=refused,
        )
        return missed

    def _reconcile(
        self, intake: Intake, client: MllpClient, subject: EnrolledSubject
    ) -> tuple[int, int]:
        """(results returned, results new to the inbox) for one subject."""
        mark = self.source.watermark(intake, subject.subject_id)
        if mark is None:  # never pulled: its first incremental pull asks the whole window
            return 0, 0
        days = self.config.reconcile_lookback_days
        asked = window(
            baseline_start(subject, intake.registry.study),
            mark,
            timedelta(minutes=self.config.overlap_minutes),
            timedelta(days=days) if days > 0 else None,
        )
        if asked is None:
            return 0, 0
        found = self.source.fetch(client, subject, *asked)
        if not found:
            return 0, 0
        new = sum(1 for a in intake.accept(found) if a.received is not None and a.received.new)
        if new:
            self._missed(intake.store, subject, new)
        return len(found), new

    def _missed(self, store: Store, subject: EnrolledSubject, new: int) -> None:
        """Count ``new`` missed results at once: durable (status) and as a metric."""
        store.set_state(RECONCILIATION, self.config.name, self.record(store).found(new).to_json())
        # One <source>.accepted per batch handed in (adapter/sources/events.py): only the new
        # ones count as received; the rest were received before.
        self.events.emit("query.accepted", subject=subject.subject_id, messages=new, kept=new)
        self.events.emit(
            "query.reconciled", level=logging.WARNING, subject=subject.subject_id, missed=new
        )
