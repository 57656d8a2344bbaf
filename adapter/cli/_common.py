"""Helpers shared by the CLI commands: error translation and JSON output."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from adapter.config import CONFIG_VARIABLE, ETC_CONFIG, FoundConfig, Settings, find_config
from adapter.errors import ConfigError, TrialBridgeError
from adapter.logs import get_logger
from adapter.store import open_store
from adapter.trial.gate import Gate
from adapter.trial.registry import Registry
from adapter.trial.study import load_study


@contextmanager
def cli_errors() -> Iterator[None]:
    """Turn TrialBridge errors into a one-line message and exit code 1 (no traceback)."""
    try:
        yield
    except TrialBridgeError as exc:
        raise click.ClickException(str(exc)) from exc


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON on standard output."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=_jsonable))


def _jsonable(value: Any) -> Any:
    return sorted(value) if isinstance(value, set | frozenset) else str(value)


Echo = Callable[[str], None]


@contextmanager
def enrolment_gate(settings: Settings) -> Iterator[Gate]:
    """The enrolment filter as the registry in the state store has it now."""
    with open_store(settings.store_url) as store:
        registry = Registry(store, load_study(settings.study_path))
        yield Gate(registry.study, registry.index())


def _found_config(ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path:
    """The configuration file: --config, else found as :func:`adapter.config.find_config`
    looks (TRIALBRIDGE_CONFIG, /etc/trialbridge, the checkout); remembered for
    :func:`config_found`."""
    try:
        found = find_config(value)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    ctx.meta[_FOUND] = found
    get_logger("adapter.cli").info("config.found", path=str(found.path), via=found.how)
    return found.path


def config_found() -> str:
    """``FILE (found via HOW)`` for the configuration the current command uses."""
    found: FoundConfig | None = click.get_current_context().meta.get(_FOUND)
    return f"{found.path} (from {found.how})" if found else "?"


_FOUND = "trialbridge.config"

# Options and arguments shared by the commands.
CONFIG = click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    callback=_found_config,
    help=f"Configuration file (default: ${CONFIG_VARIABLE}, then {ETC_CONFIG}, then the "
    "checkout's config/trialbridge.yaml).",
)
FHIR_URL = click.option("--fhir-url", help="FHIR R4 base URL (default: fhir.url from the config).")
JSON = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
# The research commands (report, export) read one study from one FHIR server.
FHIR_URL = click.option(
    "--fhir-url", help="The trial's FHIR R4 base URL [default: fhir.url of --config]."
)
STUDY = click.option(
    "--study",
    "study_id",
    required=True,
    help="The study identifier (ResearchStudy.identifier value), e.g. XHNKKY-DDSC.",
)
STORE = click.option(
    "--store", "store_url", help="State store URL (default: store.url from the config)."
)
FILES = click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=True, path_type=Path)
)


def message_files(paths: tuple[Path, ...]) -> list[Path]:
    """The files named, with directories expanded to their ``*.hl7`` files in name order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.is_file() and p.suffix == ".hl7"))
        else:
            files.append(path)
    return files
