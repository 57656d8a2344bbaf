"""CLI commands for the quarantine: ``quarantine list|show|retry|discard``.

A message is quarantined when processing or pushing it failed (docs/operations/quarantine.md):
it is set aside with the error's class, the reason and where, and the flow goes on. These
commands show the entries (never the message's content), put messages back through the same
stages after an upgrade or a mapping fix, or close entries for good with a reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from adapter.cli._common import CONFIG, FHIR_URL, JSON, STORE, cli_errors, echo_json
from adapter.config import load_settings
from adapter.fhir_client import FhirClient
from adapter.logs import get_logger
from adapter.mappings import load_mappings
from adapter.service.config import service_config
from adapter.service.quarantine import entry_json
from adapter.service.runner import service_store
from adapter.service.stages import Stages
from adapter.service.summary import PushSummary
from adapter.store.quarantine import QuarantineEntry
from adapter.store.service import ServiceStore
from adapter.trial.registry import Registry
from adapter.trial.study import load_study

log = get_logger(__name__)
IDS = click.argument("entry_ids", type=int, nargs=-1)


@click.group("quarantine")
def quarantine() -> None:
    """Messages set aside because processing or pushing them failed.

    Each entry names the message (MSH-10, sender), its subject, the error's class, the
    reason and where (segment and field, or TrialBridge's code line for a bug). While an
    entry is open, the subject's later results wait in the outbox, so they reach the FHIR
    server in order once it is retried or discarded.

    Example: trialbridge quarantine list
    """


@quarantine.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also the retried and discarded entries.")
@CONFIG
@STORE
@JSON
def quarantine_list(
    config_path: Path, store_url: str | None, show_all: bool, as_json: bool
) -> None:
    """List the quarantined messages, oldest first: entry id, message (MSH-10), subject,
    error class, where, and how many later transactions of the subject wait behind it.

    Example: trialbridge quarantine list --json
    """
    with cli_errors():
        settings = load_settings(config_path)
        with service_store(settings, store_url) as store:
            entries = store.quarantine_entries(include_resolved=show_all)
    if as_json:
        echo_json([entry_json(e) for e in entries])
        return
    open_count = sum(e.resolved_at is None for e in entries)
    click.echo(
        f"{open_count} quarantined message(s)"
        + ("" if not show_all else f", {len(entries)} in all")
    )
    for e in entries:
        click.echo("  " + _line(e))


@quarantine.command("show")
@click.argument("entry_id", type=int)
@CONFIG
@STORE
@JSON
def quarantine_show(entry_id: int, config_path: Path, store_url: str | None, as_json: bool) -> None:
    """Show one quarantined message: why, where, when, and what waits behind it (never
    the message's content).

    Example: trialbridge quarantine show 3
    """
    with cli_errors():
        settings = load_settings(config_path)
        with service_store(settings, store_url) as store:
            entry = store.quarantine_entry(entry_id)
    if entry is None:
        raise click.ClickException(f"no quarantine entry #{entry_id} (see quarantine list)")
    data = entry_json(entry)
    if as_json:
        echo_json(data)
        return
    for key, value in data.items():
        click.echo(f"{key + ':':<14} {'-' if value is None or value == '' else value}")


@quarantine.command("retry")
@IDS
@click.option("--all", "retry_all", is_flag=True, help="Retry every open entry.")
@click.option(
    "--push",
    "push_now",
    is_flag=True,
    help="Process and push them now, in this command (without it, the running service does).",
)
@FHIR_URL
@CONFIG
@STORE
def quarantine_retry(
    entry_ids: tuple[int, ...],
    retry_all: bool,
    push_now: bool,
    fhir_url: str | None,
    config_path: Path,
    store_url: str | None,
) -> None:
    """Put quarantined messages back in the inbox, after an upgrade or a mapping fix: they
    go through the same stages as any message (writes are conditional, so each result is
    written once). One that fails again is quarantined again. Exit status 1 if an entry
    could not be retried (its bytes were purged, or it is not open).

    Example: trialbridge quarantine retry 3 --push
    """
    with cli_errors():
        settings = load_settings(config_path)
        with service_store(settings, store_url) as store:
            ids = _chosen(store, entry_ids, retry_all)
            done = store.retry_quarantined(ids)
            log.info("quarantine.retried", entries=done.retried)
            click.echo(f"{len(done.retried)} message(s) back in the inbox")
            if push_now and done.retried:
                _push(store, settings, config_path, fhir_url)
    if done.unavailable:
        raise click.ClickException(
            f"not retried: {', '.join(f'#{i}' for i in done.unavailable)} (not open, or the "
            "message's bytes were purged: see quarantine show)"
        )


@quarantine.command("discard")
@IDS
@click.option("--reason", required=True, help="Why (recorded with the entry; say who decided).")
@CONFIG
@STORE
def quarantine_discard(
    entry_ids: tuple[int, ...], reason: str, config_path: Path, store_url: str | None
) -> None:
    """Close quarantine entries for good, with the reason: the messages stay refused, and
    their subjects' later results go on to the FHIR server.

    Example: trialbridge quarantine discard 3 --reason "resent corrected as M1234 (J. Li)"
    """
    if not reason.strip():
        raise click.UsageError("--reason must say why the message is discarded")
    if not entry_ids:
        raise click.UsageError("name the entries to discard (see quarantine list)")
    with cli_errors():
        settings = load_settings(config_path)
        with service_store(settings, store_url) as store:
            closed = store.discard_quarantined(list(entry_ids), reason.strip())
    log.info("quarantine.discarded", entries=closed)  # the reason stays in the store
    click.echo(f"{len(closed)} entry(ies) discarded")
    missing = sorted(set(entry_ids) - set(closed))
    if missing:
        raise click.ClickException(
            f"not discarded: {', '.join(f'#{i}' for i in missing)} (not open: see quarantine list)"
        )


def _chosen(store: ServiceStore, entry_ids: tuple[int, ...], every: bool) -> list[int]:
    if every:
        return [e.entry_id for e in store.quarantine_entries()]
    if not entry_ids:
        raise click.UsageError("name the entries to retry, or --all")
    return list(entry_ids)


def _push(store: ServiceStore, settings: Any, config_path: Path, fhir_url: str | None) -> None:
    """The service's stages to completion, as ``trialbridge push`` runs them."""
    mappings = load_mappings(settings.mappings_dir)
    registry = Registry(store.store, load_study(settings.study_path))
    with FhirClient.from_settings(settings, base_url=fhir_url, config_path=config_path) as client:
        stages = Stages(store, client, settings, mappings, registry, service_config({}))
        summary = PushSummary()
        stages.run_to_completion(summary)
    click.echo(
        f"pushed {summary.pushed} transaction(s), {summary.quarantined} quarantined again, "
        f"{summary.failed} failed"
    )


def _line(e: QuarantineEntry) -> str:
    where = f" at {e.location}" if e.location else ""
    state = f" [{e.resolution} {_iso(e.resolved_at)}]" if e.resolution else ""
    behind = f"; {e.held_back} later transaction(s) wait" if e.held_back else ""
    return (
        f"#{e.entry_id} message {e.control_id or '(no MSH-10)'} subject {e.subject_id or '-'} "
        f"{e.stage}: {e.error_class}{where}{behind}{state}"
    )


def _iso(moment: Any) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


COMMANDS: list[click.Command] = [quarantine]
