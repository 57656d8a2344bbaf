"""CLI command ``dev-fhir``: the local FHIR R4 server for tests and the demo."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType
from typing import IO

import click

from adapter.cli._common import cli_errors
from adapter.dev_fhir import DevFhirServer


def _inheritable_stderr() -> IO[str] | None:
    """Our stderr if the child can write to it directly (not under a test runner's capture)."""
    try:
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    return sys.stderr


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@click.command("dev-fhir")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="TCP port to listen on; 0 picks a free one (the ready line says which).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Keep it local: the server has no authentication.",
)
@click.option(
    "--data",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Keep the store in this JSON file across restarts: loaded at start, "
    "rewritten atomically after every change. Without it, the store lives in memory only.",
)
@click.option(
    "--log-requests/--quiet",
    default=True,
    show_default=True,
    help="Log one line per request on standard error.",
)
def dev_fhir(port: int, host: str, data: Path | None, log_requests: bool) -> None:
    """Run a local FHIR R4 server for tests and the demo, in the foreground.

    The FHIR API is at http://HOST:PORT/fhir (CapabilityStatement at /fhir/metadata); it
    supports read, vread, create, update, delete, history, search with paging, conditional
    create/update and batch/transaction Bundles, and checks required code bindings.
    POST /admin/reset empties the store. Once listening it prints one line on standard
    output, e.g. "dev-fhir ready on http://127.0.0.1:8080/fhir", and runs until Ctrl-C or
    SIGTERM.

    It installs its Node.js dependencies (npm ci) on first use; it needs Node.js 20 or newer.
    A development tool: no authentication, not for real patient data.

    Example: trialbridge dev-fhir --port 8080 --data var/dev-fhir.json
    """
    with cli_errors():
        if data is not None:
            data.parent.mkdir(parents=True, exist_ok=True)
        server = DevFhirServer(
            port=port, host=host, data=data, log_requests=log_requests, stderr=_inheritable_stderr()
        )
        previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
        try:
            server.start()
            click.echo(f"dev-fhir ready on {server.base_url}")
            sys.stdout.flush()
            status = server.wait()
        except KeyboardInterrupt:
            status = 0
        finally:
            server.stop()
            signal.signal(signal.SIGTERM, previous)
        if status not in (0, -signal.SIGINT, -signal.SIGTERM):
            raise click.ClickException(f"the dev FHIR server stopped with exit status {status}")


COMMANDS: list[click.Command] = [dev_fhir]
