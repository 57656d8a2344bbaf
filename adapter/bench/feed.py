"""A fast, seeded hospital feed: ORU^R01 messages of 10 results, a share of them for the
enrolled subjects. Templates in the shape of ``tests/messages.py``; every code maps through
``mappings/analytes.yaml`` so an enrolled message becomes 10 Observations."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

AUTHORITY = "NTCH"
DAY0 = date(2024, 1, 15)
_TZ = timezone(timedelta(hours=8))
_START = datetime(2024, 1, 15, 7, 0, tzinfo=_TZ)
# (code^text^system, unit, low, high, reference range): the liver panel of the study.
_PANEL = (
    ("ALT^Alanine aminotransferase^L", "U/L", 10, 400, "7-56"),
    ("AST^Aspartate aminotransferase^L", "U/L", 10, 400, "10-40"),
    ("ALP^Alkaline phosphatase^L", "U/L", 40, 600, "40-150"),
    ("TBIL^Total bilirubin^L", "mg/dL", 0.3, 20, "0.2-1.2"),
    ("ALB^Albumin^L", "g/dL", 1.8, 5.0, "3.5-5.2"),
    ("PT^Prothrombin time^L", "s", 10, 30, "11-13.5"),
    ("INR^INR^L", "{INR}", 0.9, 4.0, "0.8-1.2"),
    ("CREA^Creatinine^L", "mg/dL", 0.5, 4.0, "0.6-1.2"),
    ("NA^Sodium^L", "mmol/L", 120, 150, "135-145"),
    ("PTA^Prothrombin activity^L", "%", 20, 120, "70-120"),
)


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """What to generate; the same spec always gives the same bytes."""

    messages: int
    enrolled_share: float = 0.01
    subjects: int = 20
    seed: int = 8
    first: int = 0  # number of the first message (control ids and orders go on from there)


def subject_mrn(n: int) -> str:
    return f"E{n:07d}"


def subject_id(n: int) -> str:
    return f"BENCH-{n:04d}"


def messages(spec: FeedSpec) -> Iterator[bytes]:
    """``spec.messages`` ORU^R01 messages, CR-separated, as bytes."""
    rng = random.Random(spec.seed + spec.first)  # noqa: S311 - simulated data, not secrets
    for i in range(spec.first, spec.first + spec.messages):
        enrolled = rng.random() < spec.enrolled_share
        mrn = (
            subject_mrn(rng.randrange(spec.subjects))
            if enrolled
            else f"H{rng.randrange(10**7):07d}"
        )
        yield oru(i, mrn, rng)


def enrolled_messages(count: int, subjects: int = 20, seed: int = 9) -> list[bytes]:
    """``count`` messages all for enrolled subjects (the mapping and push scenarios)."""
    return list(messages(FeedSpec(count, enrolled_share=1.0, subjects=subjects, seed=seed)))


def oru(i: int, mrn: str, rng: random.Random) -> bytes:
    """Message number ``i`` for ``mrn``: one order of the 10-result panel."""
    when = _START + timedelta(days=i % 330, minutes=i % 600)
    stamp = when.strftime("%Y%m%d%H%M%S%z")
    order = f"B{i:09d}"
    segments = [
        f"MSH|^~\\&|NTC-LIS|NTCH|TRIALBRIDGE|NTCH|{stamp}||ORU^R01^ORU_R01|BM{i:010d}|P|2.5.1"
        "||||||UNICODE UTF-8",
        f"PID|1||{mrn}^^^{AUTHORITY}^MR||Bench^Patient||19600101|F",
        f"OBR|1|P-{order}^HIS|{order}^NTC-LIS|LFT^Liver panel^L|||{stamp}"
        f"|||||||||||||||{stamp}|||F",
    ]
    for n, (code, unit, low, high, ref) in enumerate(_PANEL, start=1):
        value = round(rng.uniform(low, high), 1)
        segments.append(f"OBX|{n}|NM|{code}|1|{value}|{unit}|{ref}|N|||F|||{stamp}")
    return ("\r".join(segments) + "\r").encode()
