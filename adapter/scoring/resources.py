"""Score Observations and their Provenance as FHIR R4 JSON (pure builders).

A score Observation (http://hl7.org/fhir/R4/observation.html):

* ``identifier``: ``scoring.identifier`` | ``<subject>/<score code>/<bilirubin identifier>``
  — one per score and occasion, stable across recomputation and corrections of its inputs,
  so it is written with a conditional update and updated in place;
* ``code``: the study's code (:mod:`adapter.scores.codes`), then LOINC where one exists;
* ``valueQuantity`` in ``{score}`` (UCUM annotation); not computable or withdrawn: no value,
  ``dataAbsentReason`` (``unknown`` for a missing or unusable input, ``not-applicable`` when
  the score is not defined for the subject, ``error`` when withdrawn) and the reason in a note;
* ``component``: Child-Pugh's class A/B/C (a component, not an interpretation: the class is
  part of the score's published result, not a judgement about it), ALBI's grade 1/2/3, and
  MELD 3.0's value before the cap at 40;
* ``method.text``: the formula and its version, e.g. "MELD 3.0 (OPTN 2023)";
* ``effectiveDateTime``: the latest input's; ``derivedFrom``: its inputs;
* ``subject``: the pseudonymous Patient; the study extension and the visit tag of the window
  the effective time falls in (:func:`adapter.trial.resources.link_observation`).

Nothing time-dependent (no ``issued``) is written, so recomputing unchanged inputs gives the
very same resource and the writer can skip it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import simplejson

from adapter import __version__
from adapter.build import search_token
from adapter.build.observation import UCUM
from adapter.build.provenance import trialbridge_activity
from adapter.scores.codes import (
    ALBI_GRADE,
    ALBI_GRADE_SYSTEM,
    CHILD_PUGH_CLASS,
    CHILD_PUGH_CLASS_SYSTEM,
    MELD_3_UNCAPPED,
    SCORE_CODES,
    SCORE_SYSTEM,
    SCORE_UNIT,
)
from adapter.scoring.core import COMPUTED, WITHDRAWN, Outcome
from adapter.trial.resources import link_observation
from adapter.trial.study import Study
from adapter.trial.visits import visit_of

_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
_NAMESPACE = uuid.UUID("5b0c7d55-2f8e-4c57-9a3e-6d1f0a7c9e42")
_NOT_DEFINED = "not defined"  # adapter.scores' wording when a score does not apply


@dataclass(frozen=True, slots=True)
class ScoreContext:
    """Where a subject's scores are written: study, references, identifiers."""

    study: Study
    study_ref: str  # ResearchStudy/<id>
    patient_ref: str  # Patient/<id>
    subject_id: str
    day0: date | None
    identifier_system: str
    window: timedelta


def score_identifier(outcome: Outcome, ctx: ScoreContext) -> dict[str, str]:
    """The score's identifier: subject, score and the occasion's bilirubin."""
    code = SCORE_CODES[outcome.key].code
    return {
        "system": ctx.identifier_system,
        "value": f"{ctx.subject_id}/{code}/{outcome.anchor.key}",
    }


def score_observation(outcome: Outcome, ctx: ScoreContext) -> dict[str, Any]:
    """The Observation one score outcome becomes."""
    score = SCORE_CODES[outcome.key]
    observation: dict[str, Any] = {
        "resourceType": "Observation",
        "identifier": [score_identifier(outcome, ctx)],
        "status": outcome.status,
        "code": {"coding": score.codings(), "text": score.display},
        "subject": {"reference": ctx.patient_ref},
        "effectiveDateTime": outcome.effective,
        **_value(outcome),
        "note": [{"text": _note(outcome, ctx)}],
        "method": {"text": outcome.formula},
        "derivedFrom": [{"reference": r} for r in _unique(i.reference for i in outcome.inputs)],
    }
    components = _components(outcome)
    if components:
        observation["component"] = components
    visit = visit_of(outcome.effective, ctx.day0, ctx.study) if ctx.day0 else None
    return link_observation(observation, ctx.study, ctx.study_ref, visit)


def _value(outcome: Outcome) -> dict[str, Any]:
    if outcome.state == COMPUTED and outcome.value is not None:
        return {"valueQuantity": _score_quantity(outcome.value)}
    if outcome.state == WITHDRAWN:
        reason = "error"
    elif _NOT_DEFINED in (outcome.reason or ""):
        reason = "not-applicable"
    else:
        reason = "unknown"
    return {"dataAbsentReason": {"coding": [{"system": _ABSENT, "code": reason}]}}


def _score_quantity(value: Any) -> dict[str, Any]:
    return {"value": value, "unit": SCORE_UNIT, "system": UCUM, "code": SCORE_UNIT}


def _note(outcome: Outcome, ctx: ScoreContext) -> str:
    hours = f"{ctx.window.total_seconds() / 3600:g} h"
    if outcome.state == WITHDRAWN:
        return f"Withdrawn: {outcome.reason}."
    if outcome.state != COMPUTED:
        return (
            f"Not computable: {outcome.reason} (inputs are paired within {hours} of the "
            "bilirubin result)."
        )
    return (
        f"{outcome.formula}, computed by TrialBridge {__version__} from the results in "
        f"derivedFrom (paired within {hours} of the bilirubin result)."
    )


def _components(outcome: Outcome) -> list[dict[str, Any]]:
    if outcome.state != COMPUTED:
        return []
    if outcome.klass is not None:
        concept = {"system": CHILD_PUGH_CLASS_SYSTEM, "code": outcome.klass}
        return [_component(CHILD_PUGH_CLASS, "Child-Pugh class", concept, f"Class {outcome.klass}")]
    if outcome.grade is not None:
        concept = {"system": ALBI_GRADE_SYSTEM, "code": str(outcome.grade)}
        return [_component(ALBI_GRADE, "ALBI grade", concept, f"Grade {outcome.grade}")]
    if outcome.uncapped is not None:
        code = {
            "coding": [{"system": SCORE_SYSTEM, "code": MELD_3_UNCAPPED}],
            "text": "MELD 3.0 before the cap at 40",
        }
        return [{"code": code, "valueQuantity": _score_quantity(outcome.uncapped)}]
    return []


def _component(code: str, text: str, coding: dict[str, str], shown: str) -> dict[str, Any]:
    return {
        "code": {"coding": [{"system": SCORE_SYSTEM, "code": code}], "text": text},
        "valueCodeableConcept": {"coding": [coding], "text": shown},
    }


def _unique(items: Any) -> list[str]:
    return list(dict.fromkeys(items))


def score_transaction(
    observations: Sequence[dict[str, Any]], inputs: Sequence[str], recorded: str
) -> dict[str, Any]:
    """A transaction: each score updated in place by its identifier, and one Provenance
    (derivation from the inputs, by TrialBridge) targeting them."""
    entries = [_entry(o) for o in observations]
    digest = hashlib.sha256(_canonical(observations).encode()).hexdigest()
    provenance_id = str(uuid.uuid5(_NAMESPACE, digest))
    provenance = _provenance([e["fullUrl"] for e in entries], inputs, recorded)
    entries.append(
        {
            "fullUrl": f"urn:uuid:{provenance_id}",
            "resource": {**provenance, "id": provenance_id},
            "request": {"method": "PUT", "url": f"Provenance/{provenance_id}"},
        }
    )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _entry(observation: dict[str, Any]) -> dict[str, Any]:
    identifier = observation["identifier"][0]
    token = search_token(identifier["system"], identifier["value"])
    return {
        "fullUrl": f"urn:uuid:{uuid.uuid5(_NAMESPACE, token)}",
        "resource": observation,
        "request": {"method": "PUT", "url": f"Observation?identifier={token}"},
    }


def _provenance(targets: list[str], inputs: Sequence[str], recorded: str) -> dict[str, Any]:
    return {
        "resourceType": "Provenance",
        "target": [{"reference": t} for t in targets],
        "recorded": recorded,
        **trialbridge_activity(),
        "entity": [{"role": "derivation", "what": {"reference": r}} for r in _unique(inputs)],
    }


def comparable(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource as the server would give it back, minus what the server owns (id, meta
    except tags): equal for an unchanged score."""
    plain: dict[str, Any] = json.loads(_canonical(resource))
    meta = plain.pop("meta", None) or {}
    plain.pop("id", None)
    plain["_tags"] = meta.get("tag", [])
    return plain


def _canonical(data: Any) -> str:
    return simplejson.dumps(data, use_decimal=True, sort_keys=True)
