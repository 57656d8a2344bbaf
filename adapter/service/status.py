"""What ``trialbridge status`` shows: queue depths, lag, the scheduler lease, and the last
success and error of each job and source. Pure: built from what the store returned."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from adapter.store.service import Depths, JobRun


@dataclass(frozen=True, slots=True)
class Status:
    """The service's state as the store has it."""

    now: datetime
    depths: Depths
    runs: list[JobRun]
    lease: tuple[str, datetime] | None  # holder and expiry of the scheduler lease
    # The LIS query's last reconciliation pull per query source (adapter.sources.query_source)
    reconciliations: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def lag_seconds(self, since: datetime | None) -> float | None:
        return None if since is None else max((self.now - since).total_seconds(), 0.0)

    def as_dict(self) -> dict[str, Any]:
        d = self.depths
        holder, expires = self.lease or (None, None)
        return {
            "queues": {
                "inbox": d.inbox,
                "outbox": d.outbox,
                "retrying": d.retrying,
                "dead_letters": d.dead_letters,
                "held": d.held,
            },
            "messages": d.by_status,
            "lag_seconds": {
                "inbox": self.lag_seconds(d.oldest_inbox),
                "outbox": self.lag_seconds(d.oldest_outbox),
            },
            "scheduler": {
                "holder": holder,
                "expires_at": _iso(expires),
                "active": expires is not None and expires > self.now,
            },
            "jobs": {run.name: _run(run) for run in self.runs},
            "reconciliation": {name: dict(r) for name, r in self.reconciliations.items()},
        }


def _run(run: JobRun) -> dict[str, Any]:
    return {
        "last_success_at": _iso(run.last_success_at),
        "last_error_at": _iso(run.last_error_at),
        "last_error": run.last_error,
        "last_count": run.last_count,
        "runs": run.runs,
        "worker": run.holder,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def render(status: Status) -> list[str]:
    """The status as lines of text."""
    data = status.as_dict()
    q, lag, sched = data["queues"], data["lag_seconds"], data["scheduler"]
    lines = [
        f"Inbox: {q['inbox']} to process (oldest {_age(lag['inbox'])}); "
        f"outbox: {q['outbox']} to push, {q['retrying']} retrying (oldest {_age(lag['outbox'])})",
        f"Dead letters: {q['dead_letters']}; held results: {q['held']}",
        "Scheduler: "
        + (
            f"active ({sched['holder']}, lease until {sched['expires_at']})"
            if sched["active"]
            else "not running (no live lease)"
        ),
    ]
    for name, run in data["jobs"].items():
        error = (
            f"; last error {run['last_error_at']}: {run['last_error']}" if run["last_error"] else ""
        )
        lines.append(
            f"  {name:<24} last success {run['last_success_at'] or 'never'} "
            f"({run['last_count']} item(s)){error}"
        )
    lines += [_reconciliation(name, r) for name, r in data["reconciliation"].items()]
    return lines


def _reconciliation(name: str, r: Mapping[str, Any]) -> str:
    """Results the LIS reconciliation found that the incremental pulls had missed: 0 when
    all is well (docs/operations/lis-query.md says what a non-zero count means)."""
    warning = " (should be 0: see docs/operations/lis-query.md)" if r.get("missed_total") else ""
    return (
        f"LIS reconciliation {name}: last run {r.get('at')}: {r.get('missed')} result(s) the "
        f"incremental pull had missed, {r.get('missed_total')} in all{warning}"
    )


def _age(seconds: float | None) -> str:
    return "none" if seconds is None else f"{seconds:.0f} s"
