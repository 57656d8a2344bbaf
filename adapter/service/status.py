"""What ``trialbridge status`` shows: queue depths and ages, the scheduler lease, the last
success and the last error of each job, each source's health, and the list of what needs a
person. Pure: built from what the store (and the source folders) returned.

``status`` is also a monitoring check: its exit status is :data:`EXIT_OK` when nothing needs
a person and :data:`EXIT_ATTENTION` when something does (the ``attention`` list says what).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from adapter.store.jobs import JobRun
from adapter.store.service import Depths

EXIT_OK = 0  # nothing needs a person
EXIT_ATTENTION = 3  # something needs a person: see "attention" (1 and 2 are click's errors)


@dataclass(frozen=True, slots=True)
class Limits:
    """When a waiting item or a silent source needs a person (``service.alerts``)."""

    pending_seconds: float = 1800.0  # the oldest inbox / outbox item
    silent_seconds: Mapping[str, float] = field(default_factory=dict)  # per source
    stale_seconds: float = 60.0  # a source's published health older than this: unknown


@dataclass(frozen=True, slots=True)
class Status:
    """The service's state as the store has it."""

    now: datetime
    depths: Depths
    runs: list[JobRun]
    lease: tuple[str, datetime] | None  # holder and expiry of the scheduler lease
    # The LIS query's last reconciliation pull per query source (adapter.sources.query_source)
    reconciliations: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # What the running service published of each source (adapter.service.health)
    health: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # What this command found itself per configured source: error_files, watermark_lag_seconds
    sources: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    # The open quarantine entries, oldest first (adapter.service.quarantine.entry_json)
    quarantine: Sequence[Mapping[str, Any]] = ()

    def lag_seconds(self, since: datetime | None) -> float | None:
        return None if since is None else max((self.now - since).total_seconds(), 0.0)

    @property
    def active(self) -> bool:
        return self.lease is not None and self.lease[1] > self.now

    def as_dict(self) -> dict[str, Any]:
        d = self.depths
        holder, expires = self.lease or (None, None)
        data = {
            "queues": {
                "inbox": d.inbox,
                "outbox": d.outbox,
                "retrying": d.retrying,
                "dead_letters": d.dead_letters,
                "held": d.held,
                "quarantined": _quarantined(d),
                "held_back": int(getattr(d, "held_back", 0) or 0),
            },
            "quarantine": list(self.quarantine),
            "messages": d.by_status,
            "lag_seconds": {
                "inbox": self.lag_seconds(d.oldest_inbox),
                "outbox": self.lag_seconds(d.oldest_outbox),
            },
            "scheduler": {"holder": holder, "expires_at": _iso(expires), "active": self.active},
            "jobs": {run.name: _run(run) for run in self.runs},
            "sources": self._sources(),
            "reconciliation": {name: dict(r) for name, r in self.reconciliations.items()},
        }
        data["attention"] = attention(self, data)
        return data

    def exit_code(self) -> int:
        return EXIT_ATTENTION if self.as_dict()["attention"] else EXIT_OK

    def _sources(self) -> dict[str, dict[str, Any]]:
        names = sorted({*self.sources, *self.health})
        return {name: self._source(name) for name in names}

    def _source(self, name: str) -> dict[str, Any]:
        found = dict(self.sources.get(name, {}))
        record = self.health.get(name)
        checked = _moment(record.get("checked_at")) if record else None
        age = self.lag_seconds(checked)
        fresh = age is not None and age <= self.limits.stale_seconds
        up = record.get("up") if record and fresh and self.active else None
        last = _moment(record.get("last_message_at")) if record else None
        silent_limit = self.limits.silent_seconds.get(name)
        return {
            **found,
            "up": up,  # None: not known (the service is not running, or not yet)
            "problem": record.get("problem") if record else None,
            "address": record.get("address") if record else None,
            "last_message_at": _iso(last),
            "silent_seconds": self.lag_seconds(last),
            "silent_limit_seconds": silent_limit,
            "received": record.get("received") if record else None,
            "detail": record.get("detail") if record else {},
            "checked_at": _iso(checked),
        }


def attention(status: Status, data: Mapping[str, Any]) -> list[str]:
    """What needs a person, one sentence each (empty: all is well)."""
    found: list[str] = []
    q, lag = data["queues"], data["lag_seconds"]
    if not status.active:
        found.append("the service is not running (no live scheduler lease): start it")
    for name, run in data["jobs"].items():
        if run["failing"]:
            found.append(
                f"job {name} is failing (last error {run['last_error_at']}, last success "
                f"{run['last_success_at'] or 'never'}): {run['last_error']}"
            )
    for name, source in data["sources"].items():
        found += _source_attention(name, source)
    for name, record in data["reconciliation"].items():
        if missed := (record.get("missed") or 0) + (record.get("pending_missed") or 0):
            found.append(
                f"LIS reconciliation {name}: its last run found {missed} result(s) the "
                "incremental pull had missed (released late or back-dated by the LIS; "
                "docs/operations/lis-query.md)"
            )
    if q["dead_letters"]:
        found.append(
            f"{q['dead_letters']} dead letter(s): the FHIR server refused them "
            "(trialbridge dead-letter list)"
        )
    if q["quarantined"]:
        found.append(
            f"{q['quarantined']} message(s) quarantined, {q['held_back']} later transaction(s) "
            "of their subjects waiting behind them (trialbridge quarantine list)"
        )
    limit = status.limits.pending_seconds
    for queue in ("inbox", "outbox"):
        age = lag[queue]
        if age is not None and age > limit:
            found.append(f"the oldest {queue} item waits for {_age(age)} (limit {_age(limit)})")
    return found


def _source_attention(name: str, source: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    if source.get("up") is False:
        found.append(f"source {name} is down: {source.get('problem')}")
    limit, silent = source.get("silent_limit_seconds"), source.get("silent_seconds")
    if limit and silent is not None and silent > limit:
        found.append(f"source {name} has sent nothing for {_age(silent)} (limit {_age(limit)})")
    if source.get("error_files"):
        found.append(f"source {name}: {source['error_files']} file(s) in its error folder")
    lag, poll = source.get("watermark_lag_seconds"), source.get("poll_seconds")
    if lag is not None and poll and lag > 3 * poll + 60:
        found.append(f"source {name}: the oldest watermark is {_age(lag)} behind")
    return found


def _quarantined(depths: Depths) -> int:
    # Quarantined messages (issue 12) are counted by the store once that lands.
    return int(getattr(depths, "quarantined", 0) or 0)


def _run(run: JobRun) -> dict[str, Any]:
    failing = run.last_error_at is not None and (
        run.last_success_at is None or run.last_error_at > run.last_success_at
    )
    return {
        "last_success_at": _iso(run.last_success_at),
        "last_error_at": _iso(run.last_error_at),
        "last_error": run.last_error,
        "failing": failing,
        "last_count": run.last_count,
        "runs": run.runs,
        "worker": run.holder,
    }


def _moment(value: Any) -> datetime | None:
    """A Unix time from a health record as an aware datetime."""
    if not isinstance(value, int | float):
        return None
    return datetime.fromtimestamp(value, UTC)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def render(status: Status) -> list[str]:
    """The status as lines of text."""
    data = status.as_dict()
    q, lag, sched = data["queues"], data["lag_seconds"], data["scheduler"]
    lines = [
        f"Inbox: {q['inbox']} to process (oldest {_age(lag['inbox'])}); "
        f"outbox: {q['outbox']} to push, {q['retrying']} retrying (oldest {_age(lag['outbox'])})",
        f"Dead letters: {q['dead_letters']}; quarantined messages: {q['quarantined']}; "
        f"held results: {q['held']}",
        "Scheduler: "
        + (
            f"active ({sched['holder']}, lease until {sched['expires_at']})"
            if sched["active"]
            else "not running (no live lease)"
        ),
        *_quarantine_lines(data["quarantine"]),
        "Jobs:",
    ]
    for name, run in data["jobs"].items():
        lines.append(f"  {name:<24} {_job_line(run)}")
    lines.append("Sources:" if data["sources"] else "Sources: none configured")
    for name, source in data["sources"].items():
        lines.append(f"  {name:<24} {_source_line(source)}")
    lines += [_reconciliation(name, r) for name, r in data["reconciliation"].items()]
    if data["attention"]:
        lines.append("Needs attention:")
        lines += [f"  - {item}" for item in data["attention"]]
    else:
        lines.append("Nothing needs attention.")
    return lines


def _quarantine_lines(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """The first quarantined messages, one line each (trialbridge quarantine list: all)."""
    lines = [
        f"  quarantined #{e['id']} message {e['message']} subject {e['subject'] or '-'}: "
        f"{e['error_class']}"
        + (f" at {e['location']}" if e["location"] else "")
        + (f"; {e['held_back']} later transaction(s) wait" if e["held_back"] else "")
        for e in entries[:_SHOWN]
    ]
    if len(entries) > _SHOWN:
        lines.append(f"  ... and {len(entries) - _SHOWN} more (trialbridge quarantine list)")
    return lines


_SHOWN = 10  # quarantined messages listed by status (all of them are in --json)


def _job_line(run: Mapping[str, Any]) -> str:
    text = f"last success {run['last_success_at'] or 'never'} ({run['last_count']} item(s))"
    if run["last_error_at"]:
        state = "FAILING" if run["failing"] else "last error"
        text += f"; {state} {run['last_error_at']}: {run['last_error']}"
    return text


def _source_line(source: Mapping[str, Any]) -> str:
    up = {True: "up", False: "DOWN", None: "unknown"}[source["up"]]
    parts = [up + (f" ({source['problem']})" if source["up"] is False else "")]
    if source.get("address"):
        parts.append(f"on {source['address']}")
    parts.append(f"last message {source['last_message_at'] or 'none yet'}")
    if source.get("received") is not None:
        parts.append(f"{source['received']} received since start")
    if source.get("error_files") is not None:
        parts.append(f"{source['error_files']} file(s) in error/")
    if source.get("waiting_files") is not None:
        parts.append(f"{source['waiting_files']} waiting")
    if source.get("watermark_lag_seconds") is not None:
        parts.append(f"oldest watermark {_age(source['watermark_lag_seconds'])} behind")
    for key, value in (source.get("detail") or {}).items():
        parts.append(f"{key} {value}")
    return ", ".join(parts)


def _reconciliation(name: str, r: Mapping[str, Any]) -> str:
    """Results the LIS reconciliation found that the incremental pulls had missed: 0 when
    all is well (docs/operations/lis-query.md says what a non-zero count means)."""
    warning = " (should be 0: see docs/operations/lis-query.md)" if r.get("missed_total") else ""
    return (
        f"LIS reconciliation {name}: last run {r.get('at')}: {r.get('missed')} result(s) the "
        f"incremental pull had missed, {r.get('missed_total')} in all{warning}"
    )


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "none"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
