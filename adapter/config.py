"""Configuration: ``trialbridge.yaml`` plus ``TRIALBRIDGE_<SECTION>_<KEY>`` overrides,
validated once at start-up into one frozen :class:`Settings` object that is passed down.

Which file (:func:`find_config`), as an installed tool looks for it: ``--config``, then the
``TRIALBRIDGE_CONFIG`` environment variable, then ``/etc/trialbridge/trialbridge.yaml``, then
the checkout's ``config/trialbridge.yaml`` when TrialBridge runs from a checkout.

Relative paths in the file (study, mappings, the SQLite store, source folders) are relative
to the file's own directory (:func:`base_dir`), except in the checkout's
``config/trialbridge.yaml``, whose paths are relative to the checkout.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from adapter.errors import ConfigError, DecodeError
from adapter.parse.decode import codec_for

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "config" / "trialbridge.yaml"  # the checkout's (absent when installed)
ETC_CONFIG = Path("/etc/trialbridge/trialbridge.yaml")
CONFIG_VARIABLE = "TRIALBRIDGE_CONFIG"
# The sections a configuration file may hold (each is validated by the module that owns it).
SECTIONS = frozenset(
    {"fhir", "lis", "identifiers", "study", "mappings", "store", "scoring", "service", "sources"}
)
_KEYS = {
    "fhir": frozenset({"url", "timeout_seconds", "retries", "auth"}),
    "lis": frozenset({"timezone", "forced_charset"}),
    "identifiers": frozenset({"result", "patient", "local_code"}),
    "study": frozenset({"path"}),
    "mappings": frozenset({"directory"}),
    "store": frozenset({"url"}),
}


@dataclass(frozen=True, slots=True)
class FoundConfig:
    """The configuration file in use, and how it was found (said to the user)."""

    path: Path
    how: str


def find_config(
    explicit: Path | None = None,
    environ: Mapping[str, str] | None = None,
    etc: Path = ETC_CONFIG,
    checkout: Path = DEFAULT_CONFIG,
) -> FoundConfig:
    """The configuration file: ``--config``, ``$TRIALBRIDGE_CONFIG``, ``/etc/trialbridge``,
    the checkout's; a ConfigError saying where it looked when there is none."""
    env = os.environ if environ is None else environ
    if explicit is not None:
        return FoundConfig(explicit, "--config")
    if named := env.get(CONFIG_VARIABLE):
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(f"{CONFIG_VARIABLE} names {path}, which is not a file")
        return FoundConfig(path, CONFIG_VARIABLE)
    if etc.is_file():
        return FoundConfig(etc, str(etc.parent))
    if checkout.is_file() and (checkout.parent.parent / "pyproject.toml").is_file():
        return FoundConfig(checkout, "the checkout")
    raise ConfigError(
        f"no configuration file: pass --config FILE, set {CONFIG_VARIABLE}, or create {etc} "
        f"(`trialbridge init {etc.parent}` writes one to edit)"
    )


def base_dir(config_path: Path | str) -> Path:
    """What relative paths in ``config_path`` are relative to: its directory, or the
    checkout for the checkout's own ``config/`` files (and for anything not a file)."""
    path = Path(config_path)
    if not path.is_file():
        return ROOT
    folder = path.resolve().parent
    return ROOT if folder == DEFAULT_CONFIG.parent else folder


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
    return _validate(raw, str(path), base_dir(path))


def _read(path: Path) -> dict[str, dict[str, Any]]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration: {exc.strerror}", path=str(path)) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", path=str(path)) from exc
    if not isinstance(doc, dict) or not all(isinstance(v, dict) for v in doc.values()):
        raise ConfigError("the file must hold sections (fhir:, lis:, ...) of keys", path=str(path))
    _only_known(doc, path)
    return doc


def _only_known(doc: dict[str, Any], path: Path) -> None:
    """Unknown sections, and unknown keys in the sections this module reads, are errors
    (a typo would otherwise leave the default in force without a word)."""
    for section, keys in doc.items():
        if section not in SECTIONS:
            _unknown(path, section, "section", SECTIONS)
        allowed = _KEYS.get(section, frozenset())
        for key in keys if allowed else ():  # the other sections are checked by their owners
            if key not in allowed:
                _unknown(path, f"{section}.{key}", "key", allowed)


def _unknown(path: Path, name: str, kind: str, known: Collection[str]) -> None:
    line = key_lines(path.read_text(encoding="utf-8")).get(name)
    word = name.rsplit(".", 1)[-1]
    raise ConfigError(f"{name}: unknown {kind}{nearest(word, known)}", path=str(path), line=line)


def key_lines(text: str) -> dict[str, int]:
    """The line (1-based) of every key and list item of a YAML document, by its path
    (``visits[2].window``, ``service.http.port``)."""
    lines: dict[str, int] = {}

    def walk(node: yaml.Node, at: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                here = f"{at}.{key.value}" if at else str(key.value)
                lines[here] = key.start_mark.line + 1
                walk(value, here)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                here = f"{at}[{i}]"
                lines[here] = item.start_mark.line + 1
                walk(item, here)

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return lines
    if root is not None:
        walk(root, "")
    return lines


def nearest(word: str, known: Collection[str]) -> str:
    """`` (did you mean 'x'? known: a, b, x)`` for an unknown name."""
    close = difflib.get_close_matches(word, sorted(known), n=1)
    choices = f"did you mean {close[0]!r}? " if close else ""
    return f" ({choices}known: {', '.join(sorted(known))})"


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


def _validate(raw: dict[str, dict[str, Any]], where: str, base: Path = ROOT) -> Settings:
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
        try:
            codec_for(forced)
        except DecodeError as exc:
            raise ConfigError(f"lis.forced_charset: {exc.reason}", path=where) from None
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
        mappings_dir=_under(base, mappings),
        study_path=_under(base, Path(str(get("study", "path")))),
        store_url=_store_url(str(get("store", "url")), where, base),
    )


def _under(base: Path, path: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else base / path


def _store_url(url: str, where: str, base: Path = ROOT) -> str:
    """The store URL, with a relative SQLite file placed under ``base``."""
    if url.startswith("postgresql://"):  # the driver TrialBridge installs
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("postgresql+psycopg://"):
        return url
    if not url.startswith(_SQLITE):
        raise ConfigError(
            f"store.url {url!r} must be {_SQLITE}PATH or postgresql+psycopg://...", path=where
        )
    path = Path(url.removeprefix(_SQLITE))
    return url if path.is_absolute() else f"{_SQLITE}{base / path}"


def _number(value: Any, name: str, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"'{name}' must be a number, not {value!r}", path=where) from None
    if number < 0:
        raise ConfigError(f"'{name}' must not be negative", path=where)
    return number
