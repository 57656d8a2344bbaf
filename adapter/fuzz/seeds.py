"""The messages mutants are made from, and the enrolment gate that lets the simulated
subjects' messages through (so mutants reach the trial links, visits and the build).

Seeds: every file of the real-world corpus copied into ``tests/data/corpus/hl7`` (whole
files: batches, BOMs and odd separators included) and the files of a small simulated feed
(``adapter.simulate``: the study's LIS, its codes and units, enrolled subjects and others).
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


def all_seeds(files: int = 60) -> tuple[list[Seed], Gate]:
    """The corpus and feed seeds, and a gate that enrols the feed's subjects."""
    feed = simulated_feed(files)
    return corpus_seeds() + feed_seeds(feed, files), gate_for(feed)


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
