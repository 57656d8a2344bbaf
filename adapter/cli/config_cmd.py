"""CLI commands for a deployment's configuration: ``config check`` (validate every file the
service reads, as start-up does) and ``init DIR`` (write a skeleton to edit)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from adapter.cli._common import CONFIG, JSON, cli_errors, config_found, echo_json
from adapter.deployment import CONFIG_NAME, check_deployment, init_deployment


@click.group("config")
def config_group() -> None:
    """The deployment's configuration files.

    Example: trialbridge config check --config /etc/trialbridge/trialbridge.yaml
    """


@config_group.command("check")
@CONFIG
@JSON
def config_check(config_path: Path, as_json: bool) -> None:
    """Validate every configuration file the service reads, as ``trialbridge run`` does at
    start-up: the configuration and each of its sections (unknown keys too), the
    credentials it names, the study (keys, arms, scores, visit windows) and the mappings,
    and that every study analyte is in the mappings. Errors name file, line and key. Exit
    status 1 when anything is wrong.

    Example: trialbridge config check --config /etc/trialbridge/trialbridge.yaml
    """
    with cli_errors():
        results = check_deployment(config_path)
    errors = [r for r in results if r.error]
    if as_json:
        echo_json({"config": config_found(), "results": [asdict(r) for r in results]})
    else:
        click.echo(f"Configuration: {config_found()}")
        for r in results:
            text = f"error  {r.error}" if r.error else f"ok     {r.summary}"
            click.echo(f"  {r.part:<15} {text}")
        click.echo(f"{len(errors)} error(s)")
    if errors:
        raise SystemExit(1)


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite files that are already there.")
def init_command(directory: Path, force: bool) -> None:
    """Write a deployment's skeleton into DIRECTORY to edit: trialbridge.yaml (the service;
    paths in it are relative to DIRECTORY), study.yaml (the study) and mappings/ (LIS codes
    and units), as shipped. Then set fhir.url, the sources and store.url, and run
    ``trialbridge config check``.

    Example: trialbridge init /etc/trialbridge
    """
    with cli_errors():
        written = init_deployment(directory, force=force)
    for path in written:
        click.echo(f"wrote {path}")
    config = directory / CONFIG_NAME
    click.echo(
        f"Next: edit {config} (fhir.url, lis.timezone, sources, store.url), then\n"
        f"  trialbridge config check --config {config}\n"
        f"  (or set TRIALBRIDGE_CONFIG={config}; {Path('/etc/trialbridge') / CONFIG_NAME} "
        "is found without either)"
    )


COMMANDS: list[click.Command] = [config_group, init_command]
