"""Helpers shared by the CLI commands: error translation and JSON output."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from adapter.config import DEFAULT_CONFIG, Settings
from adapter.errors import TrialBridgeError
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


# Options and arguments shared by the commands.
CONFIG = click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=DEFAULT_CONFIG,
    show_default=True,
    help="Service configuration file.",
)
FHIR_URL = click.option("--fhir-url", help="FHIR R4 base URL (default: fhir.url from the config).")
JSON = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
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
