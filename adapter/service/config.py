"""The ``service:`` section of ``config/trialbridge.yaml``, validated into :class:`ServiceConfig`.

Every key has a default, so a configuration without the section runs the service as shipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from adapter.config import key_lines, nearest
from adapter.errors import ConfigError

JOBS = ("sources", "process", "push", "scores", "purge")
_DEFAULT_INTERVALS = {"sources": 5.0, "process": 1.0, "push": 1.0, "scores": 60.0, "purge": 3600.0}
_DEFAULT_BATCHES = {"sources": 0, "process": 200, "push": 50, "scores": 0, "purge": 0}


@dataclass(frozen=True, slots=True)
class Job:
    """How often a job runs and how much it takes per batch."""

    interval_seconds: float
    batch_size: int


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """Everything ``trialbridge run`` needs beyond :class:`~adapter.config.Settings`."""

    jobs: Mapping[str, Job]
    http_host: str = "127.0.0.1"
    http_port: int = 9108
    lease_seconds: float = 15.0
    max_bundle_entries: int = 100
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 300.0
    claim_seconds: float = 30.0
    # While the FHIR server is down, it is probed (GET metadata) this often; the backlog
    # goes as soon as it answers (adapter/service/outage.py).
    probe_seconds: float = 2.0
    raw_retention: timedelta = timedelta(days=90)
    # How long each source may stay silent before an alert (service.alerts.silent_minutes,
    # in seconds here; a source not named has no limit).
    silent: Mapping[str, float] = field(default_factory=dict)
    # The oldest inbox or outbox item waiting longer than this needs a person (status).
    pending_alert_seconds: float = 1800.0

    def job(self, name: str) -> Job:
        return self.jobs[name]

    def silent_seconds(self, source: str) -> float | None:
        return self.silent.get(source) or None


# The keys the section may hold, per place (a typo is an error, not a silent default).
_KNOWN = {
    "": {"lease_seconds", "jobs", "push", "retention", "http", "alerts"},
    "jobs": set(JOBS),
    "push": {
        "max_bundle_entries",
        "backoff_base_seconds",
        "backoff_max_seconds",
        "claim_seconds",
        "probe_seconds",
    },
    "retention": {"raw_days"},
    "http": {"host", "port"},
    "alerts": {"pending_minutes", "silent_minutes"},
}


def service_config(
    raw: Mapping[str, Any], where: str = "service", path: Path | None = None
) -> ServiceConfig:
    """Validate the raw section (empty: every default); ``path``, the file it came from,
    lets an unknown key's error name its line."""
    _only_known(raw, where, path)
    jobs_raw = _section(raw, "jobs", where)
    jobs = {name: _job(name, _section(jobs_raw, name, where), where) for name in JOBS}
    http = _section(raw, "http", where)
    push = _section(raw, "push", where)
    retention = _section(raw, "retention", where)
    alerts = _section(raw, "alerts", where)
    silent = _section(alerts, "silent_minutes", f"{where}.alerts")
    return ServiceConfig(
        jobs=jobs,
        http_host=str(http.get("host", "127.0.0.1")),
        http_port=int(_number(http.get("port", 9108), f"{where}.http.port")),
        lease_seconds=_number(raw.get("lease_seconds", 15), f"{where}.lease_seconds", low=1),
        max_bundle_entries=int(
            _number(push.get("max_bundle_entries", 100), f"{where}.push.max_bundle_entries", low=4)
        ),
        backoff_base_seconds=_number(
            push.get("backoff_base_seconds", 1), f"{where}.push.backoff_base_seconds"
        ),
        backoff_max_seconds=_number(
            push.get("backoff_max_seconds", 300), f"{where}.push.backoff_max_seconds"
        ),
        claim_seconds=_number(push.get("claim_seconds", 30), f"{where}.push.claim_seconds", low=1),
        probe_seconds=_number(push.get("probe_seconds", 2), f"{where}.push.probe_seconds", low=0.1),
        raw_retention=timedelta(
            days=_number(retention.get("raw_days", 90), f"{where}.retention.raw_days")
        ),
        pending_alert_seconds=60
        * _number(alerts.get("pending_minutes", 30), f"{where}.alerts.pending_minutes", low=1),
        silent={
            str(name): 60 * _number(minutes, f"{where}.alerts.silent_minutes.{name}")
            for name, minutes in silent.items()
        },
    )


def _only_known(raw: Mapping[str, Any], where: str, path: Path | None) -> None:
    for place, allowed in _KNOWN.items():
        node = raw.get(place) if place else raw
        for key in node if isinstance(node, Mapping) else ():
            if key not in allowed:
                name = f"service.{place}.{key}" if place else f"service.{key}"
                raise _unknown(name, allowed, where, path)
    for job, node in (raw.get("jobs") or {}).items():
        for key in node if isinstance(node, Mapping) else ():
            if key not in ("interval_seconds", "batch_size"):
                known = {"batch_size", "interval_seconds"}
                raise _unknown(f"service.jobs.{job}.{key}", known, where, path)


def _unknown(name: str, allowed: set[str], where: str, path: Path | None) -> ConfigError:
    message = f"{name}: unknown key{nearest(name.rsplit('.', 1)[-1], allowed)}"
    if path is None:
        return ConfigError(f"{where}: {message}")
    line = key_lines(path.read_text(encoding="utf-8")).get(name)
    return ConfigError(message, path=str(path), line=line)


def _job(name: str, raw: Mapping[str, Any], where: str) -> Job:
    interval = raw.get("interval_seconds", _DEFAULT_INTERVALS[name])
    batch = raw.get("batch_size", _DEFAULT_BATCHES[name])
    return Job(
        interval_seconds=_number(interval, f"{where}.jobs.{name}.interval_seconds", low=0.05),
        batch_size=int(_number(batch, f"{where}.jobs.{name}.batch_size")),
    )


def _section(raw: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"'{where}.{key}' must be a section of keys")
    return value


def _number(value: Any, name: str, *, low: float = 0) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"'{name}' must be a number, not {value!r}") from None
    if number < low:
        raise ConfigError(f"'{name}' must be at least {low:g}")
    return number
