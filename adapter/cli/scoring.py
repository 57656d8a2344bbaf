"""CLI commands of the liver scores in the flow: ``assess`` (a clinical assessment: ascites,
encephalopathy, dialysis) and ``scores recompute``. Each is a thin shell over
:mod:`adapter.scoring`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path

import click

from adapter.cli._common import CONFIG, FHIR_URL, JSON, cli_errors, echo_json
from adapter.config import Settings, load_settings
from adapter.fhir_client import FhirClient
from adapter.scoring import (
    Assessment,
    RecomputeSummary,
    load_scoring_settings,
    recompute_subjects,
    record_assessment,
)
from adapter.store import open_store
from adapter.trial.registry import Registry
from adapter.trial.study import Study, load_study


@dataclass
class _Session:
    settings: Settings
    registry: Registry
    client: FhirClient


@contextmanager
def _session(config_path: Path, fhir_url: str | None) -> Iterator[_Session]:
    settings = load_settings(config_path)
    study = load_study(settings.study_path)
    with (
        open_store(settings.store_url) as store,
        FhirClient.from_settings(settings, base_url=fhir_url, config_path=config_path) as client,
    ):
        yield _Session(settings, Registry(store, study), client)


def _effective(text: str, study: Study) -> str:
    """A date stays a date; a date-time without an offset gets the study's time zone."""
    try:
        if len(text) == 10:
            return date.fromisoformat(text).isoformat()
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not YYYY-MM-DD or YYYY-MM-DDTHH:MM[+HH:MM]", param_hint="--date"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=study.timezone)
    return moment.isoformat(timespec="seconds")


def score_counts(summary: RecomputeSummary) -> dict[str, object]:
    """The recomputation's counts and errors, without the list of every score."""
    return {k: v for k, v in asdict(summary).items() if k != "scores"}


def print_summary(summary: RecomputeSummary, as_json: bool) -> None:
    """The recomputation's counts (and, as JSON, every score)."""
    if as_json:
        echo_json(asdict(summary))
        return
    click.echo(
        f"Scores of {summary.subjects} subject(s), {summary.occasions} occasion(s): "
        f"{summary.computed} computed, {summary.not_computable} not computable, "
        f"{summary.withdrawn} withdrawn; {summary.written} written, "
        f"{summary.unchanged} unchanged"
    )
    for error in summary.errors:
        click.echo(f"  {error}", err=True)


@click.command("assess")
@click.argument("subject_id")
@click.option("--date", "when", required=True, help="YYYY-MM-DD, or a date-time with offset.")
@click.option("--ascites", type=click.Choice(["none", "mild", "moderate-severe"]))
@click.option("--encephalopathy", type=click.Choice(["none", "grade-1-2", "grade-3-4"]))
@click.option(
    "--dialysis",
    type=click.Choice(["yes", "no"]),
    help="Two or more dialyses, or 24 h of CVVHD, in the week before.",
)
@FHIR_URL
@CONFIG
@JSON
def assess(
    subject_id: str,
    when: str,
    ascites: str | None,
    encephalopathy: str | None,
    dialysis: str | None,
    fhir_url: str | None,
    config_path: Path,
    as_json: bool,
) -> None:
    """Record a clinical assessment (the Child-Pugh and MELD inputs the LIS does not send) as
    coded Observations on the trial's FHIR server, then recompute the subject's scores.
    Assessing the same subject at the same date again corrects the earlier answers.

    Example: trialbridge assess DDSC-001 --date 2024-01-22 --ascites mild
    --encephalopathy none --dialysis no
    """
    if ascites is None and encephalopathy is None and dialysis is None:
        raise click.UsageError("give at least one of --ascites, --encephalopathy, --dialysis")
    with cli_errors(), _session(config_path, fhir_url) as session:
        registry = session.registry
        subject = registry.subject(subject_id)
        assessment = Assessment(
            subject_id,
            _effective(when, registry.study),
            ascites,
            encephalopathy,
            None if dialysis is None else dialysis == "yes",
        )
        written = record_assessment(session.client, registry.study, subject, assessment)
        summary = recompute_subjects(
            session.client, registry, [subject_id], load_scoring_settings(config_path)
        )
    if not as_json:
        click.echo(f"recorded {len(written)} finding(s) of {subject_id} at {assessment.effective}")
    print_summary(summary, as_json)
    if summary.errors:
        raise click.ClickException("scores were not recomputed for every subject; see above")


@click.group("scores")
def scores() -> None:
    """The liver scores on the trial's FHIR server (MELD, MELD-Na, MELD 3.0, Child-Pugh,
    ALBI)."""


@scores.command("recompute")
@click.argument("subject_ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every enrolled subject.")
@FHIR_URL
@CONFIG
@JSON
def recompute(
    subject_ids: tuple[str, ...],
    every: bool,
    fhir_url: str | None,
    config_path: Path,
    as_json: bool,
) -> None:
    """Recompute the scores of the subjects named (or --all) from the results and
    assessments on the FHIR server. Only scores that changed are written; running it twice
    changes nothing.

    Example: trialbridge scores recompute --all --fhir-url http://127.0.0.1:8080/fhir
    """
    if bool(subject_ids) == every:
        raise click.UsageError("name the subjects, or give --all (not both)")
    with cli_errors(), _session(config_path, fhir_url) as session:
        registry = session.registry
        ids = [s.subject_id for s in registry.subjects()] if every else list(subject_ids)
        summary = recompute_subjects(
            session.client, registry, ids, load_scoring_settings(config_path)
        )
    print_summary(summary, as_json)
    if summary.errors:
        raise click.ClickException(f"{len(summary.errors)} subject(s) failed; see above")


COMMANDS: list[click.Command] = [assess, scores]
