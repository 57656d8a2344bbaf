"""The 22 subjects of XHNKKY-DDSC and the lab messages their visits produce.

Visits are at weeks 0 (baseline), 1, 4, 8, 12, 24 and 48 after day 0 (the first infusion),
each specimen drawn a few days off target inside its window. Subjects who die have no visits
after their death. Some subjects also have labs outside every window (an emergency visit) or
from an admission before the study (before the baseline window).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from adapter.simulate import course, panels
from adapter.simulate.model import HOSPITAL_TZ, Message, Subject
from adapter.simulate.people import birth_date, patient

STUDY = "XHNKKY-DDSC"
SUBJECTS = 22
ARMS = ("low-dose", "medium-high-dose")
SCHEDULE: tuple[tuple[str, int, int, int], ...] = (
    ("week0", 0, -14, 0),
    ("week1", 7, -3, 3),
    ("week4", 28, -7, 7),
    ("week8", 56, -7, 7),
    ("week12", 84, -7, 7),
    ("week24", 168, -7, 7),
    ("week48", 336, -7, 7),
)
"""(visit, target study day, window start, window end relative to the target)."""
INFUSION_DAYS = (0, 28, 56)
FIRST_CONSENT = date(2024, 1, 3)


def make_subjects(rng: random.Random, mrns: Iterator[str]) -> list[Subject]:
    """22 subjects, consented through early 2024, randomised 1:1, two of them dying."""
    arms = [ARMS[i % 2] for i in range(SUBJECTS)]
    rng.shuffle(arms)
    trends = ["improving"] * 7 + ["stable"] * 8 + ["worsening"] * 7
    rng.shuffle(trends)
    consents = sorted(FIRST_CONSENT + timedelta(days=rng.randint(0, 110)) for _ in arms)
    dying = [i for i, t in enumerate(trends) if t == "worsening"][:2]
    subjects = []
    for i, (arm, trend, consent) in enumerate(zip(arms, trends, consents, strict=True)):
        day0 = consent + timedelta(days=rng.randint(16, 24))
        death = _death_date(rng, day0, dying.index(i)) if i in dying else None
        infusions = tuple(
            day0 + timedelta(days=d)
            for d in INFUSION_DAYS
            if death is None or day0 + timedelta(days=d) < death
        )
        born = birth_date(rng, consent, 25, 75)
        subjects.append(
            Subject(
                f"DDSC-{i + 1:03d}",
                patient(rng, next(mrns), born),
                arm,
                consent,
                infusions,
                death,
                trend,
            )
        )
    return subjects


def _death_date(rng: random.Random, day0: date, which: int) -> date:
    """The first to die does so between weeks 12 and 24, the second between 24 and 48."""
    low, high = ((100, 150), (185, 320))[which]
    return day0 + timedelta(days=rng.randint(low, high))


def visit_day(rng: random.Random, target: int, start: int, end: int) -> int:
    """A study day inside the window, usually close to the target."""
    return max(target + start, min(target + end, round(rng.triangular(start, end, 0)) + target))


def morning(rng: random.Random, day: date) -> datetime:
    """A ward or clinic blood draw: 06:30-09:30 hospital time."""
    minutes = rng.randint(6 * 60 + 30, 9 * 60 + 30)
    return datetime.combine(day, time(minutes // 60, minutes % 60), HOSPITAL_TZ)


def subject_messages(
    rng: random.Random, subject: Subject, c: course.Course, *, midnight_week1: bool = False
) -> list[Message]:
    """Every message of one subject's scheduled visits, in visit order.

    ``midnight_week1`` draws the week-1 specimen at 00:20 on the first day of its window: the
    study day is right in hospital time and one day early in UTC.
    """
    found: list[Message] = []
    for visit, target, start, end in SCHEDULE:
        day = visit_day(rng, target, start, end)
        collected = morning(rng, subject.day0 + timedelta(days=day))
        if midnight_week1 and visit == "week1":
            collected = datetime.combine(
                subject.day0 + timedelta(days=target + start), time(0, 20), HOSPITAL_TZ
            )
        if subject.death_date is not None and collected.date() >= subject.death_date:
            break
        values = course.values(rng, c, (collected.date() - subject.day0).days / 7)
        found += visit_messages(rng, subject, visit, collected, values)
    return found


def visit_messages(
    rng: random.Random,
    subject: Subject,
    visit: str,
    collected: datetime,
    values: dict[str, Decimal],
    kind: str = "visit",
) -> list[Message]:
    """One visit's orders as one message (one or two OBRs) or as two messages."""
    si = rng.random() < 0.5
    chem = list(panels.CHEM[2])
    chem += [a for a in ("bilirubin_direct", "ggt") if rng.random() < 0.3]
    chemistry = panels.order(rng, panels.CHEM, collected, panels.results(rng, values, chem, si=si))
    coag = panels.order(
        rng, panels.COAG, collected, panels.results(rng, values, panels.COAG[2], si=si), (30, 120)
    )
    extra = []
    if rng.random() < 0.1:
        extra.append(
            panels.order(
                rng,
                panels.AMMONIA,
                collected,
                panels.results(rng, values, ("ammonia",), si=True),
                (30, 60),
            )
        )
    meta = {
        "subject_id": subject.subject_id,
        "visit": visit,
        "patient_class": {"visit": "O", "unscheduled": "E"}.get(kind, "I"),
    }
    layout = rng.random()
    if layout < 0.2:
        merged = panels.order(rng, panels.LIVCOAG, collected, chemistry.results + coag.results)
        return [panels.message(rng, subject.patient, (merged, *extra), kind, **meta)]
    if layout < 0.7:
        return [panels.message(rng, subject.patient, (chemistry, coag, *extra), kind, **meta)]
    return [
        panels.message(rng, subject.patient, (coag,), kind, **meta),
        panels.message(rng, subject.patient, (chemistry, *extra), kind, **meta),
    ]


def off_schedule_messages(
    rng: random.Random, subject: Subject, c: course.Course, kind: str
) -> list[Message]:
    """An emergency visit between windows (``unscheduled``) or an admission before the study
    (``pre-baseline``): the same tests, outside every visit window."""
    day = rng.randint(38, 46) if kind == "unscheduled" else rng.randint(-60, -25)
    collected = morning(rng, subject.day0 + timedelta(days=day))
    values = course.values(rng, c, max(day, 0) / 7)
    return visit_messages(rng, subject, "", collected, values, kind)
