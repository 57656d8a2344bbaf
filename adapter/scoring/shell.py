"""The I/O shell of scoring: read a subject's inputs from the FHIR server, compute with the
pure core, write only the scores that changed; record clinical assessments.

Works against any FHIR R4 server through :class:`~adapter.fhir_client.FhirClient` (search
with paging, transaction). A subject that fails (server error, no Patient yet) is reported in
the summary and never stops the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from adapter.build import search_token
from adapter.build.observation import LOINC
from adapter.errors import FhirError
from adapter.fhir_client import FhirClient
from adapter.lifecycle import identifier_value
from adapter.scores.codes import SCORE_CODES, SCORE_SYSTEM
from adapter.scoring.assessments import (
    ASSESSMENT_SYSTEM,
    FINDINGS,
    Assessment,
    assessment_observations,
)
from adapter.scoring.core import (
    COMPUTED,
    NOT_COMPUTABLE,
    WITHDRAWN,
    Outcome,
    SubjectFacts,
    occasions,
    score_occasion,
)
from adapter.scoring.inputs import LAB_LOINC, read_input
from adapter.scoring.resources import (
    ScoreContext,
    comparable,
    score_observation,
    score_transaction,
)
from adapter.scoring.settings import ScoringSettings, load_scoring_settings
from adapter.trial.enrolment import EnrolledSubject
from adapter.trial.registry import Registry
from adapter.trial.resources import subject_identifier
from adapter.trial.study import Study
from adapter.trial.visits import visit_of


@dataclass(frozen=True, slots=True)
class ScoreLine:
    """One score as written (or left unchanged) on the server."""

    subject: str
    score: str
    effective: str
    visit: str
    state: str  # computed | not-computable | withdrawn
    status: str
    value: str  # "" when there is none
    reason: str


@dataclass
class RecomputeSummary:
    """What a recomputation did: counts a person (or a script, with --json) can check."""

    subjects: int = 0
    occasions: int = 0
    computed: int = 0
    not_computable: int = 0
    withdrawn: int = 0
    written: int = 0  # score Observations created or changed
    unchanged: int = 0  # recomputed to exactly what the server holds: not written
    scores: list[ScoreLine] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def recompute_subjects(
    client: FhirClient,
    registry: Registry,
    subject_ids: Iterable[str],
    settings: ScoringSettings | None = None,
) -> RecomputeSummary:
    """Recompute every score of the given subjects from what the FHIR server holds now."""
    settings = settings or load_scoring_settings()
    enrolled = {s.subject_id: s for s in registry.subjects()}
    summary = RecomputeSummary()
    for subject_id in subject_ids:
        subject = enrolled.get(subject_id)
        if subject is None:
            summary.errors.append(f"{subject_id}: not enrolled")
            continue
        try:
            _recompute_one(client, registry.study, subject, settings, summary)
        except FhirError as exc:
            summary.errors.append(f"{subject_id}: {exc}")
    return summary


def _recompute_one(
    client: FhirClient,
    study: Study,
    subject: EnrolledSubject,
    settings: ScoringSettings,
    summary: RecomputeSummary,
) -> None:
    ctx = _context(client, study, subject, settings)
    observations = _search_codes(client, ctx.patient_ref, _input_tokens())
    inputs = [
        found
        for o in observations
        if (found := read_input(o, study.timezone, preliminary=settings.count_preliminary))
    ]
    stored = {
        identifier_value(o): o
        for o in _search_codes(client, ctx.patient_ref, _score_tokens())
        if o.get("identifier")
    }
    facts = SubjectFacts(
        subject.subject_id,
        subject.record.sex,
        subject.record.birth_year,
        subject.subject_id in settings.cholestatic_subjects,
    )
    summary.subjects += 1
    for occasion in occasions(inputs, settings.pairing_window):
        summary.occasions += 1
        outcomes = score_occasion(occasion, facts, study.timezone)
        _write(client, ctx, outcomes, stored, summary)


def _write(
    client: FhirClient,
    ctx: ScoreContext,
    outcomes: Sequence[Outcome],
    stored: dict[str, dict[str, Any]],
    summary: RecomputeSummary,
) -> None:
    """Send the scores of one occasion that differ from the stored ones, in one transaction."""
    changed: list[dict[str, Any]] = []
    inputs: list[str] = []
    for outcome in outcomes:
        resource = score_observation(outcome, ctx)
        current = stored.get(identifier_value(resource))
        if current is not None and comparable(current) == comparable(resource):
            summary.unchanged += 1
        else:
            changed.append(resource)
            inputs.extend(i.reference for i in outcome.inputs)
        _count(outcome, resource, ctx, summary)
    if changed:
        recorded = datetime.now(UTC).isoformat(timespec="seconds")
        client.transaction(score_transaction(changed, inputs, recorded))
        summary.written += len(changed)


def _count(
    outcome: Outcome, resource: dict[str, Any], ctx: ScoreContext, summary: RecomputeSummary
) -> None:
    summary.computed += outcome.state == COMPUTED
    summary.not_computable += outcome.state == NOT_COMPUTABLE
    summary.withdrawn += outcome.state == WITHDRAWN
    tags = (resource.get("meta") or {}).get("tag", [])
    summary.scores.append(
        ScoreLine(
            subject=ctx.subject_id,
            score=outcome.key,
            effective=outcome.effective,
            visit=str(tags[0]["code"]) if tags else "",
            state=outcome.state,
            status=outcome.status,
            value="" if outcome.value is None else str(outcome.value),
            reason=outcome.reason or "",
        )
    )


def _context(
    client: FhirClient, study: Study, subject: EnrolledSubject, settings: ScoringSettings
) -> ScoreContext:
    return ScoreContext(
        study=study,
        study_ref=_study_ref(client, study),
        patient_ref=_patient_ref(client, study, subject.subject_id),
        subject_id=subject.subject_id,
        day0=subject.day0,
        identifier_system=settings.identifier_system,
        window=settings.pairing_window,
    )


def _patient_ref(client: FhirClient, study: Study, subject_id: str) -> str:
    identifier = subject_identifier(study, subject_id)
    found = client.search("Patient", {"identifier": f"{identifier['system']}|{subject_id}"})
    if not found:
        raise FhirError(
            f"no Patient for {subject_id} on the FHIR server; run `trialbridge subjects sync`"
        )
    return f"Patient/{found[0]['id']}"


def _study_ref(client: FhirClient, study: Study) -> str:
    token = f"{study.identifier_system}|{study.identifier}"
    found = client.search("ResearchStudy", {"identifier": token})
    if not found:
        raise FhirError(
            f"no ResearchStudy {study.identifier} on the FHIR server; "
            "run `trialbridge subjects sync`"
        )
    return f"ResearchStudy/{found[0]['id']}"


def _input_tokens() -> list[str]:
    return [f"{LOINC}|{code}" for code in LAB_LOINC] + [
        f"{ASSESSMENT_SYSTEM}|{code}" for code in FINDINGS
    ]


def _score_tokens() -> list[str]:
    return [f"{SCORE_SYSTEM}|{score.code}" for score in SCORE_CODES.values()]


def _search_codes(client: FhirClient, patient_ref: str, tokens: list[str]) -> list[dict[str, Any]]:
    codes = ",".join(quote(token, safe="") for token in tokens)
    query = f"subject={quote(patient_ref, safe='')}&code={codes}&_count=1000"
    return client.search("Observation", query)


def record_assessment(
    client: FhirClient, study: Study, subject: EnrolledSubject, assessment: Assessment
) -> list[str]:
    """Write one clinical assessment (one Observation per finding given, updated in place for
    the same subject, finding and time); the identifiers written."""
    patient_ref = _patient_ref(client, study, subject.subject_id)
    visit = visit_of(assessment.effective, subject.day0, study) if subject.day0 else None
    observations = assessment_observations(
        assessment,
        study=study,
        study_ref=_study_ref(client, study),
        patient_ref=patient_ref,
        visit=visit,
    )
    entries = []
    for observation in observations:
        identifier = observation["identifier"][0]
        token = search_token(identifier["system"], identifier["value"])
        entries.append(
            {
                "resource": observation,
                "request": {"method": "PUT", "url": f"Observation?identifier={token}"},
            }
        )
    client.transaction({"resourceType": "Bundle", "type": "transaction", "entry": entries})
    return [identifier_value(o) for o in observations]
