"""The report's only I/O with the trial: FHIR searches through :class:`FhirClient`.

Reads the ResearchStudy by identifier, its ResearchSubjects with their Patients
(``_include``), then each subject's Observations of the study's analytes and scores, following
the server's paging links. Never the adapter's own state store: the report runs anywhere with
read access to the trial server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import quote

from adapter.errors import StudyNotFoundError
from adapter.fhir_client import FhirClient
from adapter.report.extract import Catalogue, measurements_of, subject_of
from adapter.report.model import Measurement, Skipped, SubjectData, TrialData
from adapter.trial.resources import study_search
from adapter.trial.study import Study

Progress = Callable[[Sequence[SubjectData], str], Iterable[SubjectData]]
"""Wraps the subjects as they are read (a progress bar); gets them and a label."""
DEFAULT_PAGE_SIZE = 500
MAX_INCLUDE_PAGE = 400


def no_progress(items: Sequence[SubjectData], label: str) -> Iterable[SubjectData]:
    """The default :data:`Progress`: shows nothing."""
    return items


def read_trial(
    client: FhirClient,
    study: Study,
    cat: Catalogue,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
    progress: Progress = no_progress,
) -> TrialData:
    """Everything the report needs about ``study`` from the server ``client`` talks to."""
    study_id = find_study(client, study)
    subjects = read_subjects(client, study, study_id, page_size)
    measurements: list[Measurement] = []
    skipped: list[Skipped] = []
    for subject in progress(subjects, "Reading subjects' results"):
        observations = read_observations(client, subject.patient_ref, cat, page_size)
        kept, dropped = measurements_of(
            observations, subject.subject, cat, f"ResearchStudy/{study_id}", study
        )
        measurements.extend(kept)
        skipped.extend(dropped)
    return TrialData(study_id, tuple(subjects), tuple(measurements), tuple(skipped))


def find_study(client: FhirClient, study: Study) -> str:
    """The logical id of the ResearchStudy with the study's identifier."""
    found = client.search("ResearchStudy", study_search(study))
    if not found:
        raise StudyNotFoundError(
            f"no ResearchStudy with identifier {study.identifier_system}|{study.identifier} "
            f"on {client.base_url}; check --study and --fhir-url"
        )
    return str(sorted(r["id"] for r in found)[0])


def read_subjects(
    client: FhirClient, study: Study, study_id: str, page_size: int
) -> list[SubjectData]:
    """The study's ResearchSubjects with their Patients, sorted by subject number.

    A page holds each subject and its included Patient, so it is asked for at most
    :data:`MAX_INCLUDE_PAGE` subjects: servers cap what one page may include (Medplum at
    1,000 resources; HAPI has a similar limit)."""
    query = (
        f"study={quote('ResearchStudy/' + study_id, safe='')}"
        f"&_include=ResearchSubject:individual&_count={min(page_size, MAX_INCLUDE_PAGE)}"
    )
    resources = client.search("ResearchSubject", query)
    patients = {f"Patient/{r['id']}": r for r in resources if r.get("resourceType") == "Patient"}
    subjects = [
        subject_of(r, patients, study)
        for r in resources
        if r.get("resourceType") == "ResearchSubject"
    ]
    return sorted(subjects, key=lambda s: (s.subject, s.patient_ref))


def read_observations(
    client: FhirClient, patient_ref: str, cat: Catalogue, page_size: int
) -> list[dict[str, Any]]:
    """One subject's Observations of the study's measures, every page."""
    if not patient_ref:
        return []
    codes = ",".join(quote(token, safe="") for token in cat.code_tokens())
    query = f"subject={quote(patient_ref, safe='')}&code={codes}&_count={page_size}"
    return client.search("Observation", query)
