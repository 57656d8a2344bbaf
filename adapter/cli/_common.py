"""Helpers shared by the CLI commands: error translation and JSON output."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from adapter.config import Settings
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
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


Echo = Callable[[str], None]


@contextmanager
def enrolment_gate(settings: Settings) -> Iterator[Gate]:
    """The enrolment filter as the registry in the state store has it now."""
    with open_store(settings.store_url) as store:
        registry = Registry(store, load_study(settings.study_path))
        yield Gate(registry.study, registry.index())
