"""CLI commands of the background service: ``run`` (in the foreground), ``status``,
``dead-letter list|show|retry`` and ``replay``."""

from __future__ import annotations

import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import click

from adapter.cli._common import (
    CONFIG,
    FHIR_URL,
    JSON,
    STORE,
    cli_errors,
    config_found,
    echo_json,
)
from adapter.config import load_settings
from adapter.service.runner import (
    RunOptions,
    current_status,
    run_service,
    service_store,
)
from adapter.service.scheduler import Service
from adapter.service.status import render
from adapter.service.wiring import recompute_hook, sources_from_config
from adapter.store.deadletters import DeadLetter


@click.command("run")
@CONFIG
@FHIR_URL
@STORE
@click.option(
    "--http-port",
    type=int,
    help="Port of /healthz, /readyz and /metrics (default: service.http.port; 0 picks a "
    "free one, the ready line says which).",
)
def run_command(
    config_path: Path, fhir_url: str | None, store_url: str | None, http_port: int | None
) -> None:
    """Run the service in the foreground: the sources, the scheduled jobs (process the
    inbox, push the outbox, scores, retention) and the HTTP endpoint.

    One instance per store is active; another started on the same store waits as a
    standby and takes over when the first stops renewing its lease. SIGTERM (or Ctrl-C)
    finishes the current batch, stops the listeners after acknowledging what they
    committed, and exits 0.

    Example: trialbridge run --config /etc/trialbridge/trialbridge.yaml
    """
    with cli_errors():
        settings = load_settings(config_path)
        click.echo(f"trialbridge run: configuration {config_found()}", err=True)
        stop = threading.Event()

        def on_signal(_signum: int, _frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        options = RunOptions(config_path, fhir_url, store_url, http_port)
        run_service(
            settings,
            options,
            stop,
            sources=sources_from_config,
            recompute=recompute_hook,
            on_ready=_ready,
        )
    click.echo("trialbridge run: stopped", err=True)


def _ready(service: Service, port: int) -> None:
    sources = ", ".join(
        f"{s.name} on {s.state().address}" if s.address else s.name for s in service.sources
    )
    click.echo(
        f"trialbridge run: ready, worker {service.holder}, "
        f"http on {service.config.http_host}:{port}, {len(service.sources)} source(s)"
        + (f": {sources}" if sources else ""),
        err=True,
    )
    sys.stderr.flush()


@click.command("status")
@CONFIG
@STORE
@JSON
def status_command(config_path: Path, store_url: str | None, as_json: bool) -> None:
    """Queue depths and ages, the active scheduler, the last success and last error of each
    job, each source's health (up, last message, files in error/, watermark lag),
    dead letters and quarantined messages, and what needs a person.

    A monitoring check: exit status 0 when nothing needs a person, 3 when something does
    (listed under "Needs attention", or "attention" with --json), 1 when the status cannot
    be read (configuration or store).

    Example: trialbridge status --json
    """
    with cli_errors():
        settings = load_settings(config_path)
        with service_store(settings, store_url) as store:
            status = current_status(store, config_path)
    if as_json:
        echo_json({"config": config_found(), **status.as_dict()})
    else:
        click.echo(f"Configuration: {config_found()}")
        for line in render(status):
            click.echo(line)
    sys.exit(status.exit_code())


@click.group("dead-letter")
def dead_letter() -> None:
    """Transactions the FHIR server refused (4xx), with its OperationOutcome.

    Example: trialbridge dead-letter list
    """


@dead_letter.command("list")
@CONFIG
@STORE
@JSON
def dead_letter_list(config_path: Path, store_url: str | None, as_json: bool) -> None:
    """List the dead letters: id, message (MSH-10), subject, HTTP status and outcome.

    Example: trialbridge dead-letter list --json
    """
    with cli_errors():
        settings = load_settings(config_path)
        with service_store(settings, store_url) as store:
            letters = store.dead_letters()
    if as_json:
        echo_json([_letter(d) for d in letters])
        return
    click.echo(f"{len(letters)} dead letter(s)")
    for d in letters:
        click.echo(
            f"  #{d.letter_id} message {d.control_id} {d.subject_id or '-'} "
            f"HTTP {d.http_status}: {d.outcome[:120]}"
        )


@dead_letter.command("show")
@click.argument("letter_id", type=int)
@CONFIG
@STORE
def dead_letter_show(letter_id: int, config_path: Path, store_url: str | None) -> None:
    """Show one dead letter with the transaction that was refused.

    Example: trialbridge dead-letter show 3
    """
    with cli_errors():
        settings = load_settings(config_path)
        with service_store(settings, store_url) as store:
            letter = store.dead_letter(letter_id)
        if letter is None:
            raise click.ClickException(f"no dead letter #{letter_id} (see dead-letter list)")
    echo_json({**_letter(letter), "bundle": letter.bundle})


@dead_letter.command("retry")
@click.argument("letter_ids", type=int, nargs=-1)
@click.option("--all", "retry_all", is_flag=True, help="Retry every dead letter.")
@CONFIG
@STORE
def dead_letter_retry(
    letter_ids: tuple[int, ...], retry_all: bool, config_path: Path, store_url: str | None
) -> None:
    """Put dead letters back in the outbox (after fixing the cause); the service, or the
    next ``push``, sends them.

    Example: trialbridge dead-letter retry 3 4
    """
    with cli_errors():
        settings = load_settings(config_path)
        with service_store(settings, store_url) as store:
            ids = [d.letter_id for d in store.dead_letters()] if retry_all else list(letter_ids)
            if not ids:
                raise click.ClickException("name dead letters to retry, or --all")
            count = store.retry_dead(ids)
    click.echo(f"{count} transaction(s) back in the outbox")


@click.command("replay")
@click.option(
    "--since",
    required=True,
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"]),
    help="Replay messages received from this date (UTC unless an offset is given).",
)
@CONFIG
@STORE
def replay_command(since: datetime, config_path: Path, store_url: str | None) -> None:
    """Queue again the processed messages received since DATE whose bytes are still kept
    (after a mapping change, or a FHIR server restored from an old backup). Writes are
    conditional, so a result already on the server is not duplicated.

    Example: trialbridge replay --since 2024-06-01
    """
    with cli_errors():
        settings = load_settings(config_path)
        moment = since if since.tzinfo else since.replace(tzinfo=UTC)
        with service_store(settings, store_url) as store:
            count = store.replay(moment)
    click.echo(f"{count} message(s) queued again since {moment.isoformat()}")


def _letter(d: DeadLetter) -> dict[str, object]:
    return {
        "id": d.letter_id,
        "message": d.control_id,
        "subject": d.subject_id,
        "http_status": d.http_status,
        "outcome": d.outcome,
        "created_at": d.created_at.isoformat(timespec="seconds"),
    }


COMMANDS: list[click.Command] = [run_command, status_command, dead_letter, replay_command]
