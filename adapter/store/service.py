"""The service's tables (migration 0004; the quarantine, 0007): :class:`ServiceStore`.

:class:`ServiceStore` wraps a :class:`~adapter.store.Store` and adds what the scheduled jobs
need: the inbox claim and the outbox here, and, from the bases it gathers, the quarantine
(:mod:`adapter.store.quarantine`), the dead letters (:mod:`adapter.store.deadletters`) and
the leases and job runs (:mod:`adapter.store.jobs`). Every method is one short
transaction, except :meth:`ServiceStore.claim_inbox`: it holds one write transaction while
the caller translates the claimed messages, so that writing their outbox rows, their held
results and their status is one commit.

Workers share the queues safely. Inbox rows are claimed with ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL (SQLite has a single writer: ``BEGIN IMMEDIATE``). Outbox rows are claimed with
a row lease (``claimed_by``/``claimed_until``) by whole subjects, under a PostgreSQL advisory
lock (SQLite: ``BEGIN IMMEDIATE``), so one subject's transactions are pushed by one worker,
in order; a worker that dies leaves its claim to expire.

A message whose processing or push failed is set aside in the quarantine, alone: its inbox
status becomes ``refused`` (processing) or its transactions ``dead`` (push), and its entry
records the error's class, reason and where. While an entry that ``holds`` is open, the same
subject's later transactions stay in the outbox (:meth:`ServiceStore.holds`); ``retry`` puts
the message back in the inbox, ``discard`` closes the entry with the operator's reason.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, exists, func, insert, select, text, update

from adapter.store.deadletters import DeadLetterStore
from adapter.store.held import HeldRow
from adapter.store.jobs import JobStore
from adapter.store.quarantine import Quarantined, QuarantineStore, set_aside
from adapter.store.schema import (
    DEAD,
    PENDING,
    PROCESSED,
    RECEIVED,
    SENT,
    dead_letters,
    held_results,
    messages,
    outbox,
    quarantine,
    subjects,
)
from adapter.store.store import Outcome, Store

_CLAIM_LOCK = 0x7472_6963  # "tric": serialises outbox claims on PostgreSQL


@dataclass(frozen=True, slots=True)
class InboxMessage:
    """A claimed inbox row, to be processed."""

    row_id: int
    control_id: str
    raw: bytes
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Queued:
    """One transaction for the outbox."""

    message_id: int
    subject_id: str
    sequence: int
    kind: str  # results | subject
    bundle: str  # JSON


@dataclass(frozen=True, slots=True)
class Death:
    """A subject's death, learnt from an ADT message (recorded with the message)."""

    subject_id: str
    died_on: date


@dataclass(frozen=True, slots=True)
class Processed:
    """What processing a claimed batch wrote: statuses and held results, transactions,
    deaths, and the messages set aside."""

    outcomes: Sequence[Outcome]
    queued: Sequence[Queued]
    deaths: Sequence[Death] = ()
    quarantined: Sequence[Quarantined] = ()


@dataclass(frozen=True, slots=True)
class Candidate:
    """A pending outbox row, as the claim decides on it (no bundle)."""

    row_id: int
    subject_id: str
    sequence: int
    next_attempt_at: datetime
    claimed_by: str | None
    claimed_until: datetime | None


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A claimed outbox row, to be pushed."""

    row_id: int
    message_id: int
    subject_id: str
    sequence: int
    kind: str
    bundle: str
    attempts: int
    control_id: str = ""  # its message's MSH-10, to name it in errors


@dataclass(frozen=True, slots=True)
class Depths:
    """How much is waiting where."""

    inbox: int  # received, not yet processed
    outbox: int  # pending transactions
    retrying: int  # ... of which failed at least once
    dead_letters: int
    held: int  # open held results
    oldest_inbox: datetime | None  # received_at of the oldest message to process
    oldest_outbox: datetime | None  # created_at of the oldest pending transaction
    by_status: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0  # open quarantine entries
    held_back: int = 0  # pending transactions waiting behind a quarantined message


class InboxClaim:
    """Claimed inbox rows inside an open write transaction; :meth:`finish` writes the
    outcome in the same transaction."""

    def __init__(self, store: Store, conn: Connection, rows: list[InboxMessage]) -> None:
        self._store = store
        self._conn = conn
        self.messages = rows

    def finish(self, processed: Processed, now: datetime) -> None:
        conn, store = self._conn, self._store
        if processed.outcomes:
            store._set_status(conn, processed.outcomes, now)
            held: list[tuple[int, HeldRow]] = [
                (o.row_id, row) for o in processed.outcomes for row in o.held
            ]
            if held:
                store._upsert_held(conn, held, now)
            done = [o for o in processed.outcomes if o.status == PROCESSED]
            for outcome in done:
                if outcome.held:
                    store._resolve(conn, outcome, now)
            self._resolve_all([o.row_id for o in done if not o.held], now)
        for death in processed.deaths:
            conn.execute(
                update(subjects)
                .where(subjects.c.subject_id == death.subject_id)
                .values(died_on=death.died_on, status="off-study", updated_at=now)
            )
        if processed.queued:
            conn.execute(insert(outbox), [_outbox_values(q, now) for q in processed.queued])
        if processed.quarantined:
            set_aside(store, conn, processed.quarantined, now)

    def _resolve_all(self, row_ids: list[int], now: datetime) -> None:
        """Every held result of messages that now hold none is resolved: one statement per
        chunk, not one per message (those were most of the time of writing a batch)."""
        c = held_results.c
        for start in range(0, len(row_ids), _CHUNK):
            self._conn.execute(
                update(held_results)
                .where(c.message_id.in_(row_ids[start : start + _CHUNK]), c.resolved_at.is_(None))
                .values(resolved_at=now)
            )


_CHUNK = 500  # ids in one IN list (well under SQLite's and PostgreSQL's parameter limits)


def _outbox_values(queued: Queued, now: datetime) -> dict[str, Any]:
    return {
        "message_id": queued.message_id,
        "subject_id": queued.subject_id,
        "sequence": queued.sequence,
        "kind": queued.kind,
        "bundle": queued.bundle,
        "status": PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


class ServiceStore(QuarantineStore, DeadLetterStore, JobStore):
    """The service's tables over one store: the inbox claim and the outbox here; the
    quarantine, dead letters, leases and job runs from their modules' bases."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @property
    def postgres(self) -> bool:
        return self.store.engine.dialect.name == "postgresql"

    def now(self) -> datetime:
        return self.store._clock()

    # Processing: inbox -> outbox ---------------------------------------------------------

    @contextmanager
    def claim_inbox(self, limit: int) -> Iterator[InboxClaim]:
        """The oldest ``limit`` messages to process, locked until the block ends (commit)."""
        c = messages.c
        query = (
            select(c.id, c.control_id, c.raw, c.received_at)
            .where(c.status == RECEIVED)
            .order_by(c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self.store._writing() as conn:
            rows = [
                InboxMessage(r.id, r.control_id, r.raw or b"", r.received_at)
                for r in conn.execute(query)
            ]
            yield InboxClaim(self.store, conn, rows)

    # Pushing: claims on the outbox -------------------------------------------------------

    def candidates(self, conn: Connection) -> tuple[list[Candidate], int | None]:
        """Every pending row (no bundles), and the oldest inbox row still to process."""
        c = outbox.c
        rows = conn.execute(
            select(c.id, c.subject_id, c.sequence, c.next_attempt_at, c.claimed_by, c.claimed_until)
            .where(c.status == PENDING)
            .order_by(c.subject_id, c.sequence, c.id)
        ).all()
        barrier = conn.scalar(select(func.min(messages.c.id)).where(messages.c.status == RECEIVED))
        return [Candidate(*row) for row in rows], barrier

    @contextmanager
    def claiming(self) -> Iterator[Connection]:
        """A write transaction in which one worker at a time claims outbox rows."""
        with self.store._writing() as conn:
            if self.postgres:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CLAIM_LOCK})
            yield conn

    def claim(
        self, conn: Connection, ids: Sequence[int], holder: str, until: datetime
    ) -> list[OutboxRow]:
        """Lease ``ids`` to ``holder`` and return them with their bundles, in order."""
        if not ids:
            return []
        c = outbox.c
        conn.execute(
            update(outbox).where(c.id.in_(ids)).values(claimed_by=holder, claimed_until=until)
        )
        columns = (c.id, c.message_id, c.subject_id, c.sequence, c.kind, c.bundle, c.attempts)
        rows = conn.execute(
            select(*columns, messages.c.control_id)
            .join(messages, messages.c.id == c.message_id)
            .where(c.id.in_(ids))
            .order_by(c.subject_id, c.sequence, c.id)
        ).all()
        return [OutboxRow(*row) for row in rows]

    def mark_sent(self, row_ids: Sequence[int], holder: str) -> None:
        """Rows the server took, in one commit (a crash before it re-sends them: the writes
        are conditional, so a repeat changes nothing)."""
        self.finish_push(row_ids, (), holder)

    def finish_push(self, sent: Sequence[int], unsent: Sequence[int], holder: str) -> None:
        """The end of a push: ``sent`` rows marked, the claim on ``unsent`` ones given up,
        in one commit (one wait for the write lock, one fsync, per claimed batch)."""
        if not sent and not unsent:
            return
        with self.store._writing() as conn:
            if sent:
                self._mark_sent(conn, sent)
            if unsent:
                self._release(conn, unsent, holder)

    def _mark_sent(self, conn: Connection, row_ids: Sequence[int]) -> None:
        c = outbox.c
        conn.execute(
            update(outbox)
            .where(c.id.in_(row_ids))
            .values(
                status=SENT,
                sent_at=self.now(),
                last_error=None,
                claimed_by=None,
                claimed_until=None,
            )
        )

    def retry_later(self, row: OutboxRow, holder: str, error: str, at: datetime) -> None:
        self._finish_claim(
            row.row_id, holder, attempts=row.attempts + 1, last_error=error, next_attempt_at=at
        )

    def mark_dead(self, row: OutboxRow, holder: str, status: int | None, outcome: str) -> None:
        """Move a refused transaction to the dead letters (one transaction)."""
        now = self.now()
        with self.store._writing() as conn:
            conn.execute(
                update(outbox)
                .where(outbox.c.id == row.row_id)
                .values(
                    status=DEAD,
                    attempts=row.attempts + 1,
                    last_error=outcome,
                    claimed_by=None,
                    claimed_until=None,
                )
            )
            conn.execute(
                insert(dead_letters).values(
                    outbox_id=row.row_id, http_status=status, outcome=outcome, created_at=now
                )
            )

    def release(self, ids: Sequence[int], holder: str) -> None:
        """Give up the claim on rows not pushed (another worker may take them)."""
        if not ids:
            return
        with self.store._writing() as conn:
            self._release(conn, ids, holder)

    @staticmethod
    def _release(conn: Connection, ids: Sequence[int], holder: str) -> None:
        c = outbox.c
        conn.execute(
            update(outbox)
            .where(c.id.in_(ids), c.claimed_by == holder)
            .values(claimed_by=None, claimed_until=None)
        )

    def bring_forward(self) -> int:
        """Make every pending row that waits for a retry due now (the FHIR server answers
        again after an outage: :mod:`adapter.service.outage`); how many."""
        c, now = outbox.c, self.now()
        with self.store._writing() as conn:
            done = conn.execute(
                update(outbox)
                .where(c.status == PENDING, c.attempts > 0, c.next_attempt_at > now)
                .values(next_attempt_at=now)
            )
        return int(done.rowcount or 0)

    def _finish_claim(self, row_id: int, holder: str, **values: Any) -> None:
        c = outbox.c
        with self.store._writing() as conn:
            conn.execute(
                update(outbox)
                .where(c.id == row_id)
                .values(**values, claimed_by=None, claimed_until=None)
            )

    # Replay and retention ------------------------------------------------------------------

    def replay(self, since: datetime) -> int:
        """Queue again the processed messages received since ``since`` whose bytes are kept,
        and the quarantined ones among them (their entries closed as retried)."""
        c = messages.c
        with self.store._writing() as conn:
            set_aside = list(
                conn.scalars(
                    select(quarantine.c.id)
                    .join(messages, messages.c.id == quarantine.c.message_id)
                    .where(
                        quarantine.c.resolved_at.is_(None),
                        c.received_at >= since,
                        c.raw.is_not(None),
                    )
                )
            )
            again = self.requeue_quarantined(conn, set_aside)
            result = conn.execute(
                update(messages)
                .where(c.status == PROCESSED, c.received_at >= since, c.raw.is_not(None))
                .values(status=RECEIVED)
            )
        return int(result.rowcount) + again

    def requeue(self, row_ids: Sequence[int]) -> int:
        """Put processed messages back in the inbox queue (raw bytes kept); how many."""
        if not row_ids:
            return 0
        c = messages.c
        with self.store._writing() as conn:
            done = conn.execute(
                update(messages)
                .where(c.id.in_(row_ids), c.status == PROCESSED, c.raw.is_not(None))
                .values(status=RECEIVED)
            )
        return int(done.rowcount or 0)

    def purge_raw(self, before: datetime) -> int:
        """Forget the bytes of messages received before ``before`` that are finished with
        (never of a message still to process), and the sent transactions of those."""
        c = messages.c
        # A quarantined message keeps its bytes until it is retried or discarded: without
        # them it could never be retried (docs/operations/quarantine.md).
        set_aside = exists().where(
            quarantine.c.message_id == c.id, quarantine.c.resolved_at.is_(None)
        )
        finished = and_(c.status != RECEIVED, ~set_aside)
        with self.store._writing() as conn:
            result = conn.execute(
                update(messages)
                .where(finished, c.received_at < before, c.raw.is_not(None))
                .values(raw=None)
            )
            conn.execute(delete(outbox).where(outbox.c.status == SENT, outbox.c.sent_at < before))
        return int(result.rowcount)

    def subjects_sent_since(self, since: datetime | None) -> list[str]:
        """Subjects with results sent to the FHIR server after ``since`` (all when None)."""
        c = outbox.c
        query = select(c.subject_id).distinct().where(c.status == "sent", c.subject_id != "")
        if since is not None:
            query = query.where(c.sent_at > since)
        with self.store._reading() as conn:
            return sorted(str(s) for s in conn.scalars(query))

    # Queue depths ------------------------------------------------------------------------

    def depths(self) -> Depths:
        m, o = messages.c, outbox.c
        with self.store._reading() as conn:
            by_status: dict[Any, Any] = dict(
                conn.execute(select(m.status, func.count()).group_by(m.status)).all()
            )
            pending = conn.execute(
                select(func.count(), func.min(o.created_at)).where(o.status == PENDING)
            ).one()
            retrying = conn.scalar(select(func.count()).where(o.status == PENDING, o.attempts > 0))
            dead = conn.scalar(
                select(func.count())
                .select_from(dead_letters)
                .where(dead_letters.c.retried_at.is_(None))
            )
            held = conn.scalar(
                select(func.count())
                .select_from(held_results)
                .where(held_results.c.resolved_at.is_(None))
            )
            oldest = conn.scalar(select(func.min(m.received_at)).where(m.status == RECEIVED))
            quarantined = conn.scalar(
                select(func.count())
                .select_from(quarantine)
                .where(quarantine.c.resolved_at.is_(None))
            )
            held_back = sum(len(s) for s in self.behind(conn).values())
        return Depths(
            inbox=int(by_status.get(RECEIVED, 0)),
            outbox=int(pending[0]),
            retrying=int(retrying or 0),
            dead_letters=int(dead or 0),
            held=int(held or 0),
            oldest_inbox=oldest,
            oldest_outbox=pending[1],
            by_status={str(k): int(v) for k, v in by_status.items()},
            quarantined=int(quarantined or 0),
            held_back=held_back,
        )

    def ping(self) -> None:
        """Raise StoreError unless the store answers."""
        with self.store._reading() as conn:
            conn.execute(select(1))
