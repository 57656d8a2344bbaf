"""What the simulator writes next to the messages: the coordinator's enrolment list, the truth
table of visits, and a manifest of counts that tests and the README check."""

from __future__ import annotations

import csv
import io
import random
from collections import Counter
from collections.abc import Iterable
from typing import Any

from adapter.simulate import segments, trial
from adapter.simulate.catalog import STUDY_ANALYTES, UNMAPPED_CODES
from adapter.simulate.model import Feed, Message, Result

ENROLMENT_COLUMNS = (
    "subject_id",
    "mrn",
    "mrn_authority",
    "arm",
    "consent_date",
    "infusion_dates",
    "sex",
    "birth_year",
    "death_date",
)
VISIT_COLUMNS = ("subject_id", "visit", "target_day", "study_day", "collected", "fillers")
ASSESSMENT_COLUMNS = ("subject_id", "date", "ascites", "encephalopathy", "dialysis")
# How ascites and encephalopathy are drawn by the subject's course (the labs drift the same
# way): weights of none / mild-or-grade-1-2 / moderate-severe-or-grade-3-4.
_SEVERITY_WEIGHTS = {"improving": (6, 3, 1), "stable": (4, 4, 2), "worsening": (2, 4, 4)}


def _csv(header: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def enrolment_csv(feed: Feed) -> str:
    """The coordinator's list: one row per subject, infusion dates joined by ``;``."""
    return _csv(
        ENROLMENT_COLUMNS,
        (
            (
                s.subject_id,
                s.patient.mrn,
                s.patient.authority,
                s.arm,
                s.consent_date.isoformat(),
                ";".join(d.isoformat() for d in s.infusion_dates),
                s.patient.sex,
                s.patient.birth_date.year,
                s.death_date.isoformat() if s.death_date else "",
            )
            for s in feed.subjects
        ),
    )


def visits_csv(feed: Feed) -> str:
    """Each scheduled visit: its study day (hospital time) and the orders it produced."""
    return _csv(
        VISIT_COLUMNS,
        (
            (
                v.subject_id,
                v.visit,
                v.target_day,
                v.study_day,
                segments.ts(v.collected),
                ";".join(v.fillers),
            )
            for v in feed.visits
        ),
    )


def assessments_csv(feed: Feed) -> str:
    """The clinical assessment at each visit (ascites, encephalopathy, dialysis), which the
    LIS does not send: the research nurse's form, for `trialbridge assess`. Drawn from a
    generator of its own, so adding it changed no byte of the messages."""
    rng = random.Random(f"assessments-{feed.seed}")  # noqa: S311 - simulated data
    course = {s.subject_id: s.trend for s in feed.subjects}
    rows = []
    for visit in feed.visits:
        weights = _SEVERITY_WEIGHTS.get(course[visit.subject_id], (4, 4, 2))
        ascites = rng.choices(("none", "mild", "moderate-severe"), weights)[0]
        encephalopathy = rng.choices(("none", "grade-1-2", "grade-3-4"), weights)[0]
        dialysis = "yes" if rng.random() < 0.05 else "no"
        day = visit.collected.date().isoformat()
        rows.append((visit.subject_id, day, ascites, encephalopathy, dialysis))
    return _csv(ASSESSMENT_COLUMNS, rows)


def _results(messages: Iterable[Message]) -> Iterable[tuple[str, Result]]:
    for m in messages:
        for o in m.orders:
            for r in o.results:
                yield o.filler, r


def _count(items: Iterable[str]) -> dict[str, int]:
    return dict(sorted(Counter(items).items()))


def manifest(feed: Feed) -> dict[str, Any]:
    """Counts of everything in the feed, and where its special cases are."""
    everything = [m for _, m in feed.messages]
    enrolled = [m for m in everything if m.subject_id]
    charset = {cid: f.charset for f in feed.files for cid in f.message_ids}
    trial_results = list(_results(enrolled))
    return {
        "generator": "trialbridge simulate-lis",
        "study": trial.STUDY,
        "seed": feed.seed,
        "files": len(feed.files),
        "batch_files": sum(f.batch for f in feed.files),
        "multi_message_files": sum(len(f.message_ids) > 1 and not f.batch for f in feed.files),
        "files_per_charset": _count(f.charset or "(none)" for f in feed.files),
        "messages": len(everything),
        "trial_messages": len(enrolled),
        "other_messages": len(everything) - len(enrolled),
        "trial_messages_per_kind": _count(m.kind for m in enrolled),
        "subjects": len(feed.subjects),
        "visits": len(feed.visits),
        "results": sum(1 for _ in _results(everything)),
        "results_per_analyte": _count(r.analyte for _, r in _results(everything)),
        "results_per_status": _count(r.status for _, r in _results(everything)),
        "trial_results_per_analyte": _count(r.analyte for _, r in trial_results),
        "trial_observations_per_analyte": observations(
            m for m in enrolled if m.kind != "pre-baseline"
        ),
        "trial_units_per_analyte": units(feed, charset),
        "trial_unmapped_codes": _count(
            r.code for _, r in trial_results if r.code in UNMAPPED_CODES
        ),
        "cases": feed.cases,
    }


def observations(messages: Iterable[Message]) -> dict[str, int]:
    """Distinct study results (OBR-3, OBX-3, OBX-4) per analyte: what the trial's FHIR store
    holds once everything is sent (preliminaries, corrections and resends collapse)."""
    seen = {
        (r.analyte, filler, r.code, r.system, r.sub_id)
        for filler, r in _results(messages)
        if r.analyte in STUDY_ANALYTES
    }
    return _count(key[0] for key in seen)


def units(feed: Feed, charset: dict[str, str]) -> dict[str, dict[str, int]]:
    """OBX-6 exactly as sent, per study analyte, over the enrolled subjects' results."""
    found: dict[str, Counter[str]] = {key: Counter() for key in STUDY_ANALYTES}
    for cid, m in feed.messages:
        utf8 = charset[cid] == segments.UTF8
        for _, r in _results([m] if m.subject_id else []):
            if r.analyte in found and r.value:
                found[r.analyte][segments.unit_text(r.unit, utf8)] += 1
    return {key: dict(sorted(c.items())) for key, c in found.items()}
