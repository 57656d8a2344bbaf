"""Leases and job runs: which worker holds a job, and when each job (or source) last ran.

A base of :class:`~adapter.store.service.ServiceStore` (which gives ``store`` and ``now``),
as :class:`~adapter.store.quarantine.QuarantineStore` is. The scheduler takes a lease
before it runs the jobs (one scheduler per store); ``trialbridge status`` reads the runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from adapter.store.schema import job_runs, leases
from adapter.store.store import Store


@dataclass(frozen=True, slots=True)
class JobRun:
    """The last success and error of a job or source."""

    name: str
    holder: str | None
    last_success_at: datetime | None
    last_error_at: datetime | None
    last_error: str | None
    last_count: int
    runs: int


class JobStore:
    """The leases and the job runs."""

    store: Store

    def now(self) -> datetime:
        raise NotImplementedError  # ServiceStore's clock

    # Leases ------------------------------------------------------------------------------

    def acquire_lease(self, name: str, holder: str, ttl: timedelta) -> bool:
        """Take or renew lease ``name`` for ``holder``; False while another holds it."""
        now = self.now()
        c = leases.c
        with self.store._writing() as conn:
            statement = self.store._insert(leases).values(
                name=name, holder=holder, expires_at=now + ttl
            )
            conn.execute(statement.on_conflict_do_nothing(index_elements=[c.name]))
            row = conn.execute(
                select(c.holder, c.expires_at).where(c.name == name).with_for_update()
            ).one()
            if row.holder != holder and row.expires_at > now:
                return False
            conn.execute(
                update(leases).where(c.name == name).values(holder=holder, expires_at=now + ttl)
            )
        return True

    def release_lease(self, name: str, holder: str) -> None:
        c = leases.c
        with self.store._writing() as conn:
            conn.execute(delete(leases).where(c.name == name, c.holder == holder))

    def lease_holder(self, name: str) -> tuple[str, datetime] | None:
        c = leases.c
        with self.store._reading() as conn:
            row = conn.execute(select(c.holder, c.expires_at).where(c.name == name)).first()
        return (row.holder, row.expires_at) if row else None

    # Job runs ----------------------------------------------------------------------------

    def record_run(self, name: str, holder: str, count: int, error: str | None = None) -> None:
        """Record a job's (or source's) run: its count, or its error."""
        now = self.now()
        c = job_runs.c
        done = {"last_error_at": now, "last_error": error} if error else {"last_success_at": now}
        with self.store._writing() as conn:
            statement = self.store._insert(job_runs).values(name=name, runs=0, last_count=0)
            conn.execute(statement.on_conflict_do_nothing(index_elements=[c.name]))
            conn.execute(
                update(job_runs)
                .where(c.name == name)
                .values(holder=holder, last_count=count, runs=c.runs + 1, **done)
            )

    def job_runs(self) -> list[JobRun]:
        c = job_runs.c
        with self.store._reading() as conn:
            rows = conn.execute(select(job_runs).order_by(c.name)).all()
        return [JobRun(*row) for row in rows]
