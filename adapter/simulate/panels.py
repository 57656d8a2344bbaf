"""Orders as the LIS builds them: which tests go together, how each result is written
(local code or LOINC, which unit, NM or SN), and how long the lab takes."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

from adapter.simulate.catalog import ANALYTES, Analyte, make_result
from adapter.simulate.course import canonical
from adapter.simulate.model import Message, Order, Patient, Result

Service = tuple[str, str, tuple[str, ...]]
"""An orderable test: OBR-4 code, its text, and the analytes it reports."""

CHEM: Service = (
    "CHEM",
    "Liver and renal function",
    ("alt", "ast", "alp", "bilirubin_total", "albumin", "creatinine", "sodium"),
)
COAG: Service = ("COAG", "Coagulation screen", ("pt_seconds", "inr"))
LIVCOAG: Service = ("LIVCOAG", "Liver panel with coagulation", CHEM[2] + COAG[2])
AMMONIA: Service = ("NH3", "Blood ammonia", ("ammonia",))
LFT: Service = (
    "LFT",
    "Liver function tests",
    ("alt", "ast", "alp", "bilirubin_total", "bilirubin_direct", "albumin", "ggt"),
)
BMP: Service = (
    "BMP",
    "Basic metabolic panel",
    ("glucose", "potassium", "sodium", "chloride", "urea", "creatinine"),
)
CBC: Service = (
    "CBC",
    "Complete blood count",
    ("wbc", "rbc", "hemoglobin", "hematocrit", "platelets"),
)
CRP: Service = ("CRP", "C-reactive protein", ("crp",))
GLU: Service = ("GLU", "Fasting glucose", ("glucose",))

SI_UNITS = frozenset({"µmol/L", "g/L"})
LOINC_SHARE = 0.2
"""Share of results the LIS sends with a LOINC code instead of its local code."""


def pick_form(rng: random.Random, spec: Analyte, si: bool) -> int:
    """Index of the form to report ``spec`` in: SI or conventional where both exist."""
    indexes = list(range(len(spec.forms)))
    kinds = {spec.forms[i].unit in SI_UNITS for i in indexes}
    if len(kinds) == 2:
        indexes = [i for i in indexes if (spec.forms[i].unit in SI_UNITS) == si]
    if len(indexes) == 1 or rng.random() < 0.65:
        return indexes[0]
    return rng.choice(indexes[1:])


def result(rng: random.Random, analyte: str, value: Decimal, *, si: bool) -> Result:
    """One final result of ``analyte``, written the way this LIS varies it."""
    spec = ANALYTES[analyte]
    made = make_result(
        analyte,
        value,
        form=pick_form(rng, spec, si),
        loinc=rng.random() < LOINC_SHARE,
        code=int(rng.random() < 0.1),
    )
    if analyte == "alp" and rng.random() < 0.05:
        made = replace(made, value_type="SN", value=f"^{made.value}")
    return made


def results(
    rng: random.Random, values: dict[str, Decimal], analytes: Iterable[str], *, si: bool
) -> tuple[Result, ...]:
    """Results of ``analytes`` taken from ``values`` (canonical units)."""
    return tuple(result(rng, key, values[key], si=si) for key in analytes)


def routine_value(rng: random.Random, analyte: str) -> Decimal:
    """A value for a hospital patient: mostly near the reference range, sometimes far off."""
    form = ANALYTES[analyte].forms[0]
    low = float(form.low if form.low is not None else 0)
    high = float(form.high if form.high is not None else 1)
    if analyte == "crp":
        drawn = rng.expovariate(1 / 12)
    elif rng.random() < 0.08:
        drawn = rng.uniform(high, high * 2.0)
    elif rng.random() < 0.04:
        drawn = rng.uniform(low * 0.85, low)
    else:
        drawn = rng.uniform(low * 0.9, high * 1.1)
    return canonical(analyte, max(drawn, 0.01) / float(form.factor))


def order(
    rng: random.Random,
    service: Service,
    collected: datetime,
    found: tuple[Result, ...],
    minutes: tuple[int, int] = (90, 300),
) -> Order:
    """An order collected at ``collected`` and reported ``minutes`` after the lab received it.

    Filler and placer numbers are left empty: the feed numbers orders in time order later.
    """
    received = collected + timedelta(minutes=rng.randint(15, 90))
    reported = received + timedelta(minutes=rng.randint(*minutes))
    if rng.random() < 0.4:
        analysed = reported - timedelta(minutes=rng.randint(5, 40))
        found = tuple(replace(r, analysed=analysed) for r in found)
    return Order("", "", service[0], service[1], collected, received, reported, found)


def message(
    rng: random.Random,
    patient: Patient,
    orders: tuple[Order, ...],
    kind: str,
    *,
    subject_id: str = "",
    visit: str = "",
    patient_class: str = "O",
) -> Message:
    """A message sent a few minutes after its last order was reported."""
    sent = max(o.reported for o in orders) + timedelta(
        minutes=rng.randint(0, 4), seconds=rng.randint(0, 59)
    )
    return Message(patient, orders, sent, kind, subject_id, visit, patient_class)
