"""Stage "report": the trial's lab data and scores as tables, plots and survival, for research
staff, from the FHIR store alone.

Three layers, as in every stage:

- :mod:`adapter.report.reader` - the only I/O with the server: FHIR search (with paging and
  ``_include``) through :class:`~adapter.fhir_client.FhirClient`;
- :mod:`adapter.report.extract`, :mod:`~adapter.report.tables`,
  :mod:`~adapter.report.survival` - the pure core, from FHIR JSON to plain data to tables;
- :mod:`adapter.report.plots`, :mod:`~adapter.report.html`, :mod:`~adapter.report.writers` -
  the outputs: subjects.csv, visits.csv, summary.csv, completeness.csv, survival.csv,
  excluded.csv, safety.csv and safety_shift.csv (CTCAE v5.0 grades, :mod:`~adapter.report.safety`),
  report.html (and report.xlsx on request).

Usage::

    with FhirClient(url) as client:
        summary = run_report(client, load_study(), load_mappings(), Path("out"))
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd

from adapter.fhir_client import FhirClient
from adapter.mappings import MappingSet
from adapter.report.extract import Catalogue, catalogue
from adapter.report.model import Measure, Measurement, TrialData
from adapter.report.reader import DEFAULT_PAGE_SIZE, Progress, no_progress, read_trial
from adapter.report.safety import Safety, compute_safety
from adapter.report.survival import ONE_YEAR, ArmSurvival, survival_by_arm, survival_table
from adapter.report.tables import Tables, compute_tables, survival_time
from adapter.report.writers import write_csvs, write_text, write_xlsx
from adapter.trial.study import VISIT_RULES, Study

__all__ = ["Report", "ReportSummary", "build_report", "run_report", "write_report"]

EXCLUDED_COLUMNS = ["subject", "observation_id", "reason"]


@dataclass(frozen=True, slots=True)
class Report:
    """Everything the outputs show, computed from :class:`TrialData`."""

    study: Study
    data: TrialData
    measures: tuple[Measure, ...]
    rule: str
    as_of: date
    horizon: int
    tables: Tables
    survival: list[ArmSurvival]
    survival_table: pd.DataFrame
    excluded: pd.DataFrame
    safety: Safety
    summary_note: str = field(
        default=(
            "Change from baseline: per subject, the value at the visit minus that subject's "
            "baseline value; then summarised over the subjects with both. Quartiles by linear "
            "interpolation."
        )
    )

    def frames(self) -> dict[str, pd.DataFrame]:
        """The tables by file name (without ``.csv``), in the order they are written."""
        return {
            "subjects": self.tables.subjects,
            "visits": self.tables.visits,
            "summary": self.tables.summary,
            "completeness": self.tables.completeness,
            "survival": self.survival_table,
            "excluded": self.excluded,
            "safety": self.safety.subjects,
            "safety_shift": self.safety.shift,
        }


@dataclass(frozen=True, slots=True)
class ReportSummary:
    """What a run wrote, for the CLI (and ``--json``)."""

    study: str
    subjects: int
    results: int
    excluded: int
    files: list[str]


def build_report(
    data: TrialData,
    study: Study,
    measures: tuple[Measure, ...],
    *,
    rule: str | None = None,
    as_of: date,
    horizon: int = ONE_YEAR,
) -> Report:
    """The report for ``data``: pure, the same data give the same report."""
    rule = rule or study.visit_value_rule
    if rule not in VISIT_RULES:
        raise ValueError(f"unknown visit value rule {rule!r}")
    tables = compute_tables(data, study, measures, rule, as_of)
    by_subject: dict[str, list[Measurement]] = defaultdict(list)
    for m in data.measurements:
        by_subject[m.subject].append(m)
    times = []
    for subject in data.subjects:
        days, died = survival_time(subject, by_subject[subject.subject], study)
        if days is not None:
            times.append((subject.arm, days, died))
    survival = survival_by_arm(sorted(times), [a.code for a in study.arms], horizon)
    excluded = pd.DataFrame(
        sorted((s.subject, s.observation_id, s.reason) for s in data.skipped),
        columns=EXCLUDED_COLUMNS,
    )
    return Report(
        study,
        data,
        measures,
        rule,
        as_of,
        horizon,
        tables,
        survival,
        survival_table(survival, horizon),
        excluded,
        compute_safety(data, study, measures),
    )


def write_report(report: Report, out: Path, *, xlsx: bool = False) -> list[Path]:
    """Write every output of ``report`` into ``out`` (created); the paths written."""
    from adapter.report.html import render_html

    out.mkdir(parents=True, exist_ok=True)
    frames = report.frames()
    paths = write_csvs(frames, out)
    if xlsx:
        paths.append(write_xlsx(frames, out / "report.xlsx", stamp=report.as_of))
    paths.append(write_text(render_html(report), out / "report.html"))
    return paths


def run_report(
    client: FhirClient,
    study: Study,
    mappings: MappingSet,
    out: Path,
    *,
    as_of: date,
    rule: str | None = None,
    xlsx: bool = False,
    page_size: int = DEFAULT_PAGE_SIZE,
    progress: Progress = no_progress,
) -> ReportSummary:
    """Read the study from the server, compute the report, write it; what was written."""
    cat: Catalogue = catalogue(study, mappings)
    data = read_trial(client, study, cat, page_size=page_size, progress=progress)
    report = build_report(data, study, cat.measures, rule=rule, as_of=as_of)
    paths = write_report(report, out, xlsx=xlsx)
    return ReportSummary(
        study.identifier,
        len(data.subjects),
        len(data.measurements),
        len(data.skipped),
        [str(p) for p in paths],
    )
