"""Scoring occasions and their scores: the pure core of the ``scoring`` stage.

**Occasions.** Every score needs total bilirubin, so each bilirubin result is one occasion.
For each other input (INR, creatinine, sodium, albumin; ascites, encephalopathy, dialysis
from the clinical assessment) the counting result *nearest* to the bilirubin and at most
``scoring.pairing_window_hours`` from it is paired with it (ties: the earlier, then by
identifier). A date-only assessment covers its whole local day. An input further away is
never used: the score is then not computable, with the reason.

**Scores.** MELD, MELD-Na, MELD 3.0, Child-Pugh and ALBI are computed with
:mod:`adapter.scores` exactly as published. Each occasion gives one outcome per score:

* *computed*: the score, with status ``preliminary`` if any input is preliminary, else
  ``corrected`` / ``amended`` if any input is, else ``final``;
* *not computable*: no value, the reason (never a default), the same status rule;
* *withdrawn* (status ``entered-in-error``): the bilirubin is cancelled or entered in error,
  or an input the score needs was withdrawn and no other result replaces it within the
  window. ``entered-in-error`` rather than ``cancelled``: FHIR R4 defines cancelled as "the
  measurement was not started or not completed", and entered-in-error as "withdrawn
  following previous final release" — a score computed from a withdrawn value should never
  have existed, and research readers (``trialbridge report``) exclude it.

**Age.** The registry keeps the birth year only, so the age at the score's date is
``year - birth year - 1`` or ``year - birth year`` (± 1 year). MELD 3.0 depends on age only
through its branches (under 12 not defined; 12-17 the 1.33 term for everyone; 18 or more for
females only). It is computed for both possible ages; when both give the same score, that
is the score, otherwise it is not computable and the reason says so (a male born 18 years
before the score's year may be 17 or 18). In this adult trial (18-80 at consent) only that
one birthday year is ever affected.

**Effective time** is the latest input's (the one whose time starts last).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from types import MappingProxyType
from typing import Any

from adapter.errors import ScoreInputError
from adapter.scores import albi, child_pugh, meld, meld_3, meld_na
from adapter.scores.albi import ALBI_FORMULA
from adapter.scores.child_pugh import CHILD_PUGH_FORMULA
from adapter.scores.meld import MELD_3_FORMULA, MELD_FORMULA, MELD_NA_FORMULA
from adapter.scores.results import AlbiResult, ChildPughResult, Meld3Result, MeldResult
from adapter.scoring.inputs import (
    ALBUMIN,
    ASCITES,
    BILIRUBIN,
    CREATININE,
    DIALYSIS,
    ENCEPHALOPATHY,
    INR,
    SODIUM,
    Input,
    Value,
    span,
)

COMPUTED, NOT_COMPUTABLE, WITHDRAWN = "computed", "not-computable", "withdrawn"

SCORE_INPUTS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "meld": (BILIRUBIN, INR, CREATININE, DIALYSIS),
        "meld_na": (BILIRUBIN, INR, CREATININE, SODIUM, DIALYSIS),
        "meld_3": (BILIRUBIN, INR, CREATININE, SODIUM, ALBUMIN, DIALYSIS),
        "child_pugh": (BILIRUBIN, ALBUMIN, INR, ASCITES, ENCEPHALOPATHY),
        "albi": (BILIRUBIN, ALBUMIN),
    }
)
"""Each score's inputs (Child-Pugh's INR: PT prolongation is never available, see inputs)."""

FORMULAS: Mapping[str, str] = MappingProxyType(
    {
        "meld": MELD_FORMULA,
        "meld_na": MELD_NA_FORMULA,
        "meld_3": MELD_3_FORMULA,
        "child_pugh": CHILD_PUGH_FORMULA,
        "albi": ALBI_FORMULA,
    }
)
_ENCEPHALOPATHY_ARG = {"none": "none", "grade-1-2": "grade 1-2", "grade-3-4": "grade 3-4"}
_STATUS_ORDER = ("preliminary", "corrected", "amended")


@dataclass(frozen=True, slots=True)
class SubjectFacts:
    """What the registry says about a subject that the scores need."""

    subject_id: str
    sex: str  # F / M / O / U
    birth_year: int
    cholestatic: bool


@dataclass(frozen=True, slots=True)
class Occasion:
    """One bilirubin result and the inputs paired with it."""

    anchor: Input
    paired: Mapping[str, Input]  # kind -> nearest counting input within the window
    withdrawn: Mapping[str, Input]  # kind -> nearest withdrawn input within the window


@dataclass(frozen=True, slots=True)
class Outcome:
    """One score of one occasion."""

    key: str  # score key (adapter.scores.codes.SCORE_CODES)
    anchor: Input
    state: str  # computed | not-computable | withdrawn
    status: str  # Observation.status
    formula: str
    inputs: tuple[Input, ...]  # derivedFrom
    effective: str
    value: Decimal | None = None
    reason: str | None = None
    klass: str | None = None  # Child-Pugh class
    grade: int | None = None  # ALBI grade
    uncapped: int | None = None  # MELD 3.0 before the cap


def occasions(inputs: Sequence[Input], window: timedelta) -> list[Occasion]:
    """One occasion per bilirubin result, in time order."""
    anchors = sorted((i for i in inputs if i.kind == BILIRUBIN), key=lambda i: (i.start, i.key))
    others = [i for i in inputs if i.kind != BILIRUBIN]
    return [
        Occasion(
            anchor,
            _nearest(anchor, [i for i in others if not i.withdrawn], window),
            _nearest(anchor, [i for i in others if i.withdrawn], window),
        )
        for anchor in anchors
    ]


def _nearest(anchor: Input, candidates: Sequence[Input], window: timedelta) -> dict[str, Input]:
    best: dict[str, Input] = {}
    for item in sorted(candidates, key=lambda i: (anchor.gap(i), i.start, i.key)):
        if anchor.gap(item) <= window:
            best.setdefault(item.kind, item)
    return best


def score_occasion(occasion: Occasion, subject: SubjectFacts, tz: timezone) -> list[Outcome]:
    """Every score of one occasion."""
    return [_outcome(key, occasion, subject, tz) for key in SCORE_INPUTS]


def _outcome(key: str, occasion: Occasion, subject: SubjectFacts, tz: timezone) -> Outcome:
    anchor = occasion.anchor
    needed = SCORE_INPUTS[key]
    used = (anchor, *(occasion.paired[k] for k in needed[1:] if k in occasion.paired))
    gone = [
        occasion.withdrawn[k]
        for k in needed[1:]
        if k not in occasion.paired and k in occasion.withdrawn
    ]
    if anchor.withdrawn or gone:
        return _withdrawn(key, anchor, (*used, *gone))
    problems = [i.problem for i in used if i.problem]
    if problems:
        return _not_computable(key, anchor, used, "; ".join(problems))
    values = {i.kind: i.value for i in used if i.value is not None}
    effective = _latest(used).effective
    try:
        outcome = _COMPUTE[key](values, subject, _year(effective, tz))
    except ScoreInputError as exc:
        return _not_computable(key, anchor, used, str(exc))
    return _with(outcome, key, anchor, used)


def _withdrawn(key: str, anchor: Input, inputs: tuple[Input, ...]) -> Outcome:
    gone = [i for i in inputs if i.withdrawn]
    reason = "; ".join(f"its {i.kind} result {i.reference} is {i.status}" for i in gone)
    return _built(key, anchor, inputs, WITHDRAWN, status="entered-in-error", reason=reason)


def _not_computable(key: str, anchor: Input, inputs: tuple[Input, ...], reason: str) -> Outcome:
    return _built(key, anchor, inputs, NOT_COMPUTABLE, reason=reason)


@dataclass(frozen=True, slots=True)
class _Result:
    computable: bool
    value: Decimal | None = None
    reason: str | None = None
    klass: str | None = None
    grade: int | None = None
    uncapped: int | None = None


def _with(result: _Result, key: str, anchor: Input, inputs: tuple[Input, ...]) -> Outcome:
    if not result.computable:
        return _not_computable(key, anchor, inputs, result.reason or "not computable")
    return _built(
        key, anchor, inputs, COMPUTED,
        value=result.value, klass=result.klass, grade=result.grade, uncapped=result.uncapped,
    )  # fmt: skip


def _built(
    key: str,
    anchor: Input,
    inputs: tuple[Input, ...],
    state: str,
    status: str | None = None,
    **fields: Any,
) -> Outcome:
    """The outcome of one score at one occasion: what every state shares, plus ``fields``."""
    return Outcome(
        key=key,
        anchor=anchor,
        state=state,
        status=status or _status(inputs),
        formula=FORMULAS[key],
        inputs=inputs,
        effective=_latest(inputs).effective,
        **fields,
    )


def _status(inputs: Sequence[Input]) -> str:
    statuses = {i.status for i in inputs}
    return next((s for s in _STATUS_ORDER if s in statuses), "final")


def _latest(inputs: Sequence[Input]) -> Input:
    return max(inputs, key=lambda i: (i.start, i.key))


def _year(effective: str, tz: timezone) -> int:
    return span(effective, tz)[0].astimezone(tz).year


Values = Mapping[str, Value]


def _lab(values: Values, kind: str) -> tuple[Decimal, str] | None:
    value = values.get(kind)
    return value if isinstance(value, tuple) else None


def _flag(values: Values, kind: str) -> bool | None:
    value = values.get(kind)
    return value if isinstance(value, bool) else None


def _answer(values: Values, kind: str) -> str | None:
    value = values.get(kind)
    return value if isinstance(value, str) else None


def _meld_result(result: MeldResult) -> _Result:
    value = Decimal(result.score) if result.score is not None else None
    return _Result(result.computable, value, result.reason)


def _meld(values: Values, subject: SubjectFacts, year: int) -> _Result:
    return _meld_result(
        meld(
            bilirubin=_lab(values, BILIRUBIN),
            inr=_lab(values, INR),
            creatinine=_lab(values, CREATININE),
            dialysis=_flag(values, DIALYSIS),
        )
    )


def _meld_na(values: Values, subject: SubjectFacts, year: int) -> _Result:
    return _meld_result(
        meld_na(
            bilirubin=_lab(values, BILIRUBIN),
            inr=_lab(values, INR),
            creatinine=_lab(values, CREATININE),
            sodium=_lab(values, SODIUM),
            dialysis=_flag(values, DIALYSIS),
        )
    )


def _meld_3(values: Values, subject: SubjectFacts, year: int) -> _Result:
    youngest, oldest = year - subject.birth_year - 1, year - subject.birth_year
    low, high = (_meld_3_at(values, subject, age) for age in (youngest, oldest))
    if low == high:
        return _meld_3_result(low)
    if not low.computable and not high.computable:
        return _Result(
            False, reason=f"{low.reason} (age {youngest}) / {high.reason} (age {oldest})"
        )
    return _Result(
        False,
        reason=(
            f"age is {youngest} or {oldest} (only the birth year is known) and MELD 3.0 "
            f"differs between them ({_shown(low)} at {youngest}, {_shown(high)} at {oldest})"
        ),
    )


def _meld_3_at(values: Values, subject: SubjectFacts, age: int) -> Meld3Result:
    return meld_3(
        bilirubin=_lab(values, BILIRUBIN),
        inr=_lab(values, INR),
        creatinine=_lab(values, CREATININE),
        sodium=_lab(values, SODIUM),
        albumin=_lab(values, ALBUMIN),
        sex=subject.sex,
        age_years=age,
        dialysis=_flag(values, DIALYSIS),
    )


def _shown(result: Meld3Result) -> str:
    return str(result.score) if result.computable else "not computable"


def _meld_3_result(result: Meld3Result) -> _Result:
    value = Decimal(result.score) if result.score is not None else None
    return _Result(result.computable, value, result.reason, uncapped=result.score_uncapped)


def _child_pugh(values: Values, subject: SubjectFacts, year: int) -> _Result:
    encephalopathy = _answer(values, ENCEPHALOPATHY)
    result: ChildPughResult = child_pugh(
        bilirubin=_lab(values, BILIRUBIN),
        albumin=_lab(values, ALBUMIN),
        inr=_lab(values, INR),
        ascites=_answer(values, ASCITES),
        encephalopathy=_ENCEPHALOPATHY_ARG.get(encephalopathy or "", encephalopathy),
        cholestatic=subject.cholestatic,
    )
    value = Decimal(result.score) if result.score is not None else None
    return _Result(result.computable, value, result.reason, klass=result.klass)


def _albi(values: Values, subject: SubjectFacts, year: int) -> _Result:
    result: AlbiResult = albi(bilirubin=_lab(values, BILIRUBIN), albumin=_lab(values, ALBUMIN))
    if result.score is None:
        return _Result(False, reason=result.reason)
    # Recorded to two decimals (as the ALBI publications report it); the grade is taken from
    # the unrounded value by adapter.scores.
    value = Decimal(repr(result.score)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return _Result(True, value, grade=result.grade)


_COMPUTE: Mapping[str, Callable[[Values, SubjectFacts, int], _Result]] = MappingProxyType(
    {
        "meld": _meld,
        "meld_na": _meld_na,
        "meld_3": _meld_3,
        "child_pugh": _child_pugh,
        "albi": _albi,
    }
)
