"""Helpers shared by the CLI commands: error translation and JSON output."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from adapter.errors import TrialBridgeError


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
