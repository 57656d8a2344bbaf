"""The README's main job on the embedded default: start the local FHIR server, write the
sample LIS feed, push it, and read back what landed.

A thin I/O shell over the library: every step is a call a user could make on its own
(``dev-fhir``, ``simulate-lis``, ``push``).
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from adapter.build.subject import subject_transaction
from adapter.config import Settings
from adapter.errors import TrialBridgeError
from adapter.fhir_client import FhirClient
from adapter.mappings import MappingSet
from adapter.pipeline import push_messages
from adapter.scoring import Assessment, recompute_subjects, record_assessment
from adapter.service.summary import PushSummary
from adapter.simulate import SimConfig, simulate, write_feed
from adapter.store import incoming, open_store
from adapter.trial.importer import plan_import
from adapter.trial.registry import Registry
from adapter.trial.resources import subject_identifier
from adapter.trial.study import Study, load_study

T = TypeVar("T")
Progress = Callable[[Iterable[T], str], Iterable[T]]


@dataclass
class DemoResult:
    """What the demo did and what the FHIR server now holds."""

    feed_dir: Path
    files: int
    push: PushSummary
    enrolled: int = 0
    landed_by_analyte: dict[str, int] = field(default_factory=dict)
    subject_id: str = ""
    subject_results: list[dict[str, str]] = field(default_factory=list)
    report_files: list[str] = field(default_factory=list)
    export_files: list[str] = field(default_factory=list)
    assessments: int = 0
    scores: dict[str, int] = field(default_factory=dict)


def run_demo(
    out: Path,
    client: FhirClient,
    settings: Settings,
    mappings: MappingSet,
    progress: Progress[Path],
) -> DemoResult:
    """Write the feed into ``out``, enrol its subjects from the coordinator's CSV, push the
    feed through the inbox and the enrolment filter, and read back what landed."""
    write_feed(simulate(SimConfig()), out, force=True)
    files = sorted(out.glob("*.hl7"))
    store_path = out.parent / "demo-state.sqlite"
    for stale in out.parent.glob("demo-state.sqlite*"):
        stale.unlink()
    study = load_study(settings.study_path)
    with open_store(f"sqlite:///{store_path}") as store:
        registry = Registry(store, study)
        enrolled = _enrol_from_csv(registry, out / "enrolment.csv", client)
        messages = (
            m
            for path in progress(files, "Pushing the sample feed")
            for m in incoming(path.read_bytes(), path.name)
        )
        summary = push_messages(messages, client, settings, mappings, store, registry=registry)
        assessed = _assess_from_csv(registry, out / "assessments.csv", client)
        scores = recompute_subjects(client, registry, [s.subject_id for s in registry.subjects()])
    result = DemoResult(out, len(files), summary, enrolled=enrolled)
    result.assessments = assessed
    result.scores = {"computed": scores.computed, "not_computable": scores.not_computable,
                     "withdrawn": scores.withdrawn, "written": scores.written}  # fmt: skip
    result.landed_by_analyte = landed_by_analyte(client, mappings)
    first = registry_first_subject(out / "enrolment.csv")
    result.subject_id = first
    result.subject_results = subject_results(client, study, first)
    result.report_files = _write_report(client, study, mappings, out.parent / "report")
    result.export_files = _write_export(client, study, mappings, out.parent / "sdtm")
    return result


def _write_report(client: FhirClient, study: Study, mappings: MappingSet, out: Path) -> list[str]:
    """The research staff's report of the simulated trial, read back from the FHIR server."""
    from adapter.report import run_report  # pandas, matplotlib, lifelines: only when needed

    return run_report(client, study, mappings, out, as_of=date.today()).files


def _write_export(client: FhirClient, study: Study, mappings: MappingSet, out: Path) -> list[str]:
    """The trial as CDISC SDTM datasets (Dataset-JSON and XPT), next to the report."""
    from adapter.export import run_export  # pandas, pyreadstat: only when needed

    return run_export(client, study, mappings, out).files


def _assess_from_csv(registry: Registry, csv_path: Path, client: FhirClient) -> int:
    """The research nurse's assessments (ascites, encephalopathy, dialysis) at each visit:
    the inputs of MELD and Child-Pugh that the LIS does not send."""
    with csv_path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    subjects = {s.subject_id: s for s in registry.subjects()}
    for row in rows:
        assessment = Assessment(
            row["subject_id"],
            row["date"],
            row["ascites"],
            row["encephalopathy"],
            row["dialysis"] == "yes",
        )
        record_assessment(client, registry.study, subjects[row["subject_id"]], assessment)
    return len(rows)


def _enrol_from_csv(registry: Registry, csv_path: Path, client: FhirClient) -> int:
    plan = plan_import(
        csv_path.read_text(encoding="utf-8"),
        registry.study,
        registry.subjects(),
        name=csv_path.name,
    )
    if plan.problems:
        raise TrialBridgeError("the sample enrolment list is invalid: " + "; ".join(plan.problems))
    registry.enrol_many(r.subject for r in plan.rows)
    for row in plan.rows:
        if row.death_date:
            registry.record_vital_status(row.subject.subject_id, died_on=row.death_date)
    for subject in registry.subjects():
        client.transaction(subject_transaction(registry.study, subject.record))
    return len(plan.rows)


def landed_by_analyte(client: FhirClient, mappings: MappingSet) -> dict[str, int]:
    """How many Observations the server holds for each study analyte (by LOINC code)."""
    counts: dict[str, int] = {}
    for key, analyte in mappings.analytes.items():
        found = client.search(
            "Observation", {"code": f"http://loinc.org|{analyte.loinc}", "_count": "500"}
        )
        counts[key] = len(found)
    return counts


def subject_results(client: FhirClient, study: Study, subject_id: str) -> list[dict[str, str]]:
    """One subject's Observations (found by the pseudonym), oldest first, as rows of text."""
    identifier = subject_identifier(study, subject_id)
    patients = client.search("Patient", {"identifier": f"{identifier['system']}|{subject_id}"})
    if not patients:
        return []
    observations = client.search(
        "Observation",
        {"subject": f"Patient/{patients[0]['id']}", "_sort": "date", "_count": "500"},
    )
    return [_row(o) for o in observations]


def _row(observation: dict[str, Any]) -> dict[str, str]:
    value = value_text(observation)
    tags = observation.get("meta", {}).get("tag", [])
    return {
        "visit": str(tags[0]["code"]) if tags else "-",
        "date": str(observation.get("effectiveDateTime", "")),
        "analyte": str(observation["code"]["coding"][0].get("display", "")),
        "loinc": str(observation["code"]["coding"][0]["code"]),
        "value": value,
        "status": str(observation["status"]),
    }


def value_text(observation: dict[str, Any]) -> str:
    """An Observation's value as the table shows it: a quantity with its unit, a coded
    value's text (else its coding's display, else code), yes/no, a string, each component's
    value; the data-absent reason in brackets; ``-`` when there is none."""
    if quantity := observation.get("valueQuantity"):
        unit = quantity.get("code") or quantity.get("unit") or ""
        return f"{quantity.get('comparator', '')}{quantity.get('value', '')} {unit}".strip()
    if (concept := observation.get("valueCodeableConcept")) is not None:
        return _concept_text(concept)
    if isinstance(answer := observation.get("valueBoolean"), bool):
        return "yes" if answer else "no"
    for key in ("valueString", "valueInteger"):
        if key in observation:
            return str(observation[key])
    if components := observation.get("component"):
        return "; ".join(value_text(c) for c in components)
    if absent := observation.get("dataAbsentReason"):
        return f"({_concept_text(absent)})"
    return "-"


def _concept_text(concept: dict[str, Any]) -> str:
    if text := concept.get("text"):
        return str(text)
    codings = concept.get("coding") or [{}]
    return str(codings[0].get("display") or codings[0].get("code") or "-")


def registry_first_subject(enrolment: Path) -> str:
    """The first subject number of the coordinator's list."""
    with enrolment.open(encoding="utf-8", newline="") as handle:
        first = next(csv.DictReader(handle))
    return str(first["subject_id"])


def status_counts(rows: list[dict[str, str]]) -> Counter[str]:
    """How many of a subject's results are in each status."""
    return Counter(row["status"] for row in rows)
