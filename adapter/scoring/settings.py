"""The ``scoring:`` section of ``config/trialbridge.yaml``, validated into one frozen value.

Read with :func:`adapter.config.config_section` (so ``TRIALBRIDGE_SCORING_<KEY>`` overrides
work like everywhere else). Every key is required: a missing one is an error, not a default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from adapter.config import DEFAULT_CONFIG, config_section
from adapter.errors import ConfigError

_KEYS = ("pairing_window_hours", "identifier", "count_preliminary", "cholestatic_subjects")


@dataclass(frozen=True, slots=True)
class ScoringSettings:
    """How scores are paired, identified and computed."""

    pairing_window: timedelta  # inputs at most this far from the bilirubin are paired
    identifier_system: str  # namespace of the score Observations' identifiers
    count_preliminary: bool  # preliminary inputs count (the score is then preliminary)
    cholestatic_subjects: frozenset[str]  # subjects with PBC/PSC: Child-Pugh cholestatic bands


def load_scoring_settings(
    path: Path = DEFAULT_CONFIG, environ: Mapping[str, str] | None = None
) -> ScoringSettings:
    """The validated ``scoring:`` section of ``path``."""
    return parse_scoring_settings(config_section("scoring", path, environ), str(path))


def parse_scoring_settings(raw: Mapping[str, Any], where: str) -> ScoringSettings:
    """Validate a ``scoring:`` mapping; errors name the key."""
    missing = [key for key in _KEYS if key not in raw]
    if missing:
        raise ConfigError(f"scoring.{missing[0]} is missing", path=where)
    return ScoringSettings(
        pairing_window=timedelta(hours=_hours(raw["pairing_window_hours"], where)),
        identifier_system=_text(raw["identifier"], "scoring.identifier", where),
        count_preliminary=_flag(raw["count_preliminary"], where),
        cholestatic_subjects=frozenset(_subjects(raw["cholestatic_subjects"], where)),
    )


def _hours(value: Any, where: str) -> float:
    try:
        hours = float(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"scoring.pairing_window_hours must be a number, not {value!r}", path=where
        ) from None
    if not 0 < hours <= 24 * 14:
        raise ConfigError(
            "scoring.pairing_window_hours must be above 0 and at most 336", path=where
        )
    return hours


def _text(value: Any, name: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{name} must be a non-empty text", path=where)
    return value.strip()


def _flag(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()  # environment overrides arrive as text
    if text in ("true", "yes", "1"):
        return True
    if text in ("false", "no", "0"):
        return False
    raise ConfigError(f"scoring.count_preliminary must be true or false, not {value!r}", path=where)


def _subjects(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise ConfigError("scoring.cholestatic_subjects must be a list of subject ids", path=where)
    return value
