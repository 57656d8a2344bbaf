"""Stage "export": the trial as CDISC SDTM datasets, from the FHIR store alone.

``trialbridge export sdtm`` writes, per domain (TS, TA, TE, TV, DM, LB with SUPPLB, SV, DS), a
CDISC Dataset-JSON v1.1 file and a SAS XPORT v5 file, plus ``derivations.csv`` (how each
derived variable is computed, as a define.xml's methods would say).

Layers, as in every stage:

- reading: the report's reader (:mod:`adapter.report.reader`: FHIR search only, the same
  paging and server-side filters, so it runs anywhere with read access to the server);
- the pure core: :mod:`~adapter.export.lab` (Observation -> record), :mod:`~adapter.export.lb`
  (LB, SUPPLB, SV), :mod:`~adapter.export.domains` (TS, TA, TE, TV, DM, DS), with CDISC terms
  in :mod:`~adapter.export.cdisc` and the variables in :mod:`~adapter.export.datasets`;
- writing: :mod:`~adapter.export.writers`.

Usage::

    with FhirClient(url) as client:
        summary = run_export(client, load_study(), load_mappings(), Path("sdtm"))
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapter.errors import ExportError
from adapter.export.datasets import DM, DOMAINS, DS, LB, SUPPLB, SV, TA, TE, TS, TV, Dataset
from adapter.export.domains import dm_row, ds_rows, ta_rows, te_rows, ts_rows, tv_rows, usubjid
from adapter.export.lab import LabRecord, lab_record
from adapter.export.lb import lb_rows, place, sv_rows
from adapter.export.settings import SdtmSettings, load_sdtm_settings
from adapter.export.writers import FileMeta, check_limits, file_name, write_json, write_xpt
from adapter.fhir_client import FhirClient
from adapter.mappings import MappingSet
from adapter.report.extract import Catalogue, catalogue
from adapter.report.model import ANALYTE, SubjectData
from adapter.report.reader import (
    DEFAULT_PAGE_SIZE,
    Progress,
    find_study,
    no_progress,
    read_observations,
    read_subjects,
)
from adapter.trial.study import Study

__all__ = ["FORMATS", "ExportSummary", "analyte_catalogue", "build_datasets", "run_export"]

FORMATS = ("json", "xpt")


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What an export wrote, for the CLI (and ``--json``)."""

    study: str
    subjects: int
    lb_rows: int
    graded: int
    omitted: dict[str, int]  # Observations not in LB, by reason
    files: list[str]
    modified: str


@dataclass
class _Collected:
    subjects: list[SubjectData] = field(default_factory=list)
    lb: list[dict[str, Any]] = field(default_factory=list)
    supplb: list[dict[str, Any]] = field(default_factory=list)
    sv: list[dict[str, Any]] = field(default_factory=list)
    omitted: Counter[str] = field(default_factory=Counter)
    modified: str = ""


def analyte_catalogue(study: Study, mappings: MappingSet) -> Catalogue:
    """The study's catalogue without its scores: LB holds laboratory tests only."""
    full = catalogue(study, mappings)
    measures = tuple(m for m in full.measures if m.kind == ANALYTE)
    keys = {m.key for m in measures}
    by_code = {code: key for code, key in full.by_code.items() if key in keys}
    return Catalogue(measures, by_code, full.analytes, mappings)


def run_export(
    client: FhirClient,
    study: Study,
    mappings: MappingSet,
    out: Path,
    *,
    formats: tuple[str, ...] = FORMATS,
    created: datetime | None = None,
    settings: SdtmSettings | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    progress: Progress = no_progress,
) -> ExportSummary:
    """Read the study from the server and write its SDTM datasets into ``out`` (created)."""
    settings = settings or load_sdtm_settings()
    make_folder(out)
    cat = analyte_catalogue(study, mappings)
    study_id = find_study(client, study)
    subjects = read_subjects(client, study, study_id, page_size)
    collected = _Collected(subjects=subjects)
    for subject in progress(subjects, "Reading subjects' results"):
        observations = read_observations(client, subject.patient_ref, cat, page_size)
        _collect(collected, subject, observations, cat, f"ResearchStudy/{study_id}", study)
    datasets = build_datasets(study, settings, collected)
    meta = _file_meta(study, collected.modified, created)
    files = write_datasets(datasets, out, meta, formats)
    return ExportSummary(
        study=study.identifier,
        subjects=len(subjects),
        lb_rows=len(collected.lb),
        graded=sum(1 for r in collected.lb if r["LBTOXGR"] != ""),
        omitted=dict(sorted(collected.omitted.items())),
        files=[str(p) for p in files],
        modified=meta.modified,
    )


def _collect(
    collected: _Collected,
    subject: SubjectData,
    observations: list[dict[str, Any]],
    cat: Catalogue,
    study_ref: str,
    study: Study,
) -> None:
    records: list[LabRecord] = []
    for observation in observations:
        record = lab_record(observation, subject.subject, cat, study_ref, study)
        if isinstance(record, str):
            collected.omitted[record] += 1
        else:
            records.append(record)
        stamp = str((observation.get("meta") or {}).get("lastUpdated", ""))
        collected.modified = max(collected.modified, stamp)
    collected.modified = max(collected.modified, subject.last_updated)
    subject_id = usubjid(study, subject.subject)
    placed = place(records, subject, study)
    lab = lb_rows(placed, study, subject_id)
    collected.lb.extend(lab.lb)
    collected.supplb.extend(lab.supplb)
    collected.sv.extend(sv_rows(placed, subject, study, subject_id))


def build_datasets(study: Study, settings: SdtmSettings, collected: _Collected) -> list[Dataset]:
    """Every domain as a dataset, rows in key order."""
    subjects = sorted(collected.subjects, key=lambda s: (s.subject, s.patient_ref))
    rows: dict[str, list[dict[str, Any]]] = {
        TS.name: ts_rows(study, settings, len(subjects)),
        TA.name: ta_rows(study),
        TE.name: te_rows(study),
        TV.name: tv_rows(study),
        DM.name: [dm_row(study, settings, s) for s in subjects],
        LB.name: collected.lb,
        SUPPLB.name: collected.supplb,
        SV.name: collected.sv,
        DS.name: [row for s in subjects for row in ds_rows(study, s)],
    }
    return [Dataset(d, [[row[name] for name in d.names] for row in rows[d.name]]) for d in DOMAINS]


def write_datasets(
    datasets: list[Dataset], out: Path, meta: FileMeta, formats: tuple[str, ...]
) -> list[Path]:
    """Each dataset in each format, then derivations.csv; the paths written."""
    make_folder(out)
    stamp = datetime.fromisoformat(meta.modified.replace("Z", "+00:00"))
    paths = []
    for dataset in datasets:
        if "xpt" in formats:  # XPORT v5's limits; Dataset-JSON alone has none of them
            check_limits(dataset)
        if "json" in formats:
            paths.append(write_json(dataset, out / file_name(dataset.domain, "json"), meta))
        if "xpt" in formats:
            paths.append(write_xpt(dataset, out / file_name(dataset.domain, "xpt"), stamp))
    paths.append(_write_derivations(out / "derivations.csv"))
    return paths


def make_folder(out: Path) -> None:
    """Create the output folder (before reading, so a bad --out fails at once)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(
            f"cannot create the output folder {out}: {exc.strerror}; give another --out"
        ) from exc


def _file_meta(study: Study, modified: str, created: datetime | None) -> FileMeta:
    """The data's own time (newest meta.lastUpdated read; the study's start when the server
    gave none) is both dates, unless a creation time was asked for."""
    modified = modified or f"{study.period_start.isoformat()}T00:00:00"
    when = created.astimezone(UTC).isoformat(timespec="seconds") if created else modified
    return FileMeta(study.identifier, when, modified)


DERIVATIONS: list[tuple[str, str, str]] = [
    ("DM", "USUBJID", "STUDYID, a hyphen, SUBJID (the trial subject number)."),
    ("DM", "RFSTDTC", "Day 0: the date of first infusion (ResearchSubject study-day-zero)."),
    ("DM", "RFXSTDTC", "As RFSTDTC. RFXENDTC is null: the last infusion date is not held."),
    ("DM", "RFENDTC", "Death, else the end of the ResearchSubject period; null while on study."),
    ("DM", "BRTHDTC", "The birth year only: the registry holds no more."),
    (
        "DM",
        "AGE",
        "Consent year - birth year - 1: the age the subject had certainly reached at consent. "
        "Only the birth year is known, so the true age is AGE or AGE + 1.",
    ),
    (
        "DM",
        "ACTARMCD",
        "ARMCD when the subject has a day 0 (was infused); else null, ARMNRS NOT TREATED.",
    ),
    (
        "LB",
        "LBDY",
        "SDTMIG 4.4.4: on or after RFSTDTC, days between + 1; before it, days "
        "between. Dates are taken in the study's time zone.",
    ),
    (
        "LB",
        "VISITNUM",
        "The visit whose window (config/study.yaml) holds the study day; outside "
        "every window: the previous scheduled VISITNUM + .01, .02... per unscheduled date.",
    ),
    ("LB", "LBLOBXFL", "Y on the last result with a value on or before day 0, per test."),
    (
        "LB",
        "LBORRES",
        "The value as the laboratory sent it (value-as-sent extension when the "
        "unit was converted).",
    ),
    (
        "LB",
        "LBSTRESN",
        "The value in the study's canonical unit, to 10 significant digits; null "
        "for a censored value (LBSTRESC keeps the comparator).",
    ),
    (
        "LB",
        "LBTOXGR",
        "CTCAE v5.0 grade (adapter/toxicity); null with the reason in SUPPLB "
        "LBTOXNR when the result cannot be graded.",
    ),
    ("LB", "LBSEQ", "1, 2... per subject in LBCAT, LBTESTCD, collection time, identifier order."),
    ("SV", "SVSTDTC", "First draw date of the visit (SVENDTC: the last)."),
    (
        "DS",
        "DSSTDTC",
        "Consent: period start; death: Patient.deceasedDateTime; withdrawal or "
        "completion: period end. Randomisation is undated (the date is not held).",
    ),
]


def _write_derivations(path: Path) -> Path:
    try:
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["dataset", "variable", "derivation"])
            writer.writerows(DERIVATIONS)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror}") from exc
    return path
