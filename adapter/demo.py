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
from pathlib import Path
from typing import Any, TypeVar

from adapter.config import Settings
from adapter.fhir_client import FhirClient
from adapter.mappings import MappingSet
from adapter.pipeline import PushSummary, push_translations, translate
from adapter.simulate import SimConfig, simulate, write_feed

T = TypeVar("T")
Progress = Callable[[Iterable[T], str], Iterable[T]]


@dataclass
class DemoResult:
    """What the demo did and what the FHIR server now holds."""

    feed_dir: Path
    files: int
    push: PushSummary
    landed_by_analyte: dict[str, int] = field(default_factory=dict)
    subject_mrn: str = ""
    subject_results: list[dict[str, str]] = field(default_factory=list)


def run_demo(
    out: Path,
    client: FhirClient,
    settings: Settings,
    mappings: MappingSet,
    progress: Progress[Path],
) -> DemoResult:
    """Write the feed into ``out``, push it through ``client``, and read back what landed."""
    write_feed(simulate(SimConfig()), out, force=True)
    files = sorted(out.glob("*.hl7"))
    translations = (
        item
        for path in progress(files, "Pushing the sample feed")
        for item in translate(path.read_bytes(), path.name, settings, mappings)
    )
    summary = push_translations(translations, client)
    result = DemoResult(out, len(files), summary)
    result.landed_by_analyte = landed_by_analyte(client, mappings)
    result.subject_mrn = _first_subject_mrn(out / "enrolment.csv")
    result.subject_results = subject_results(client, settings, result.subject_mrn)
    return result


def landed_by_analyte(client: FhirClient, mappings: MappingSet) -> dict[str, int]:
    """How many Observations the server holds for each study analyte (by LOINC code)."""
    counts: dict[str, int] = {}
    for key, analyte in mappings.analytes.items():
        found = client.search(
            "Observation", {"code": f"http://loinc.org|{analyte.loinc}", "_count": "500"}
        )
        counts[key] = len(found)
    return counts


def subject_results(client: FhirClient, settings: Settings, mrn: str) -> list[dict[str, str]]:
    """One patient's Observations, oldest first, as rows of text."""
    identifier = f"{settings.identifiers.patient}:NTCH|{mrn}"
    patients = client.search("Patient", {"identifier": identifier})
    if not patients:
        return []
    observations = client.search(
        "Observation",
        {"subject": f"Patient/{patients[0]['id']}", "_sort": "date", "_count": "500"},
    )
    return [_row(o) for o in observations]


def _row(observation: dict[str, Any]) -> dict[str, str]:
    quantity = observation.get("valueQuantity")
    value = (
        f"{quantity.get('comparator', '')}{quantity['value']} {quantity['code']}"
        if quantity
        else "-"
    )
    return {
        "date": str(observation.get("effectiveDateTime", "")),
        "analyte": str(observation["code"]["coding"][0].get("display", "")),
        "loinc": str(observation["code"]["coding"][0]["code"]),
        "value": value,
        "status": str(observation["status"]),
    }


def _first_subject_mrn(enrolment: Path) -> str:
    with enrolment.open(encoding="utf-8", newline="") as handle:
        first = next(csv.DictReader(handle))
    return str(first["mrn"])


def status_counts(rows: list[dict[str, str]]) -> Counter[str]:
    """How many of a subject's results are in each status."""
    return Counter(row["status"] for row in rows)
