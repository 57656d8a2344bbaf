"""CLI command group ``export``: the trial in the formats others read (``export sdtm``)."""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import click

from adapter.cli._common import CONFIG, FHIR_URL, STUDY, cli_errors, echo_json
from adapter.cli.report import PAGE_SIZE, _progress, research_inputs
from adapter.fhir_client import FhirClient

_FORMATS = ("json", "xpt")
_DEFAULT_SDTM = Path(__file__).resolve().parent.parent.parent / "config" / "sdtm.yaml"


@click.group("export")
def export() -> None:
    """Write the trial in a standard exchange format (CDISC SDTM), read from the FHIR server.

    Example: trialbridge export sdtm --study XHNKKY-DDSC --out sdtm
    """


def _formats(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(f.strip().lower() for f in value.split(",") if f.strip()))
    wrong = [f for f in chosen if f not in _FORMATS]
    if wrong or not chosen:
        raise click.BadParameter(f"{value!r}: give json, xpt or json,xpt")
    return chosen


@export.command("sdtm")
@FHIR_URL
@STUDY
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write the datasets into (created; files of an earlier export replaced).",
)
@click.option(
    "--format",
    "formats",
    default="json,xpt",
    show_default=True,
    callback=_formats,
    help="Comma-separated: json (CDISC Dataset-JSON v1.1), xpt (SAS XPORT v5).",
)
@click.option(
    "--created",
    is_flag=True,
    help="Stamp the files with the time of this run. Without it they carry the data's own time "
    "(the newest lastUpdated read), so the same server content gives identical files.",
)
@click.option(
    "--study-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The study definition (arms, visits, windows, time zone) [default: study.path "
    "from the configuration].",
)
@click.option(
    "--sdtm-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=_DEFAULT_SDTM,
    show_default=True,
    help="Submission facts the study file does not hold (country, site id).",
)
@CONFIG
@PAGE_SIZE
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def sdtm(
    fhir_url: str | None,
    study_id: str,
    out: Path,
    formats: tuple[str, ...],
    created: bool,
    study_file: Path | None,
    sdtm_file: Path,
    config_path: Path,
    page_size: int,
    as_json: bool,
) -> None:
    """Write the trial as CDISC SDTM datasets: TS, TA, TE, TV (from the study file), DM, LB
    (with CTCAE v5.0 grades; SUPPLB says why a result has none), SV and DS, each as
    Dataset-JSON v1.1 (<domain>.json) and SAS XPORT v5 (<domain>.xpt), and derivations.csv.
    Reads through FHIR search only. Exit code 1 when the study or server cannot be read.

    Example: trialbridge export sdtm --study XHNKKY-DDSC --out sdtm
    """
    from adapter.export import run_export
    from adapter.export.settings import load_sdtm_settings

    started = time.perf_counter()
    with cli_errors():
        settings, study, mappings = research_inputs(config_path, study_file, study_id)
        with FhirClient.from_settings(
            settings, base_url=fhir_url, config_path=config_path
        ) as client:
            summary = run_export(
                client,
                study,
                mappings,
                out,
                formats=formats,
                created=datetime.now(UTC) if created else None,
                settings=load_sdtm_settings(sdtm_file),
                page_size=page_size,
                progress=_progress,
            )
    elapsed = time.perf_counter() - started
    if as_json:
        echo_json({**asdict(summary), "seconds": round(elapsed, 2)})
        return
    left_out = sum(summary.omitted.values())
    click.echo(
        f"SDTM export of {summary.study}: {summary.subjects} subjects, {summary.lb_rows} LB rows "
        f"({summary.graded} with a CTCAE grade), {left_out} "
        f"Observation{'' if left_out == 1 else 's'} left out, in {elapsed:.1f} s"
    )
    for reason, count in summary.omitted.items():
        click.echo(f"  left out: {count} x {reason}")
    for path in summary.files:
        click.echo(f"  {path}")


COMMANDS: list[click.Command] = [export]
