"""The messages mutants are made from, and the enrolment gate that lets the simulated
subjects' messages through (so mutants reach the trial links, visits and the build).

Seeds: every file of the real-world corpus copied into ``tests/data/corpus/hl7`` (whole
files: batches, BOMs and odd separators included), the files of a small simulated feed
(``adapter.simulate``: the study's LIS, its codes and units, enrolled subjects and others),
and two ADT messages of an enrolled subject (the feed has none; vital status comes by ADT).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from adapter.simulate import SimConfig, simulate
from adapter.simulate.model import Feed
from adapter.trial.enrolment import EnrolledSubject, EnrolmentIndex, HospitalId
from adapter.trial.gate import Gate
from adapter.trial.resources import SubjectRecord
from adapter.trial.study import load_study

CORPUS = Path(__file__).resolve().parents[2] / "tests" / "data" / "corpus" / "hl7"


@dataclass(frozen=True, slots=True)
class Seed:
    """One seed message (or file of messages) and where it came from."""

    name: str
    data: bytes


def corpus_seeds(folder: Path = CORPUS) -> list[Seed]:
    """Every ``*.hl7`` file of the corpus folder, in name order."""
    return [Seed(path.name, path.read_bytes()) for path in sorted(folder.glob("*.hl7"))]


def simulated_feed(files: int = 60) -> Feed:
    """A small simulated feed (seeded: always the same bytes)."""
    return simulate(SimConfig(seed=12, other_patients=files // 3))


def feed_seeds(feed: Feed, files: int = 60) -> list[Seed]:
    """The first ``files`` files of the feed that hold an enrolled subject's message, plus a
    few of everyone else's."""
    enrolled = {s.patient.mrn for s in feed.subjects}
    ours = [f for f in feed.files if any(mrn.encode() in f.text.encode() for mrn in enrolled)]
    others = [f for f in feed.files if f not in ours]
    chosen = ours[:files] + others[: max(files // 10, 1)]
    return [Seed(f"sim/{f.name}", f.text.encode("utf-8")) for f in chosen]


def adt_seeds(feed: Feed) -> list[Seed]:
    """A discharge with a death (A03: PID-29, PID-30, PV1-36) and an update (A08) of the
    feed's first subject."""
    patient = feed.subjects[0].patient
    pid = "|".join(
        ["PID", "1", "", f"{patient.mrn}^^^{patient.authority}^MR", "", "Test^Patient", "",
         "19610304", "F", *[""] * 20, "20240601093000+0800", "Y"]
    )  # fmt: skip
    pv1 = "|".join(["PV1", "1", "I", "WARD3", *[""] * 32, "20"])
    seeds = []
    for event, number in (("A03", "ADT0001"), ("A08", "ADT0002")):
        msh = (
            f"MSH|^~\\&|NTC-HIS|NTCH|TB|NTCH|20240601101500+0800||ADT^{event}^ADT_{event}|"
            f"{number}|P|2.5.1"
        )
        evn = f"EVN|{event}|20240601101000+0800"
        seeds.append(Seed(f"adt/{event}", "\r".join([msh, evn, pid, pv1, ""]).encode()))
    return seeds


def all_seeds(files: int = 60) -> tuple[list[Seed], Gate]:
    """The corpus, feed and ADT seeds, and a gate that enrols the feed's subjects."""
    feed = simulated_feed(files)
    return corpus_seeds() + feed_seeds(feed, files) + adt_seeds(feed), gate_for(feed)


def gate_for(feed: Feed) -> Gate:
    """The enrolment gate of the study with the feed's subjects enrolled."""
    subjects = [
        EnrolledSubject(
            SubjectRecord(
                s.subject_id,
                s.arm,
                s.patient.sex,
                s.patient.birth_date.year,
                s.consent_date,
                "on-study",
                day0=s.day0,
            ),
            (HospitalId(s.patient.mrn, s.patient.authority),),
            s.infusion_dates,
        )
        for s in feed.subjects
    ]
    return Gate(load_study(), EnrolmentIndex(subjects))
