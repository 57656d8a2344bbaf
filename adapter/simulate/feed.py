"""Assemble the simulated feed: people, messages, order numbers, lifecycle cases, sending
order, control ids and files. Pure: returns data, writes nothing."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, replace
from datetime import date

from adapter.simulate import course, lifecycle, others, segments, trial
from adapter.simulate.model import Feed, FeedFile, Message, Patient, Subject, Visit
from adapter.simulate.people import birth_date, mrn_pool, patient

PARTNER_AUTHORITY = "SYH"
"""A partner hospital whose MRNs can collide with ours (same number, other authority)."""


@dataclass(frozen=True)
class SimConfig:
    """What to simulate. The same config always gives the same feed, byte for byte."""

    seed: int = 7
    other_patients: int = 300
    utf8_share: float = 0.7  # share of files declaring UNICODE UTF-8 in MSH-18
    multi_share: float = 0.06  # chance that a file holds several messages
    batch_size: int = 5  # messages in the one FHS/BHS batch file


def simulate(config: SimConfig) -> Feed:
    """The whole feed for ``config``."""
    rng = random.Random(config.seed)  # noqa: S311 - simulated data, not secrets
    mrns = mrn_pool(rng, trial.SUBJECTS + config.other_patients)
    subjects = trial.make_subjects(rng, mrns)
    messages, cases = subject_feed(rng, subjects)
    people = [
        patient(rng, next(mrns), birth_date(rng, date(2024, 1, 1), 1, 95))
        for _ in range(config.other_patients)
    ]
    people.append(partner_patient(rng, subjects[0].patient))
    messages += others.other_messages(rng, people)
    messages, lifecycle_cases = lifecycle.apply(rng, number_orders(rng, messages))
    cases |= lifecycle_cases
    cases["mrn_collision"] = [f"{people[-1].mrn}^^^{PARTNER_AUTHORITY}^MR"]
    messages.sort(key=lambda m: m.sent)
    sent = list(zip(control_ids(rng, len(messages)), messages, strict=True))
    files = group_files(rng, config, sent)
    return Feed(
        config.seed, tuple(files), tuple(sent), tuple(subjects), visits(subjects, sent), cases
    )


def subject_feed(
    rng: random.Random, subjects: list[Subject]
) -> tuple[list[Message], dict[str, list[str]]]:
    """Visits of every subject, plus emergency visits and pre-study admissions for some."""
    midnight, *rest = rng.sample(range(len(subjects)), 1 + 4 + 3)
    unscheduled, early = set(rest[:4]), set(rest[4:])
    messages: list[Message] = []
    for i, subject in enumerate(subjects):
        c = course.course(rng, subject.trend)
        messages += trial.subject_messages(rng, subject, c, midnight_week1=i == midnight)
        if i in unscheduled:
            messages += trial.off_schedule_messages(rng, subject, c, "unscheduled")
        if i in early:
            messages += trial.off_schedule_messages(rng, subject, c, "pre-baseline")
    cases = {
        "midnight_week1": [subjects[midnight].subject_id],
        "unscheduled": sorted(subjects[i].subject_id for i in unscheduled),
        "pre_baseline": sorted(subjects[i].subject_id for i in early),
        "deaths": [s.subject_id for s in subjects if s.death_date is not None],
    }
    return messages, cases


def partner_patient(rng: random.Random, twin: Patient) -> Patient:
    """A partner hospital's patient whose MRN is an enrolled subject's, under another authority."""
    other = patient(rng, twin.mrn, birth_date(rng, date(2024, 1, 1), 30, 80))
    return replace(other, authority=PARTNER_AUTHORITY, other_ids=())


def number_orders(rng: random.Random, messages: list[Message]) -> list[Message]:
    """Give every order its LIS filler number (``YYMMDD-NNNN`` by day of receipt, rising in
    time) and its HIS placer number, in the order the lab received the specimens."""
    slots = sorted(
        (o.received, mi, oi) for mi, m in enumerate(messages) for oi, o in enumerate(m.orders)
    )
    per_day: Counter[date] = Counter()
    numbers: dict[tuple[int, int], tuple[str, str]] = {}
    placer = rng.randint(3_000_000, 4_000_000)
    for received, mi, oi in slots:
        day = received.date()
        per_day[day] += rng.randint(1, 40) if per_day[day] else rng.randint(20, 400)
        placer += rng.randint(1, 60)
        numbers[mi, oi] = (f"{day:%y%m%d}-{per_day[day]:04d}", str(placer))
    return [
        replace(
            m,
            orders=tuple(
                replace(o, filler=numbers[mi, oi][0], placer=numbers[mi, oi][1])
                for oi, o in enumerate(m.orders)
            ),
        )
        for mi, m in enumerate(messages)
    ]


def control_ids(rng: random.Random, count: int) -> list[str]:
    """Rising, unique MSH-10 values (the LIS numbers messages to other systems in between)."""
    ids, number = [], rng.randint(100_000, 200_000)
    for _ in range(count):
        number += rng.randint(1, 25)
        ids.append(f"NTC{number:08d}")
    return ids


def visits(subjects: list[Subject], sent: list[tuple[str, Message]]) -> tuple[Visit, ...]:
    """Where each scheduled visit landed: the truth a visit-window test can check against."""
    day0 = {s.subject_id: s.day0 for s in subjects}
    found: dict[tuple[str, str], Visit] = {}
    for _, m in sent:
        if m.kind != "visit":
            continue
        key = (m.subject_id, m.visit)
        collected = m.orders[0].collected
        fillers = tuple(o.filler for o in m.orders)
        known = found.get(key)
        if known is not None:
            fillers = tuple(dict.fromkeys(known.fillers + fillers))
        found[key] = Visit(
            m.subject_id,
            m.visit,
            _target(m.visit),
            collected,
            (collected.date() - day0[m.subject_id]).days,
            fillers,
        )
    return tuple(sorted(found.values(), key=lambda v: (v.subject_id, v.target_day)))


def _target(visit: str) -> int:
    return next(target for name, target, _, _ in trial.SCHEDULE if name == visit)


def group_files(
    rng: random.Random, config: SimConfig, sent: list[tuple[str, Message]]
) -> list[FeedFile]:
    """Cut the sending order into files: mostly one message each, sometimes several, and one
    FHS/BHS batch. A file never holds two messages about the same order, so a preliminary and
    its final always arrive in different files."""
    batch_at = rng.randint(len(sent) // 3, 2 * len(sent) // 3)
    chunks: list[tuple[list[tuple[str, Message]], bool, str]] = []
    i, batched = 0, False
    while i < len(sent):
        batch = not batched and i >= batch_at
        size = config.batch_size if batch else 1
        if not batch and rng.random() < config.multi_share:
            size = rng.randint(2, 4)
        chunk = _distinct_orders(sent[i : i + size])
        batched |= batch
        charset = segments.UTF8 if rng.random() < config.utf8_share else ""
        chunks.append((chunk, batch, charset))
        i += len(chunk)
    width = max(4, len(str(len(chunks))))
    return [
        make_file(f"{n:0{width}d}", chunk, charset, batch=batch)
        for n, (chunk, batch, charset) in enumerate(chunks, start=1)
    ]


def _distinct_orders(chunk: list[tuple[str, Message]]) -> list[tuple[str, Message]]:
    """The longest head of ``chunk`` in which no filler number repeats."""
    seen: set[str] = set()
    for n, (_, m) in enumerate(chunk):
        fillers = {o.filler for o in m.orders}
        if seen & fillers:
            return chunk[:n]
        seen |= fillers
    return chunk


def make_file(
    number: str, chunk: list[tuple[str, Message]], charset: str, *, batch: bool
) -> FeedFile:
    """One file; its name sorts in sending order: ``0001_<first MSH-10>.hl7``."""
    bodies = [segments.message_text(cid, m, charset) for cid, m in chunk]
    first = chunk[0][0]
    ids = tuple(cid for cid, _ in chunk)
    if batch:
        text = segments.batch_text(f"B{first}", chunk[0][1].sent, bodies)
        return FeedFile(f"{number}_{first}_batch.hl7", text, ids, True, charset)
    return FeedFile(f"{number}_{first}.hl7", "".join(bodies), ids, False, charset)
