"""Text of one ADT message -> :class:`VitalEvent`: what the trial needs of it, vital status.

Survival at one year is the study's primary endpoint. A death reaches the LIS side as
PID-29 (date/time of death) and PID-30 (death indicator), on A03 (discharge, often with
PV1-36 discharge disposition 20 "expired"), A08/A31 (update) and the other ADT events that
carry PID. Only PID-3 (to find the subject) and those fields are read.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapter.errors import ParseError
from adapter.parse.model import PatientIdentifier
from adapter.parse.segments import Segment, parse_segments, patient_ids

# UB-04 discharge status codes used in PV1-36 that mean the patient died.
_EXPIRED_DISPOSITIONS = frozenset({"20", "40", "41", "42"})


@dataclass(frozen=True, slots=True)
class VitalEvent:
    """Vital status from one ADT message."""

    message_id: str  # MSH-10
    event: str  # MSH-9.2, e.g. A03
    sender: str  # MSH-3@MSH-4
    patient_ids: tuple[PatientIdentifier, ...]
    died: bool
    death_time: str  # PID-29 as sent (HL7 DTM), '' when not sent
    event_time: str  # EVN-2 or MSH-7 as sent


def is_adt(text: str) -> bool:
    """True when MSH-9 says ADT (read before a full parse, to route the message)."""
    msh = text.split("\r", 1)[0]
    fields = msh.split(msh[3:4]) if len(msh) > 3 else []
    return len(fields) > 8 and fields[8].split(fields[1][:1] or "^", 1)[0] == "ADT"


def parse_adt(text: str, codec: str = "utf-8") -> VitalEvent:
    """Parse one ADT message for the subject's vital status."""
    segments = parse_segments(text, codec)
    msh = segments[0]
    message_id = msh.component(10)
    pid = next((s for s in segments if s.name == "PID"), None)
    if pid is None:
        raise ParseError(
            "the ADT message has no PID segment", message_id=message_id, location="PID"
        )
    try:
        ids = patient_ids(pid)
    except ParseError as exc:
        raise exc.with_message_id(message_id) from exc
    pv1 = next((s for s in segments if s.name == "PV1"), None)
    evn = next((s for s in segments if s.name == "EVN"), None)
    return VitalEvent(
        message_id=message_id,
        event=msh.component(9, 2),
        sender=f"{msh.component(3)}@{msh.component(4)}",
        patient_ids=ids,
        died=_died(pid, pv1),
        death_time=pid.component(29),
        event_time=(evn.component(2) if evn else "") or msh.component(7),
    )


def _died(pid: Segment, pv1: Segment | None) -> bool:
    indicator = pid.component(30).upper()
    if indicator == "N":
        return False
    disposition = pv1.component(36) if pv1 else ""
    return indicator == "Y" or bool(pid.component(29)) or disposition in _EXPIRED_DISPOSITIONS
