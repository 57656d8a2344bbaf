"""What ``trialbridge status`` reads about each configured source by itself, whether the
service runs or not: the file drop's waiting and refused files (counted, never named), the
LIS query's oldest watermark. The running service's own view comes from
:mod:`adapter.service.health`.
"""

from __future__ import annotations

import importlib
from datetime import datetime
from pathlib import Path
from typing import Any

from adapter.store.service import ServiceStore

_WATERMARK = "watermark:"  # adapter.sources.query_source.WATERMARK


def source_facts(store: ServiceStore, config_path: Path) -> dict[str, dict[str, Any]]:
    """Per enabled source: ``enabled`` and what can be counted from here."""
    try:
        config = importlib.import_module("adapter.sources.config").load_sources_config(config_path)
    except ModuleNotFoundError:
        return {}
    facts: dict[str, dict[str, Any]] = {}
    drop = config.file_drop
    if drop.enabled:
        facts["file_drop"] = {
            "enabled": True,
            "waiting_files": _count(drop.directory, drop.pattern),
            "error_files": _count(drop.error_dir, drop.pattern),
        }
    if config.mllp.enabled:
        facts["mllp"] = {"enabled": True}
    query = config.query
    if query.enabled:
        facts["query"] = {
            "enabled": True,
            "poll_seconds": query.poll_seconds,
            "watermark_lag_seconds": _watermark_lag(store, query.name),
        }
    return facts


def _count(folder: Path, pattern: str) -> int | None:
    """Files matching ``pattern`` in ``folder`` (None when it cannot be read)."""
    try:
        return sum(1 for p in folder.glob(pattern) if p.is_file() and not p.is_symlink())
    except OSError:
        return None


def _watermark_lag(store: ServiceStore, name: str) -> float | None:
    """How far behind now the oldest subject's watermark is (None: never queried)."""
    marks = [
        datetime.fromisoformat(value)
        for key, value in store.store.states(name).items()
        if key.startswith(_WATERMARK)
    ]
    if not marks:
        return None
    return max((store.now() - min(marks)).total_seconds(), 0.0)
