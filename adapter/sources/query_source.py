"""The LIS query pull: for each enrolled subject, ask the LIS for the results reported since
the subject's watermark, put them through the inbox door, then advance the watermark.

The first query of a subject goes back to the start of the study's first visit window
(baseline: day 0 - 14 days), so baseline results taken before enrolment arrive too. Each
later query starts ``overlap_minutes`` before the watermark (results the LIS files late are
not missed; the inbox deduplicates what comes twice). A watermark moves only after the
subject's results were committed, so a crash in between asks again and loses nothing.
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
from adapter.store.inbox import Incoming, incoming
from adapter.trial.enrolment import EnrolledSubject, HospitalId
from adapter.trial.study import Study

Clock = Callable[[], datetime]
Connect = Callable[[QueryConfig], MllpClient]
WATERMARK = "watermark:"


def connect(config: QueryConfig) -> MllpClient:
    tls = config.tls.client_context() if config.tls else None
    return MllpClient(config.host, config.port, timeout=config.timeout_seconds, tls=tls)


def baseline_start(subject: EnrolledSubject, study: Study) -> datetime:
    """Midnight (study time zone) of the first day of the study's earliest visit window."""
    first_day = min((v.first_day for v in study.visits), default=0)
    day = subject.day0 + timedelta(days=first_day)
    return datetime.combine(day, time(0), tzinfo=study.timezone)


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
        )

    def poll(self, intake: Intake) -> int:
        """Ask for every current subject's new results; return the messages handed in."""
        subjects = [s for s in intake.registry.subjects() if s.withdrawn_at is None]
        if not subjects:
            return 0
        total = 0
        with self.connector(self.config) as client:
            for subject in subjects:
                try:
                    total += self._pull(intake, client, subject)
                except QueryError as exc:  # this subject waits for the next run; others go on
                    self.events.emit(
                        "query.refused",
                        level=logging.WARNING,
                        subject=subject.subject_id,
                        error=type(exc).__name__,
                    )
        self.events.emit("query.polled", subjects=len(subjects), total=total)
        return total

    def reconciliation(self) -> object | None:
        """The reconciliation pull as a scheduled source (None when switched off)."""
        return None

    def watermark(self, intake: Intake, subject_id: str) -> datetime | None:
        value = intake.store.get_state(self.config.name, WATERMARK + subject_id)
        return datetime.fromisoformat(value) if value else None

    def _pull(self, intake: Intake, client: MllpClient, subject: EnrolledSubject) -> int:
        until = self.clock()
        mark = self.watermark(intake, subject.subject_id)
        overlap = timedelta(minutes=self.config.overlap_minutes)
        since = mark - overlap if mark else baseline_start(subject, intake.registry.study)
        found: list[Incoming] = []
        for hospital_id in self._asked(subject):
            found += self._ask(client, hospital_id, since, until)
        if found:
            accepted = intake.accept(found)
            kept = sum(a.kept for a in accepted)
            self.events.emit(
                "query.accepted", subject=subject.subject_id, messages=len(found), kept=kept
            )
        intake.store.set_state(self.config.name, WATERMARK + subject.subject_id, until.isoformat())
        return len(found)

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
            request = build_query(self.dialect, query, self.clock(), continuation)
            answer = read_answer(client.request(request), query.query_id)
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
