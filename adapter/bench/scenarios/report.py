"""Scenario 7: ``trialbridge report`` on a simulated study of 2,000 subjects (Patients,
ResearchSubjects and each subject's results at a few visits), against a plain paging loop
over the same Observation searches."""

from __future__ import annotations

import json
from datetime import date
from typing import Any
from urllib.parse import quote

import requests
import simplejson

from adapter.bench.env import Env, Stopwatch, environment
from adapter.bench.feed import oru, subject_mrn
from adapter.bench.results import Row
from adapter.bench.scenarios.common import Context
from adapter.build.subject import subject_transaction
from adapter.fhir_client import FhirClient
from adapter.report import run_report
from adapter.report.extract import catalogue
from adapter.report.reader import DEFAULT_PAGE_SIZE, find_study, read_subjects
from adapter.translate import translate
from adapter.trial.gate import Gate

_HEADERS = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
_VISIT_MESSAGES = (0, 28, 84, 168, 336)  # message numbers that fall on day 0, weeks 4, 12...
_PER_TRANSACTION = 50


def run(ctx: Context) -> list[Row]:
    sizes = ctx.sizes
    with environment(ctx.work / "report", subjects=sizes.report_subjects) as env:
        ctx.fhir.reset()
        patients = _load(ctx, env, sizes.report_visits)
        cat = catalogue(env.registry.study, env.mappings)
        clock = Stopwatch()
        with FhirClient(ctx.fhir.base_url, retries=0) as client:
            summary = run_report(
                client,
                env.registry.study,
                env.mappings,
                ctx.work / "report-out",
                as_of=date(2025, 1, 31),
            )
        seconds = clock.seconds()
        read = summary.results + summary.excluded
        clock = Stopwatch()
        plain = _plain_loop(ctx.fhir.base_url, patients, cat.code_tokens())
        plain_seconds = clock.seconds()
    ctx.fhir.reset()
    figure = f"{summary.subjects:,} subjects, {read:,} Observations"
    return [
        Row.make(
            "7 report",
            f"time, {figure}",
            seconds,
            plain_seconds,
            "s",
            "<= 2x plain loop",
            seconds <= 2 * plain_seconds,
        ),
        Row.make(
            "7 report",
            "Observations read/s",
            read / seconds,
            plain / plain_seconds,
            "obs/s",
            "report",
            None,
        ),
    ]


def _load(ctx: Context, env: Env, visits: int) -> list[str]:
    """Post the subjects and their results; the Patient references."""
    study = env.registry.study
    base = ctx.fhir.base_url
    with requests.Session() as session, FhirClient(base, retries=0) as client:
        subjects = env.registry.subjects()
        for subject in subjects:
            _post(session, base, subject_transaction(study, subject.record))
        study_id = find_study(client, study)
        refs = {s.subject: s.patient_ref for s in read_subjects(client, study, study_id, 1000)}
        templates = _templates(env, visits)
        entries = [
            _entry(observation, refs[subject.subject_id], study_id, n)
            for n, subject in enumerate(subjects)
            for observation in templates
        ]
        for start in range(0, len(entries), _PER_TRANSACTION):
            chunk = entries[start : start + _PER_TRANSACTION]
            _post(session, base, {"resourceType": "Bundle", "type": "transaction", "entry": chunk})
    return [refs[s.subject_id] for s in subjects]


def _templates(env: Env, visits: int) -> list[str]:
    """Subject 0's Observations at each visit, as JSON text with its urn references."""
    import random

    gate = Gate(env.registry.study, env.registry.index())
    texts = []
    for i in _VISIT_MESSAGES[:visits]:
        raw = oru(i, subject_mrn(0), random.Random(i))  # noqa: S311 - simulated data
        for item in translate(raw, "bench", env.settings, env.mappings, gate=gate):
            assert item.bundle is not None, item.error
            urls = {e["resource"]["resourceType"]: e["fullUrl"] for e in item.bundle["entry"]}
            for entry in item.bundle["entry"]:
                if entry["resource"]["resourceType"] == "Observation":
                    text = simplejson.dumps(entry["resource"], use_decimal=True)
                    text = text.replace(urls["Patient"], "{patient}")
                    texts.append(text.replace(urls["ResearchStudy"], "{study}"))
    return texts


def _entry(template: str, patient_ref: str, study_id: str, n: int) -> dict[str, Any]:
    text = template.replace("{patient}", patient_ref).replace(
        "{study}", f"ResearchStudy/{study_id}"
    )
    resource = json.loads(text)
    resource["identifier"][0]["value"] += f"-{n}"
    resource["id"] = f"bench-{n}-{abs(hash(resource['identifier'][0]['value'])) % 10**12}"
    return {
        "resource": resource,
        "request": {"method": "PUT", "url": f"Observation/{resource['id']}"},
    }


def _post(session: requests.Session, base: str, bundle: dict[str, Any]) -> None:
    body = simplejson.dumps(bundle, use_decimal=True)
    response = session.post(base, data=body, headers=_HEADERS, timeout=120)
    response.raise_for_status()


def _plain_loop(base: str, patients: list[str], tokens: list[str]) -> int:
    """Every subject's Observations of the study's codes, following next links; how many."""
    codes = ",".join(quote(t, safe="") for t in tokens)
    count = 0
    with requests.Session() as session:
        for ref in patients:
            url: str | None = (
                f"{base}/Observation?subject={quote(ref, safe='')}&code={codes}"
                f"&_count={DEFAULT_PAGE_SIZE}"
            )
            while url:
                bundle = session.get(url, headers=_HEADERS, timeout=120).json()
                count += len(bundle.get("entry", []))
                url = next(
                    (x["url"] for x in bundle.get("link", []) if x["relation"] == "next"), None
                )
    return count
