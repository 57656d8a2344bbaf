"""The quarantine (migration 0007): messages set aside because processing or pushing them
failed, one entry per message, and what the operator's commands do with them.

:class:`QuarantineStore` is part of :class:`~adapter.store.service.ServiceStore` (its base):
setting a message aside is written in the same transaction as the rest of its batch
(:func:`set_aside`, from the inbox claim), or alone; :meth:`QuarantineStore.holds` tells the
outbox claim which subjects wait behind a quarantined message; ``retry`` puts messages back
in the inbox, ``discard`` closes entries with the operator's reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update

from adapter.store.schema import (
    DEAD,
    DISCARDED,
    PENDING,
    RECEIVED,
    REFUSED,
    RETRIED,
    messages,
    outbox,
    quarantine,
)
from adapter.store.store import Store


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A message to set aside: why, where, and whether it holds back its subject."""

    message_id: int
    stage: str  # process | push
    subject_id: str  # "" when not known
    holds: bool  # the subject's later transactions wait behind it
    error_class: str
    reason: str
    location: str | None
    outbox_id: int | None = None  # the transaction whose push failed


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    """A quarantined message as the operator sees it (never its content)."""

    entry_id: int
    message_id: int
    control_id: str  # MSH-10
    sender: str  # MSH-3@MSH-4
    received_at: datetime
    stage: str
    subject_id: str
    holds: bool
    error_class: str
    reason: str
    location: str | None
    times: int  # how many times it was set aside (again after a retry)
    first_seen: datetime
    last_seen: datetime
    resolved_at: datetime | None
    resolution: str | None  # retried | discarded
    note: str | None  # the operator's reason for a discard
    raw_kept: bool  # False once the bytes were purged: it cannot be retried
    held_back: int = 0  # the subject's later transactions waiting behind it


@dataclass(frozen=True, slots=True)
class Retried:
    """What ``retry`` did: entries whose messages are back in the inbox, and those that
    could not be (bytes purged, or not open)."""

    retried: list[int]
    unavailable: list[int]


def set_aside(
    store: Store, conn: Connection, entries: Sequence[Quarantined], now: datetime
) -> None:
    """Open (or open again, after a retry) each message's quarantine entry."""
    c = quarantine.c
    for entry in entries:
        values = {
            "stage": entry.stage,
            "outbox_id": entry.outbox_id,
            "subject_id": entry.subject_id,
            "holds": entry.holds,
            "error_class": entry.error_class,
            "reason": entry.reason,
            "location": entry.location,
            "last_seen": now,
        }
        statement = store._insert(quarantine).values(
            message_id=entry.message_id, first_seen=now, times=1, **values
        )
        again = {"times": c.times + 1, "resolved_at": None, "resolution": None, "note": None}
        conn.execute(
            statement.on_conflict_do_update(index_elements=[c.message_id], set_={**values, **again})
        )


def open_holds() -> Any:
    """Per subject, the first message whose open quarantine entry holds it back."""
    q = quarantine.c
    return (
        select(q.subject_id, func.min(q.message_id).label("first"))
        .where(q.resolved_at.is_(None), q.holds.is_(True), q.subject_id != "")
        .group_by(q.subject_id)
        .subquery()
    )


class QuarantineStore:
    """The quarantine's reads and writes (a base of ServiceStore, which gives ``store`` and
    ``now``)."""

    store: Store

    def now(self) -> datetime:
        raise NotImplementedError  # ServiceStore's clock

    def quarantine_alone(self, entry: Quarantined, reason: str) -> None:
        """Set one message aside in a transaction of its own (when writing its outcome with
        its batch failed): refused, with its entry."""
        now = self.now()
        with self.store._writing() as conn:
            conn.execute(
                update(messages)
                .where(messages.c.id == entry.message_id)
                .values(status=REFUSED, reason=reason, processed_at=now)
            )
            set_aside(self.store, conn, [entry], now)

    def quarantine_push(self, entry: Quarantined) -> None:
        """Set aside a message whose transaction could not be pushed: every transaction of
        it still pending is dead (a retry processes the message again, whole)."""
        c = outbox.c
        with self.store._writing() as conn:
            conn.execute(
                update(outbox)
                .where(c.message_id == entry.message_id, c.status == PENDING)
                .values(status=DEAD, last_error=entry.reason, claimed_by=None, claimed_until=None)
            )
            set_aside(self.store, conn, [entry], self.now())

    @staticmethod
    def holds(conn: Connection) -> dict[str, int]:
        """Subjects held back by a quarantined message: its message id (the subject's
        transactions from that message on wait)."""
        holds = open_holds()
        return {str(s): int(m) for s, m in conn.execute(select(holds.c.subject_id, holds.c.first))}

    def quarantine_entries(self, *, include_resolved: bool = False) -> list[QuarantineEntry]:
        """The quarantine, oldest first: the open entries (and the closed ones, if asked)."""
        query = self._quarantine_query()
        if not include_resolved:
            query = query.where(quarantine.c.resolved_at.is_(None))
        with self.store._reading() as conn:
            rows = conn.execute(query.order_by(quarantine.c.id)).all()
            behind = self.behind(conn)
        return [_entry(row, behind) for row in rows]

    def quarantine_entry(self, entry_id: int) -> QuarantineEntry | None:
        with self.store._reading() as conn:
            row = conn.execute(self._quarantine_query().where(quarantine.c.id == entry_id)).first()
            behind = self.behind(conn)
        return _entry(row, behind) if row else None

    @staticmethod
    def _quarantine_query() -> Any:
        q, m = quarantine.c, messages.c
        return select(
            q.id, q.message_id, m.control_id, m.sender, m.received_at, q.stage, q.subject_id,
            q.holds, q.error_class, q.reason, q.location, q.times, q.first_seen, q.last_seen,
            q.resolved_at, q.resolution, q.note, m.raw.is_not(None).label("raw_kept"),
        ).join(messages, m.id == q.message_id)  # fmt: skip

    @staticmethod
    def behind(conn: Connection) -> dict[str, list[int]]:
        """The sequences of pending transactions of held subjects (to count what waits)."""
        holds = open_holds()
        o = outbox.c
        rows = conn.execute(
            select(o.subject_id, o.sequence)
            .join(holds, holds.c.subject_id == o.subject_id)
            .where(o.status == PENDING, o.sequence >= holds.c.first)
        ).all()
        behind: dict[str, list[int]] = {}
        for subject, sequence in rows:
            behind.setdefault(str(subject), []).append(int(sequence))
        return behind

    def retry_quarantined(self, entry_ids: Sequence[int]) -> Retried:
        """Put the open entries' messages back in the inbox, to go through the same stages
        again (the entries are closed as retried; a new failure opens them again)."""
        q = quarantine.c
        with self.store._writing() as conn:
            rows = conn.execute(
                select(q.id, messages.c.raw.is_not(None))
                .join(messages, messages.c.id == q.message_id)
                .where(q.id.in_(entry_ids), q.resolved_at.is_(None))
            ).all()
            kept = [int(i) for i, has_raw in rows if has_raw]
            self.requeue_quarantined(conn, kept)
        return Retried(kept, sorted(set(entry_ids) - set(kept)))

    def requeue_quarantined(self, conn: Connection, entry_ids: Sequence[int]) -> int:
        if not entry_ids:
            return 0
        q = quarantine.c
        message_ids = select(q.message_id).where(q.id.in_(entry_ids)).scalar_subquery()
        done = conn.execute(
            update(messages)
            .where(messages.c.id.in_(message_ids), messages.c.raw.is_not(None))
            .values(status=RECEIVED, reason=None)
        )
        conn.execute(
            update(quarantine)
            .where(q.id.in_(entry_ids))
            .values(resolved_at=self.now(), resolution=RETRIED)
        )
        return int(done.rowcount or 0)

    def discard_quarantined(self, entry_ids: Sequence[int], note: str) -> list[int]:
        """Close open entries for good, with the operator's reason; the messages stay
        refused, and their subjects' later transactions go on. The ids closed."""
        q = quarantine.c
        with self.store._writing() as conn:
            ids = [
                int(i)
                for i in conn.scalars(
                    select(q.id).where(q.id.in_(entry_ids), q.resolved_at.is_(None))
                )
            ]
            if ids:
                conn.execute(
                    update(quarantine)
                    .where(q.id.in_(ids))
                    .values(resolved_at=self.now(), resolution=DISCARDED, note=note)
                )
        return ids


def _entry(row: Any, behind: dict[str, list[int]]) -> QuarantineEntry:
    entry = QuarantineEntry(*row)
    if entry.resolved_at is not None or not entry.holds:
        return entry
    waiting = sum(1 for seq in behind.get(entry.subject_id, ()) if seq > entry.message_id)
    return replace(entry, held_back=waiting)
