"""Dead letters: the transactions the FHIR server refused (4xx), with its OperationOutcome.

A base of :class:`~adapter.store.service.ServiceStore` (which gives ``store`` and ``now``),
as :class:`~adapter.store.quarantine.QuarantineStore` is: the push marks an outbox row dead
(:meth:`ServiceStore.mark_dead`); this module lists the letters and puts them back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from adapter.store.schema import DEAD, PENDING, dead_letters, messages, outbox
from adapter.store.store import Store


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A transaction the FHIR server refused (4xx), with its OperationOutcome."""

    letter_id: int
    outbox_id: int
    message_id: int
    control_id: str
    subject_id: str
    http_status: int | None
    outcome: str
    created_at: datetime
    bundle: str


class DeadLetterStore:
    """The dead letters' reads and their retry."""

    store: Store

    def now(self) -> datetime:
        raise NotImplementedError  # ServiceStore's clock

    def dead_letters(self, *, include_retried: bool = False) -> list[DeadLetter]:
        query = self._dead_query()
        if not include_retried:
            query = query.where(dead_letters.c.retried_at.is_(None))
        with self.store._reading() as conn:
            return [DeadLetter(*row) for row in conn.execute(query.order_by(dead_letters.c.id))]

    def dead_letter(self, letter_id: int) -> DeadLetter | None:
        query = self._dead_query().where(dead_letters.c.id == letter_id)
        with self.store._reading() as conn:
            row = conn.execute(query).first()
        return DeadLetter(*row) if row else None

    @staticmethod
    def _dead_query() -> Any:
        d, o = dead_letters.c, outbox.c
        return (
            select(
                d.id,
                d.outbox_id,
                o.message_id,
                messages.c.control_id,
                o.subject_id,
                d.http_status,
                d.outcome,
                d.created_at,
                o.bundle,
            )
            .join(outbox, outbox.c.id == d.outbox_id)
            .join(messages, messages.c.id == o.message_id)
        )

    def retry_dead(self, letter_ids: Sequence[int]) -> int:
        """Put dead letters back in the outbox, to be pushed at once; how many were."""
        now = self.now()
        d = dead_letters.c
        with self.store._writing() as conn:
            outbox_ids = list(
                conn.scalars(
                    select(d.outbox_id).where(d.id.in_(letter_ids), d.retried_at.is_(None))
                )
            )
            conn.execute(update(dead_letters).where(d.id.in_(letter_ids)).values(retried_at=now))
            conn.execute(
                update(outbox)
                .where(outbox.c.id.in_(outbox_ids), outbox.c.status == DEAD)
                .values(status=PENDING, attempts=0, next_attempt_at=now, last_error=None)
            )
        return len(outbox_ids)
