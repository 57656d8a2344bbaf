"""Everyone else in the hospital: ward, clinic and emergency patients whose results share the
LIS feed with the trial's. None of them is enrolled; the adapter must drop them all."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from adapter.simulate import course, panels
from adapter.simulate.model import HOSPITAL_TZ, Message, Patient, Result

FEED_START = date(2023, 12, 1)
FEED_DAYS = 450
SERVICES = (panels.BMP, panels.CBC, panels.LFT, panels.COAG, panels.CRP, panels.GLU)
WEIGHTS = (30, 30, 15, 10, 10, 5)


def other_messages(rng: random.Random, people: list[Patient]) -> list[Message]:
    """Two to four messages for each patient, days to weeks apart."""
    found: list[Message] = []
    for person in people:
        day = FEED_START + timedelta(days=rng.randint(0, FEED_DAYS - 60))
        for _ in range(rng.randint(2, 4)):
            found.append(episode(rng, person, day))
            day += timedelta(days=rng.randint(1, 30))
    return found


def episode(rng: random.Random, person: Patient, day: date) -> Message:
    """One encounter's orders (one or two tests) for a patient."""
    patient_class = rng.choices("IOE", (5, 4, 1))[0]
    collected = draw_time(rng, day, patient_class)
    chosen = rng.choices(SERVICES, WEIGHTS, k=rng.choice((1, 1, 2)))
    unique = list(dict.fromkeys(chosen))
    liver = course.course(rng, "stable") if rng.random() < 0.3 else None
    orders = tuple(
        panels.order(rng, service, collected, tests(rng, service, liver), (30, 240))
        for service in unique
    )
    return panels.message(rng, person, orders, "other", patient_class=patient_class)


def draw_time(rng: random.Random, day: date, patient_class: str) -> datetime:
    """Mornings on the wards and in clinic; any hour in the emergency department."""
    first, last = (0, 24 * 60 - 1) if patient_class == "E" else (6 * 60, 10 * 60)
    minutes = rng.randint(first, last)
    return datetime.combine(day, time(minutes // 60, minutes % 60), HOSPITAL_TZ)


def tests(
    rng: random.Random, service: panels.Service, liver: course.Course | None
) -> tuple[Result, ...]:
    """Results of one service, liver values from a disease course for hepatology patients."""
    values = {key: panels.routine_value(rng, key) for key in service[2]}
    if liver is not None:
        values.update(course.values(rng, liver, rng.uniform(0, 48)))
    found = panels.results(rng, values, service[2], si=rng.random() < 0.5)
    return tuple(below_detection(rng, r) for r in found)


def below_detection(rng: random.Random, found: Result) -> Result:
    """A CRP under the assay's limit is sent as text (ST ``<0.5``) or as SN (``<^0.5``)."""
    if found.analyte != "crp" or Decimal(found.value) >= Decimal("0.5"):
        return found
    if rng.random() < 0.5:
        return replace(found, value_type="ST", value="<0.5", flag="N")
    return replace(found, value_type="SN", value="<^0.5", flag="N")
