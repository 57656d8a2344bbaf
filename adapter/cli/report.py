"""CLI command ``report``: the research staff's tables, plots and survival from the FHIR store."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from adapter.cli._common import CONFIG, FHIR_URL, STUDY, cli_errors, echo_json
from adapter.config import Settings, load_settings
from adapter.errors import ConfigError
from adapter.fhir_client import FhirClient
from adapter.mappings import MappingSet, load_mappings
from adapter.trial.study import VISIT_RULES, Study, load_study

if TYPE_CHECKING:
    from adapter.report.model import SubjectData

# adapter.report (pandas, matplotlib, lifelines) is imported when the command runs, so the
# other commands start fast; this is adapter.report.reader.DEFAULT_PAGE_SIZE.
_PAGE_SIZE = 500


def _progress(items: Sequence[SubjectData], label: str) -> Iterator[SubjectData]:
    with click.progressbar(
        items, label=label, file=sys.stderr, item_show_func=_subject_label
    ) as bar:
        yield from bar


def _subject_label(subject: SubjectData | None) -> str:
    return subject.subject if subject else ""


def research_inputs(
    config_path: Path, study_file: Path | None, study_id: str
) -> tuple[Settings, Study, MappingSet]:
    """The configuration, the study (``--study-file``, else the configuration's study.path;
    it must be ``study_id``) and the mappings the report and the export read with."""
    settings = load_settings(config_path)
    study_file = study_file or settings.study_path
    study = load_study(study_file)
    if study.identifier != study_id:
        raise ConfigError(
            f"defines study {study.identifier}, not {study_id}; "
            "give the study's own file with --study-file",
            path=str(study_file),
        )
    mappings = load_mappings(settings.mappings_dir)
    study.check_analytes(mappings.analytes, str(settings.mappings_dir / "analytes.yaml"))
    return settings, study, mappings


PAGE_SIZE = click.option(
    "--page-size",
    type=click.IntRange(min=1),
    default=_PAGE_SIZE,
    show_default=True,
    help="Results asked for per search page (_count); paging links are followed.",
)


@click.command("report")
@FHIR_URL
@STUDY
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write the report into (created; files of an earlier report replaced).",
)
@click.option(
    "--format",
    "formats",
    type=click.Choice(["xlsx"]),
    multiple=True,
    help="Also write report.xlsx, a sheet per table (CSV and HTML are always written).",
)
@click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Date that decides what is due or overdue [default: today].",
)
@click.option(
    "--rule",
    type=click.Choice(VISIT_RULES),
    help="Which value counts when a window holds several [default: the study's rule].",
)
@click.option(
    "--study-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The study definition (visits, windows, time zone, rule) [default: study.path "
    "from the configuration].",
)
@CONFIG
@PAGE_SIZE
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def report(
    fhir_url: str | None,
    study_id: str,
    out: Path,
    formats: tuple[str, ...],
    as_of: datetime | None,
    rule: str | None,
    study_file: Path | None,
    config_path: Path,
    page_size: int,
    as_json: bool,
) -> None:
    """Write the trial report from the FHIR server: subjects.csv, visits.csv (the value per
    subject, visit and analyte or score, by the study's rule), summary.csv (per arm and visit:
    n, median, IQR, min, max, change from baseline), completeness.csv (missing, overdue, out
    of window), survival.csv (Kaplan-Meier at one year), excluded.csv, and report.html (all of
    it with plots, self-contained). Reads through FHIR search only.

    Example: trialbridge report --fhir-url http://127.0.0.1:8080/fhir --study XHNKKY-DDSC --out rep
    """
    from adapter.report import run_report

    started = time.perf_counter()
    with cli_errors():
        settings, study, mappings = research_inputs(config_path, study_file, study_id)
        with FhirClient.from_settings(
            settings, base_url=fhir_url, config_path=config_path
        ) as client:
            try:
                summary = run_report(
                    client,
                    study,
                    mappings,
                    out,
                    as_of=as_of.date() if as_of else date.today(),
                    rule=rule,
                    xlsx="xlsx" in formats,
                    page_size=page_size,
                    progress=_progress,
                )
            except OSError as exc:  # the output folder or a file in it cannot be written
                where = exc.filename or out
                raise click.ClickException(f"cannot write {where}: {exc.strerror}") from exc
    elapsed = time.perf_counter() - started
    if as_json:
        echo_json({**asdict(summary), "seconds": round(elapsed, 2)})
        return
    click.echo(
        f"Report of {summary.study}: {summary.subjects} subjects, {summary.results} results "
        f"({summary.excluded} Observations not used) in {elapsed:.1f} s"
    )
    for path in summary.files:
        click.echo(f"  {path}")


COMMANDS: list[click.Command] = [report]
