"""What ``trialbridge run`` plugs into the service from the other packages: the sources
configured in ``sources:`` (:mod:`adapter.sources`) and the scores job
(:func:`adapter.scoring.recompute_subjects`).

Both packages are optional to the service: it runs without sources (only ``push`` and
replays feed it) and without scores when they are not installed. They are looked up by
module name so the service does not depend on their internals.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adapter.config import Settings
from adapter.fhir_client import FhirClient
from adapter.service import metrics
from adapter.service.health import LISTENER, SourceHealth
from adapter.service.scheduler import Recompute, SourceSpec
from adapter.trial.registry import Registry


def _module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError:
        return None


def sources_from_config(settings: Settings, config_path: Path) -> Sequence[SourceSpec]:
    """The enabled sources of the ``sources:`` section (none if the package is absent)."""
    config_module = _module("adapter.sources.config")
    if config_module is None:
        return ()
    config = config_module.load_sources_config(config_path)
    charset = settings.forced_charset
    specs: list[SourceSpec] = []
    if config.file_drop.enabled:
        health = SourceHealth("file_drop", key="sources.file_drop")
        source = _module("adapter.sources.filedrop").FileDropSource(
            config.file_drop, forced_charset=charset, events=source_events("file_drop", health)
        )
        specs.append(
            SourceSpec("file_drop", source, config.file_drop.poll_seconds, health.key, "", health)
        )
    if config.mllp.enabled:
        address = f"{config.mllp.host}:{config.mllp.port}"
        health = SourceHealth("mllp", LISTENER, "sources.mllp", address)
        source = _module("adapter.sources.mllp").MllpSource(
            config.mllp, forced_charset=charset, events=source_events("mllp", health)
        )
        specs.append(SourceSpec("mllp", source, None, health.key, address, health))
    if config.query.enabled:
        health = SourceHealth("query", key="sources.query")
        source = _module("adapter.sources.query_source").QuerySource(
            config.query, events=source_events("query", health)
        )
        specs.append(SourceSpec("query", source, config.query.poll_seconds, health.key, "", health))
        metrics.RECONCILE_MISSED.labels(source="query")  # shown at 0 from the start
        reconcile = source.reconciliation()  # None: sources.query.reconcile_every_hours is 0
        if reconcile is not None:  # checks every poll_seconds whether the next one is due
            specs.append(SourceSpec("query-reconcile", reconcile, config.query.poll_seconds))
    return specs


def source_events(source: str, health: SourceHealth) -> Any:
    """The sources' event seam, counting what came in and what the filter dropped (per
    source, in the metrics and the source's health: its last message)."""
    events = _module("adapter.sources.events")

    class Counted(events.Events):  # type: ignore[misc, name-defined]
        def emit(self, name: str, /, *, level: int = logging.INFO, **fields: Any) -> None:
            super().emit(name, level=level, **fields)
            if name.endswith(".limit"):  # a configured limit was reached (mllp, file drop)
                metrics.LIMITS_HIT.labels(source=source, limit=str(fields.get("limit"))).inc()
            if name == "query.reconciled":  # results the incremental pulls had missed
                missed = int(fields.get("missed", 0) or 0)
                metrics.RECONCILE_MISSED.labels(source=source).inc(missed)
            if name.endswith(".refused"):  # mllp.refused: a peer kept out by the guard
                metrics.LIMITS_HIT.labels(source=source, limit=str(fields.get("reason"))).inc()
            # One event per batch handed to the inbox door carries ``messages`` and ``kept``
            # (``mllp.accepted``, ``query.accepted``, the file drop's ``file.taken``).
            if "messages" not in fields or "kept" not in fields:
                return
            received = int(fields.get("messages", 0) or 0)
            kept = int(fields.get("kept", received) or 0)
            if received:
                metrics.RECEIVED.labels(source=source).inc(received)
                metrics.FILTERED.labels(source=source).inc(max(received - kept, 0))
                health.messages(received, kept)
                metrics.SOURCE_LAST_MESSAGE.labels(source=source).set(health.last_message_at or 0)

    return Counted()


def recompute_hook(client: FhirClient, registry: Registry, config_path: Path) -> Recompute | None:
    """The scores job's work, when :mod:`adapter.scoring` is there."""
    scoring = _module("adapter.scoring")
    if scoring is None:
        return None
    settings = scoring.load_scoring_settings(config_path)

    def recompute(subjects: Sequence[str]) -> int:
        summary = scoring.recompute_subjects(client, registry, subjects, settings)
        return int(summary.written)

    return recompute
