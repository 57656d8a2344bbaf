"""Plain data for the simulated LIS feed: people, results, orders, messages, files.

Everything here is immutable. The generators in this package build these objects from a
seeded ``random.Random``; :mod:`adapter.simulate.segments` turns them into HL7v2 text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

HOSPITAL_TZ = timezone(timedelta(hours=8))
"""The hospital (General Hospital of the Northern Theatre Command) is in China: UTC+08:00."""

MRN_AUTHORITY = "NTCH"
"""Assigning authority of the hospital's medical record numbers (PID-3.4)."""

FILLER_AUTHORITY = "NTC-LIS"
"""Namespace of the LIS's filler order numbers (OBR-3.2)."""


@dataclass(frozen=True)
class Patient:
    """A hospital patient as the LIS knows them."""

    mrn: str
    family: str
    given: str
    family_hanzi: str
    given_hanzi: str
    sex: str  # F or M
    birth_date: date
    authority: str = MRN_AUTHORITY
    other_ids: tuple[str, ...] = ()  # extra PID-3 repetitions, already in CX form


@dataclass(frozen=True)
class Subject:
    """A trial subject of XHNKKY-DDSC and the hospital patient behind them."""

    subject_id: str
    patient: Patient
    arm: str  # low-dose / medium-high-dose
    consent_date: date
    infusion_dates: tuple[date, ...]
    death_date: date | None
    trend: str  # improving / stable / worsening

    @property
    def day0(self) -> date:
        """The first infusion: day 0 of the visit schedule."""
        return self.infusion_dates[0]


@dataclass(frozen=True)
class Result:
    """One OBX: a coded result as the LIS sends it."""

    analyte: str  # the simulator's analyte key (catalog), e.g. "bilirubin_total"
    code: str
    text: str
    system: str  # OBX-3.3: L (local) or LN (LOINC)
    value_type: str  # NM, SN or ST
    value: str  # OBX-5 as sent ("" when there is no value)
    unit: str
    ref_range: str
    flag: str  # OBX-8: N, H, L, HH, LL or ""
    status: str = "F"  # OBX-11
    sub_id: str = ""  # OBX-4
    note: str = ""  # an NTE after this OBX
    analysed: datetime | None = None  # OBX-19, sent only by some analysers


@dataclass(frozen=True)
class Order:
    """One OBR with its results."""

    filler: str  # OBR-3.1, e.g. 240115-0042
    placer: str  # OBR-2.1
    service_code: str
    service_text: str
    collected: datetime
    received: datetime
    reported: datetime
    results: tuple[Result, ...]
    status: str = "F"  # OBR-25
    note: str = ""  # an NTE after the OBR


@dataclass(frozen=True)
class Message:
    """One ORU^R01 and what the simulator knows about it (not sent)."""

    patient: Patient
    orders: tuple[Order, ...]
    sent: datetime
    kind: str  # visit, unscheduled, pre-baseline, lifecycle, other
    subject_id: str = ""
    visit: str = ""  # week0, week1, ... for scheduled visits
    patient_class: str = "O"  # PV1-2: I inpatient, O outpatient, E emergency


@dataclass(frozen=True)
class Visit:
    """A scheduled visit as the simulator placed it (the truth a later test can check)."""

    subject_id: str
    visit: str
    target_day: int
    collected: datetime
    study_day: int
    fillers: tuple[str, ...]


@dataclass(frozen=True)
class FeedFile:
    """One file of the feed: its name and the text it holds."""

    name: str
    text: str
    message_ids: tuple[str, ...]
    batch: bool = False
    charset: str = ""  # MSH-18 of its messages


@dataclass(frozen=True)
class Feed:
    """The whole simulated feed, as data: files plus the coordinator's and the truth tables."""

    seed: int
    files: tuple[FeedFile, ...]
    messages: tuple[tuple[str, Message], ...]  # (control id, message) in sending order
    subjects: tuple[Subject, ...]
    visits: tuple[Visit, ...]
    cases: dict[str, list[str]] = field(default_factory=dict)
