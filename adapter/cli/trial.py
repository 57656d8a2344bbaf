"""CLI commands of the trial: ``enrol``, ``subjects`` (list, show, import, sync),
``withdraw`` and ``vital-status``. Each change is kept in the registry (the state store) and
published to the FHIR server as the pseudonymous Patient and the ResearchSubject."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from adapter.build.subject import subject_transaction
from adapter.cli._common import CONFIG, FHIR_URL, JSON, cli_errors, echo_json
from adapter.config import Settings, load_settings
from adapter.errors import FhirError
from adapter.fhir_client import FhirClient
from adapter.store import open_store
from adapter.trial.enrolment import EnrolledSubject, HospitalId
from adapter.trial.importer import plan_import
from adapter.trial.registry import EnrolmentError, NewSubject, Registry
from adapter.trial.study import load_study


@dataclass
class _Session:
    settings: Settings
    registry: Registry
    fhir_url: str | None
    config_path: Path


@contextmanager
def _session(config_path: Path, fhir_url: str | None) -> Iterator[_Session]:
    settings = load_settings(config_path)
    study = load_study(settings.study_path)
    with open_store(settings.store_url) as store:
        yield _Session(settings, Registry(store, study), fhir_url, config_path)


def _publish(session: _Session, subjects: list[EnrolledSubject]) -> None:
    """Send each subject's Patient and ResearchSubject; say how to retry if the server fails."""
    study = session.registry.study
    settings = session.settings
    try:
        with FhirClient.from_settings(
            settings, base_url=session.fhir_url, config_path=session.config_path
        ) as client:
            for subject in subjects:
                client.transaction(subject_transaction(study, subject.record))
    except FhirError as exc:
        raise EnrolmentError(
            f"the registry is updated, but the FHIR server did not take it: {exc}; "
            "run `trialbridge subjects sync` when it is back"
        ) from exc


def _summary(subject: EnrolledSubject) -> dict[str, Any]:
    record = subject.record
    return {
        "subject_id": record.subject_id,
        "arm": record.arm,
        "status": record.status,
        "sex": record.sex,
        "birth_year": record.birth_year,
        "consent_date": record.consent_date.isoformat(),
        "day0": subject.day0.isoformat(),
        "infusions": [d.isoformat() for d in subject.infusion_dates],
        "identifiers": len(subject.hospital_ids),
        "withdrawn_at": subject.withdrawn_at.isoformat() if subject.withdrawn_at else None,
        "died_on": record.died_on.isoformat() if record.died_on else None,
        "last_known_alive": record.last_known_alive.isoformat()
        if record.last_known_alive
        else None,
    }


def _hospital_id(text: str, without_authority: bool = False) -> HospitalId:
    value, sep, authority = text.partition("^")
    if without_authority and not sep and value.strip():
        return HospitalId(value.strip(), "")
    if not sep or not value.strip() or not authority.strip():
        raise click.BadParameter(
            f"{text!r} must be VALUE^AUTHORITY, e.g. 20986393^NTCH (or VALUE with "
            "--without-authority, for a LIS that never sends PID-3's assigning authority)"
        )
    return HospitalId(value.strip(), authority.strip())


def _warn_without_authority(subject_id: str, ids: tuple[HospitalId, ...]) -> None:
    for hospital_id in ids:
        if not hospital_id.authority:
            click.echo(
                f"warning: {subject_id}'s identifier has no assigning authority: every message "
                "whose PID-3 carries that number without one is taken as this subject's. Safe "
                "only while no other system sending numbers without an authority feeds "
                "TrialBridge; use VALUE^AUTHORITY once the LIS sends PID-3.4",
                err=True,
            )


@click.command("enrol")
@click.argument("subject_id")
@click.option(
    "--id",
    "ids",
    multiple=True,
    required=True,
    help="Hospital id as VALUE^AUTHORITY (MRN^NTCH); repeat for several.",
)
@click.option("--arm", required=True, help="Arm code from config/study.yaml.")
@click.option("--consent", type=click.DateTime(["%Y-%m-%d"]), required=True, help="Consent date.")
@click.option(
    "--infusion",
    "infusions",
    type=click.DateTime(["%Y-%m-%d"]),
    multiple=True,
    required=True,
    help="Infusion date; the first is day 0. Repeat for several.",
)
@click.option("--sex", type=click.Choice(["F", "M", "O", "U"]), required=True)
@click.option("--birth-year", type=int, required=True)
@click.option(
    "--override-age",
    is_flag=True,
    help="Enrol although the age at consent is outside the study's range.",
)
@click.option(
    "--without-authority",
    is_flag=True,
    help="Accept --id VALUE alone, for a LIS that never sends PID-3's assigning authority "
    "(a warning says what that risks).",
)
@FHIR_URL
@CONFIG
@JSON
def enrol(
    subject_id: str,
    ids: tuple[str, ...],
    arm: str,
    consent: datetime,
    infusions: tuple[datetime, ...],
    sex: str,
    birth_year: int,
    override_age: bool,
    without_authority: bool,
    fhir_url: str | None,
    config_path: Path,
    as_json: bool,
) -> None:
    """Enrol one subject: keep it in the registry and publish its pseudonymous Patient and
    ResearchSubject. Only enrolled subjects' results ever leave the hospital.

    Example: trialbridge enrol DDSC-023 --id 20986393^NTCH --arm low-dose --consent 2024-03-01
    --infusion 2024-03-15 --sex F --birth-year 1961
    """
    with cli_errors(), _session(config_path, fhir_url) as session:
        new = NewSubject(
            subject_id,
            tuple(_hospital_id(i, without_authority) for i in ids),
            arm,
            consent.date(),
            tuple(d.date() for d in infusions),
            sex,
            birth_year,
        )
        subject = session.registry.enrol(
            new, override_age=override_age, without_authority=without_authority
        )
        _warn_without_authority(subject_id, new.hospital_ids)
        _publish(session, [subject])
        _print(_summary(subject), as_json, f"enrolled {subject_id} in {arm}")


def _print(data: dict[str, Any], as_json: bool, text: str) -> None:
    if as_json:
        echo_json(data)
    else:
        click.echo(text)


@click.group("subjects")
def subjects() -> None:
    """The enrolment registry: list, show, import the coordinator's CSV, sync to FHIR."""


@subjects.command("list")
@CONFIG
@JSON
def subjects_list(config_path: Path, as_json: bool) -> None:
    """List the enrolled subjects (no hospital identifiers are printed).

    Example: trialbridge subjects list --json
    """
    with cli_errors(), _session(config_path, None) as session:
        rows = [_summary(s) for s in session.registry.subjects()]
        if as_json:
            echo_json(rows)
            return
        for row in rows:
            click.echo(
                f"{row['subject_id']:<12} {row['arm']:<18} {row['status']:<10} day 0 {row['day0']}"
            )
        click.echo(f"{len(rows)} subject(s)")


@subjects.command("show")
@click.argument("subject_id")
@CONFIG
@JSON
def subjects_show(subject_id: str, config_path: Path, as_json: bool) -> None:
    """Show one subject.

    Example: trialbridge subjects show DDSC-001
    """
    with cli_errors(), _session(config_path, None) as session:
        row = _summary(session.registry.subject(subject_id))
        if as_json:
            echo_json(row)
        else:
            for key, value in row.items():
                click.echo(f"{key:<18} {value}")


@subjects.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--dry-run", is_flag=True, help="Check every row and say what would happen; change nothing."
)
@click.option(
    "--override-age", is_flag=True, help="Accept ages at consent outside the study's range."
)
@FHIR_URL
@CONFIG
@JSON
def subjects_import(
    csv_file: Path,
    dry_run: bool,
    override_age: bool,
    fhir_url: str | None,
    config_path: Path,
    as_json: bool,
) -> None:
    """Enrol every subject of the coordinator's CSV, all or nothing.

    Columns: subject_id, mrn, mrn_authority, arm, consent_date, infusion_dates (a;b),
    sex, birth_year; optional other_ids (value^authority;...) and death_date.

    Example: trialbridge subjects import enrolment.csv --dry-run
    """
    with cli_errors(), _session(config_path, fhir_url) as session:
        registry = session.registry
        plan = plan_import(
            csv_file.read_text(encoding="utf-8-sig"),
            registry.study,
            registry.subjects(),
            name=csv_file.name,
            override_age=override_age,
        )
        result = {"rows": len(plan.rows), "problems": list(plan.problems), "dry_run": dry_run}
        if plan.problems:
            _print(result, as_json, "\n".join(plan.problems))
            raise click.ClickException(f"{len(plan.problems)} problem(s); nothing was imported")
        if not dry_run:
            registry.enrol_many(r.subject for r in plan.rows)
            for row in plan.rows:
                if row.death_date:
                    registry.record_vital_status(row.subject.subject_id, died_on=row.death_date)
            _publish(session, [registry.subject(r.subject.subject_id) for r in plan.rows])
        verb = "would enrol" if dry_run else "enrolled"
        _print(result, as_json, f"{verb} {len(plan.rows)} subject(s) from {csv_file.name}")


@subjects.command("sync")
@FHIR_URL
@CONFIG
def subjects_sync(fhir_url: str | None, config_path: Path) -> None:
    """Publish every subject's Patient and ResearchSubject again (idempotent).

    Example: trialbridge subjects sync --fhir-url http://127.0.0.1:8080/fhir
    """
    with cli_errors(), _session(config_path, fhir_url) as session:
        everyone = session.registry.subjects()
        _publish(session, everyone)
        click.echo(f"published {len(everyone)} subject(s)")


@click.command("withdraw")
@click.argument("subject_id")
@click.option(
    "--at", type=click.DateTime(), help="When (default: now). Forwarding stops from then."
)
@FHIR_URL
@CONFIG
def withdraw(subject_id: str, at: datetime | None, fhir_url: str | None, config_path: Path) -> None:
    """Withdraw a subject: nothing more is forwarded from that moment; what was sent stays,
    and the ResearchSubject says so.

    Example: trialbridge withdraw DDSC-007
    """
    moment = at.replace(tzinfo=at.tzinfo or UTC) if at else None
    with cli_errors(), _session(config_path, fhir_url) as session:
        subject = session.registry.withdraw(subject_id, moment)
        _publish(session, [subject])
        click.echo(f"{subject_id} withdrawn at {subject.withdrawn_at:%Y-%m-%d %H:%M} UTC")


@click.command("vital-status")
@click.argument("subject_id")
@click.option("--died", type=click.DateTime(["%Y-%m-%d"]), help="Date of death.")
@click.option("--alive", type=click.DateTime(["%Y-%m-%d"]), help="Date last known alive.")
@FHIR_URL
@CONFIG
def vital_status(
    subject_id: str,
    died: datetime | None,
    alive: datetime | None,
    fhir_url: str | None,
    config_path: Path,
) -> None:
    """Record a death outside the hospital, or the date a subject was last known alive
    (survival at one year is the primary endpoint).

    Example: trialbridge vital-status DDSC-004 --died 2024-06-01
    """
    with cli_errors(), _session(config_path, fhir_url) as session:
        subject = session.registry.record_vital_status(
            subject_id,
            died_on=died.date() if died else None,
            alive_on=alive.date() if alive else None,
        )
        _publish(session, [subject])
        click.echo(f"{subject_id}: {_summary(subject)['died_on'] or 'alive'}")


COMMANDS: list[click.Command] = [enrol, subjects, withdraw, vital_status]
