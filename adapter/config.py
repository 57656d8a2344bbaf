"""Configuration: ``config/trialbridge.yaml`` plus ``TRIALBRIDGE_<SECTION>_<KEY>`` overrides,
validated once at start-up into one frozen :class:`Settings` object that is passed down.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from adapter.errors import ConfigError
from adapter.parse.decode import codec_for

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "config" / "trialbridge.yaml"
_SQLITE = "sqlite:///"
_OFFSET = re.compile(r"^(Z|[+-](0\d|1[0-4]):[0-5]\d)$")


@dataclass(frozen=True, slots=True)
class Identifiers:
    """The identifier namespaces TrialBridge writes."""

    result: str
    patient: str
    local_code: str


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything configurable, validated."""

    fhir_url: str
    fhir_timeout: float
    fhir_retries: int
    timezone: str
    forced_charset: str | None
    identifiers: Identifiers
    mappings_dir: Path
    study_path: Path
    store_url: str  # SQLAlchemy URL of the state store (a relative SQLite path is under ROOT)


def load_settings(
    path: Path = DEFAULT_CONFIG, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read ``path``, apply environment overrides, and validate."""
    raw = _read(path)
    _apply_env(raw, os.environ if environ is None else environ)
    return _validate(raw, str(path))


def _read(path: Path) -> dict[str, dict[str, Any]]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration: {exc.strerror}", path=str(path)) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", path=str(path)) from exc
    if not isinstance(doc, dict) or not all(isinstance(v, dict) for v in doc.values()):
        raise ConfigError("the file must hold sections (fhir:, lis:, ...) of keys", path=str(path))
    return doc


def _apply_env(
    raw: dict[str, Any], environ: Mapping[str, str], prefix: str = "TRIALBRIDGE"
) -> None:
    """Override any scalar at any depth: ``sources: {mllp: {port: 2575}}`` is
    ``TRIALBRIDGE_SOURCES_MLLP_PORT``."""
    for key, value in raw.items():
        name = f"{prefix}_{key}".upper().replace("-", "_")
        if isinstance(value, dict):
            _apply_env(value, environ, name)
        elif name in environ:
            raw[key] = environ[name]


def config_section(
    name: str, path: Path = DEFAULT_CONFIG, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """One section of the configuration file (with environment overrides), for the modules
    that own and validate it (sources, service, auth, ...). Empty when absent."""
    raw = _read(path)
    _apply_env(raw, os.environ if environ is None else environ)
    section = raw.get(name, {})
    return dict(section)


def _validate(raw: dict[str, dict[str, Any]], where: str) -> Settings:
    def get(section: str, key: str) -> Any:
        try:
            return raw[section][key]
        except KeyError:
            raise ConfigError(f"'{section}.{key}' is missing", path=where) from None

    timezone = str(get("lis", "timezone"))
    if not _OFFSET.match(timezone):
        raise ConfigError(f"lis.timezone {timezone!r} must look like '+08:00' or 'Z'", path=where)
    forced = str(get("lis", "forced_charset") or "") or None
    if forced:
        codec_for(forced)
    mappings = Path(str(get("mappings", "directory")))
    return Settings(
        fhir_url=str(get("fhir", "url")).rstrip("/"),
        fhir_timeout=_number(get("fhir", "timeout_seconds"), "fhir.timeout_seconds", where),
        fhir_retries=int(_number(get("fhir", "retries"), "fhir.retries", where)),
        timezone=timezone,
        forced_charset=forced,
        identifiers=Identifiers(
            result=str(get("identifiers", "result")),
            patient=str(get("identifiers", "patient")),
            local_code=str(get("identifiers", "local_code")),
        ),
        mappings_dir=mappings if mappings.is_absolute() else ROOT / mappings,
        study_path=_under_root(Path(str(get("study", "path")))),
        store_url=_store_url(str(get("store", "url")), where),
    )


def _under_root(path: Path) -> Path:
    return path if path.is_absolute() else ROOT / path


def _store_url(url: str, where: str) -> str:
    """The store URL, with a relative SQLite file placed under the repository root."""
    if url.startswith("postgresql://"):  # the driver TrialBridge installs
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("postgresql+psycopg://"):
        return url
    if not url.startswith(_SQLITE):
        raise ConfigError(
            f"store.url {url!r} must be {_SQLITE}PATH or postgresql+psycopg://...", path=where
        )
    path = Path(url.removeprefix(_SQLITE))
    return url if path.is_absolute() else f"{_SQLITE}{ROOT / path}"


def _number(value: Any, name: str, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"'{name}' must be a number, not {value!r}", path=where) from None
    if number < 0:
        raise ConfigError(f"'{name}' must not be negative", path=where)
    return number
