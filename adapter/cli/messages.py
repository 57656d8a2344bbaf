"""CLI commands that turn HL7v2 messages into FHIR: ``map`` (dry run) and ``push`` (through
the state store's inbox)."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import click
import simplejson

from adapter.cli._common import CONFIG, FILES, cli_errors, echo_json, enrolment_gate, message_files
from adapter.cli.scoring import print_summary, score_counts
from adapter.config import load_settings
from adapter.fhir_client import FhirClient
from adapter.mappings import load_mappings
from adapter.pipeline import push_messages
from adapter.scoring import load_scoring_settings, recompute_subjects
from adapter.service.runner import bind_store
from adapter.service.summary import PushSummary
from adapter.store import incoming, open_store
from adapter.translate import Translation, dry_run, filter_verdict
from adapter.trial.registry import Registry
from adapter.trial.study import load_study


def _report_held(item: Translation) -> None:
    for held in item.held:
        click.echo(
            f"{item.source}: message {item.message_id}, {held.result.location}: "
            f"held — {held.reason}",
            err=True,
        )


@click.command("map")
@FILES
@CONFIG
def map_command(files: tuple[Path, ...], config_path: Path) -> None:
    """Print the FHIR transaction Bundle each message becomes (no network).

    One message prints one Bundle; several print a JSON array of Bundles. Standard error
    says what the enrolment filter would do with each message (map works on any message;
    only ``push`` filters) and lists the results that are not mapped, with the reason. A
    message that cannot be used is named with the segment and field at fault, and the exit
    status is 1.

    Example: trialbridge map ../shared/corpus/hl7/mirth_small_CMP_local_codes_bad_dates.hl7
    """
    with cli_errors():
        settings = load_settings(config_path)
        bundles = []
        refused = 0
        mappings = load_mappings(settings.mappings_dir)
        with enrolment_gate(settings) as gate:
            items = [
                item
                for path in message_files(files)
                for item in dry_run(path.read_bytes(), str(path), settings, mappings, gate)
            ]
        for item in items:
            click.echo(f"{item.source}: enrolment filter {filter_verdict(item)}", err=True)
            _report_held(item)
            if item.error is not None:
                refused += 1
                click.echo(f"{item.source}: refused: {item.error}", err=True)
            else:
                bundles.append(item.bundle)
        output = bundles[0] if len(bundles) == 1 else bundles
        if bundles:
            click.echo(simplejson.dumps(output, use_decimal=True, indent=2, ensure_ascii=False))
        if refused:
            raise click.ClickException(f"{refused} message(s) refused; see above")


@click.command("push")
@FILES
@click.option("--fhir-url", help="FHIR R4 base URL (default: fhir.url from the config).")
@CONFIG
@click.option("--store", "store_url", help="State store URL (default: store.url from the config).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def push_command(
    files: tuple[Path, ...],
    fhir_url: str | None,
    config_path: Path,
    store_url: str | None,
    as_json: bool,
) -> None:
    """Record each message in the state store's inbox and send it to the FHIR server as
    one transaction.

    A message already in the inbox (same sender, MSH-10 and content) is counted as a
    duplicate and not sent again. Results that cannot be mapped are held in the store:
    see ``trialbridge unmapped``. Writes are conditional on the result's identifier, so a
    final result replaces its preliminary. Directories are read in file-name order. Exit
    status 1 if any message was refused (not HL7, no readable PID-3, cannot be used as
    sent) or failed.

    Example: trialbridge push feed/ --fhir-url http://127.0.0.1:8080/fhir
    """
    with cli_errors():
        settings = load_settings(config_path)
        mappings = load_mappings(settings.mappings_dir)
        paths = message_files(files)
        with (
            open_store(store_url or settings.store_url) as store,
            FhirClient.from_settings(
                settings, base_url=fhir_url, config_path=config_path
            ) as client,
            click.progressbar(paths, label="Pushing", file=sys.stderr) as bar,
        ):
            bind_store(store, client, store_url or settings.store_url)  # its own server only
            messages = (m for path in bar for m in incoming(path.read_bytes(), str(path)))
            registry = Registry(store, load_study(settings.study_path))
            summary = push_messages(messages, client, settings, mappings, store, registry=registry)
            scored = recompute_subjects(
                client, registry, sorted(summary.subjects), load_scoring_settings(config_path)
            )
        if as_json:
            counts = {k: v for k, v in asdict(summary).items() if k != "sent_messages"}
            echo_json({**counts, "scores": score_counts(scored)})
        else:
            _print_summary(summary)
            print_summary(scored, as_json=False)
            for error in summary.errors:
                click.echo(f"  {error}", err=True)
        refused = summary.refused + summary.unattributable
        if refused or summary.failed:
            aside = (
                f" ({summary.quarantined} quarantined: trialbridge quarantine list)"
                if summary.quarantined
                else ""
            )
            raise click.ClickException(
                f"{refused} message(s) refused and {summary.failed} failed{aside}; see above"
            )


def _print_summary(summary: PushSummary) -> None:
    click.echo(
        f"{summary.messages} message(s): {summary.pushed} pushed, "
        f"{summary.dropped} dropped (not enrolled), "
        f"{summary.duplicates} duplicate(s) not pushed again, "
        f"{summary.refused + summary.unattributable} refused, "
        f"{summary.observations} Observation(s) written, {summary.held} result(s) held, "
        f"{summary.dropped_results} dated before baseline, {summary.vital} vital-status change(s)"
    )
    if summary.earlier:
        click.echo(f"plus {summary.earlier} message(s) an earlier push left in the outbox")


COMMANDS: list[click.Command] = [map_command, push_command]
