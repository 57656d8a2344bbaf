"""The enrolment gate at the door of the inbox: read a raw message's patient identifiers and
ask the registry's index whether it belongs to an enrolled subject.

It reads PID-3 leniently from the bytes (a message that will later be refused still has to
be attributed, or dropped), and keeps nothing of what it read.
"""

from __future__ import annotations

from datetime import datetime

from adapter.parse.model import PatientIdentifier
from adapter.trial.enrolment import Decision, EnrolmentIndex
from adapter.trial.study import Study

UNATTRIBUTABLE = "unattributable"


class Gate:
    """The study and its enrolment index, as one decision per message."""

    def __init__(self, study: Study, index: EnrolmentIndex) -> None:
        self.study = study
        self.index = index

    def decide(self, patient_ids: tuple[PatientIdentifier, ...], received_at: datetime) -> Decision:
        return self.index.decide(patient_ids, received_at)

    def admit(self, raw: bytes, received_at: datetime) -> Decision:
        """The decision for a raw message; unattributable when it names no patient."""
        ids = patient_ids_in(raw)
        if not ids:
            return Decision(UNATTRIBUTABLE, reason="no PID-3 could be read")
        return self.index.decide(ids, received_at)


def patient_ids_in(raw: bytes) -> tuple[PatientIdentifier, ...]:
    """PID-3 of a message, read leniently (bad bytes are replaced here only). Only the PID
    segment is decoded: the gate runs for every message of a hospital's feed."""
    if not raw.startswith(b"MSH") or len(raw) < 8:
        return ()
    segment = _segment(raw, b"PID" + raw[3:4])
    if segment is None:
        return ()
    separators = raw[3:6].decode("latin-1")
    fields = segment.decode("utf-8", errors="replace").split(separators[0])
    return _pid3(fields[3] if len(fields) > 3 else "", separators[1], separators[2])


def _segment(raw: bytes, start: bytes) -> bytes | None:
    """The first segment (after the MSH) that begins with ``start``; CR, LF or CRLF ends."""
    begin = raw.find(b"\r" + start)
    if begin < 0:
        begin = raw.find(b"\n" + start)
        if begin < 0:
            return None
    begin += 1
    end = raw.find(b"\r", begin)
    if end < 0:
        end = raw.find(b"\n", begin)
    return raw[begin:end] if end >= 0 else raw[begin:]


def _pid3(field: str, component: str, repetition: str) -> tuple[PatientIdentifier, ...]:
    ids = []
    for rep in field.split(repetition):
        parts = [*rep.split(component), "", "", "", "", ""]
        if parts[0].strip():
            authority = parts[3].split("&", 1)[0].strip()
            ids.append(PatientIdentifier(parts[0].strip(), authority, parts[4].strip()))
    return tuple(ids)
