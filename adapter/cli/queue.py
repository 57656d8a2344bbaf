"""CLI commands for the held results queue: ``unmapped`` lists it, ``reprocess`` drains it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from adapter.cli._common import CONFIG, JSON, STORE, cli_errors, echo_json
from adapter.config import load_settings
from adapter.fhir_client import FhirClient
from adapter.mappings import load_mappings
from adapter.pipeline import ReprocessSummary, reprocess_unmapped
from adapter.store import UNMAPPED_CODE, HeldGroup, open_store
from adapter.trial.registry import Registry
from adapter.trial.study import load_study


@click.command("unmapped")
@CONFIG
@STORE
@JSON
def unmapped(config_path: Path, store_url: str | None, as_json: bool) -> None:
    """List the held results: each unmapped code first, then the other reasons by kind.

    For each code: its text, the units it came with, how many results are held, when it
    was first and last seen, and an example (the value and the MSH-10 of its message;
    never a patient identifier). Add a code to mappings/analytes.yaml, then run
    ``trialbridge reprocess --unmapped``.

    Example: trialbridge unmapped --json
    """
    with cli_errors():
        settings = load_settings(config_path)
        with open_store(store_url or settings.store_url) as store:
            groups = store.held_groups()
    codes = [g for g in groups if g.reason_kind == UNMAPPED_CODE]
    others = [g for g in groups if g.reason_kind != UNMAPPED_CODE]
    if as_json:
        echo_json({"unmapped": [_group_json(g) for g in codes], "held": _by_kind(others)})
        return
    if not groups:
        click.echo("No held results.")
        return
    if codes:
        click.echo(f"Unmapped codes: {len(codes)} code(s), {sum(g.count for g in codes)} held")
        for group in codes:
            _echo_group(group, f"e.g. {group.example_value or '(no value)'}")
    for kind, members in _by_kind(others).items():
        click.echo(f"Held for {kind}: {sum(m['count'] for m in members)} result(s)")
        for group in (g for g in others if g.reason_kind == kind):
            _echo_group(group, group.example_reason)


def _echo_group(group: HeldGroup, example: str) -> None:
    system = f" ({group.code_system})" if group.code_system else ""
    units = ", ".join(group.units) or "no unit"
    click.echo(f"  {group.code or '(no code)'}{system} {group.code_text}".rstrip())
    click.echo(
        f"    {group.count} held · unit {units} · first seen {_when(group.first_seen)}"
        f" · last seen {_when(group.last_seen)}"
    )
    click.echo(f"    {example} (message {group.example_message or '(no MSH-10)'})")


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def _group_json(group: HeldGroup) -> dict[str, Any]:
    data = asdict(group)
    data["first_seen"] = group.first_seen.isoformat()
    data["last_seen"] = group.last_seen.isoformat()
    data["example"] = {
        "value": data.pop("example_value"),
        "message": data.pop("example_message"),
        "reason": data.pop("example_reason"),
    }
    return data


def _by_kind(groups: list[HeldGroup]) -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for group in groups:
        kinds.setdefault(group.reason_kind, []).append(_group_json(group))
    return kinds


@click.command("reprocess")
@click.option(
    "--unmapped",
    "only_unmapped",
    is_flag=True,
    help="Reprocess the messages with results held for an unmapped code.",
)
@click.option("--fhir-url", help="FHIR R4 base URL (default: fhir.url from the config).")
@CONFIG
@STORE
@JSON
def reprocess(
    only_unmapped: bool,
    fhir_url: str | None,
    config_path: Path,
    store_url: str | None,
    as_json: bool,
) -> None:
    """Map and push the held results that the mappings now cover.

    Runs each stored message that has unmapped results through the current mappings again;
    a message with a newly mapped result is pushed (writes are conditional, so what was
    pushed before does not change), its newly mapped results are marked resolved, and the
    reasons of those still held are updated. Exit status 1 if a message failed.

    Example: trialbridge reprocess --unmapped --fhir-url http://127.0.0.1:8080/fhir
    """
    if not only_unmapped:
        raise click.UsageError("say what to reprocess: --unmapped")
    with cli_errors():
        settings = load_settings(config_path)
        mappings = load_mappings(settings.mappings_dir)
        with (
            open_store(store_url or settings.store_url) as store,
            FhirClient.from_settings(
                settings, base_url=fhir_url, config_path=config_path
            ) as client,
        ):
            registry = Registry(store, load_study(settings.study_path))
            summary = reprocess_unmapped(
                store, client, settings, mappings, _progress, registry=registry
            )
    if as_json:
        echo_json(asdict(summary))
    else:
        _echo_reprocessed(summary)
    if summary.failed:
        raise click.ClickException(f"{summary.failed} message(s) failed; see above")


def _progress(row_ids: list[int]) -> Iterator[int]:
    with click.progressbar(row_ids, label="Reprocessing", file=sys.stderr) as bar:
        yield from bar


def _echo_reprocessed(summary: ReprocessSummary) -> None:
    click.echo(
        f"{summary.messages} message(s) with unmapped results: {summary.pushed} pushed, "
        f"{summary.unchanged} unchanged, {summary.failed} failed, "
        f"{summary.unavailable} no longer stored; {summary.resolved} result(s) resolved, "
        f"{summary.still_held} still held"
    )
    for error in summary.errors:
        click.echo(f"  {error}", err=True)


COMMANDS: list[click.Command] = [unmapped, reprocess]
