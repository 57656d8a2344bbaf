"""The typed model of an ORU^R01 report: what the later stages need, and nothing else.

Values are kept as the lab sent them (strings, HL7 timestamps); interpretation (numbers,
units, statuses) is the mapping stage's job, so an interface engineer can always see the
original next to the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Coding:
    """One coding of a coded element (CE/CWE): OBX-3.1-3 or its alternate OBX-3.4-6."""

    code: str
    text: str
    system: str


@dataclass(frozen=True, slots=True)
class EntityId:
    """An order number (EI): the number and the namespace that issued it."""

    value: str
    namespace: str = ""

    def key(self) -> str:
        """A stable text form, ``value^namespace``, used in identifiers."""
        return f"{self.value}^{self.namespace}" if self.namespace else self.value


@dataclass(frozen=True, slots=True)
class PatientIdentifier:
    """One repetition of PID-3: the value, its assigning authority and identifier type."""

    value: str
    authority: str
    type_code: str


@dataclass(frozen=True, slots=True)
class Result:
    """One OBX segment."""

    location: str  # where it sits in the message, e.g. "OBX[3]" (1-based among OBX)
    set_id: str
    value_type: str  # OBX-2
    codings: tuple[Coding, ...]  # OBX-3: primary first, then the alternate coding
    sub_id: str  # OBX-4
    values: tuple[str, ...]  # OBX-5, every repetition, unescaped; SN components joined by ^
    unit: Coding | None  # OBX-6
    reference_range: str  # OBX-7
    flags: tuple[str, ...]  # OBX-8, every repetition
    status: str  # OBX-11
    observed_at: str  # OBX-14 (HL7 DTM as sent)
    analysed_at: str  # OBX-19 (HL7 DTM as sent)
    notes: tuple[str, ...] = ()  # NTE segments that follow this OBX


@dataclass(frozen=True, slots=True)
class Order:
    """One OBR group: the order numbers, what was ordered, and its results."""

    location: str  # e.g. "OBR[1]"
    placer: EntityId | None  # OBR-2 (or ORC-2)
    filler: EntityId | None  # OBR-3 (or ORC-3)
    service: tuple[Coding, ...]  # OBR-4
    observed_at: str  # OBR-7
    reported_at: str  # OBR-22
    status: str  # OBR-25
    results: tuple[Result, ...]
    notes: tuple[str, ...] = ()  # NTE segments that follow the OBR (before its first OBX)

    def order_number(self) -> EntityId | None:
        """The number that identifies this order for the lab: filler first, then placer."""
        return self.filler or self.placer


@dataclass(frozen=True, slots=True)
class Report:
    """One ORU^R01 message."""

    message_id: str  # MSH-10
    message_type: str  # MSH-9, e.g. "ORU^R01"
    sending_application: str  # MSH-3.1
    sending_facility: str  # MSH-4.1
    sent_at: str  # MSH-7 (HL7 DTM as sent)
    version: str  # MSH-12
    charset: str  # the character set the bytes were decoded with
    patient_ids: tuple[PatientIdentifier, ...]
    orders: tuple[Order, ...] = field(default=())

    def sender(self) -> str:
        """Who sent it: ``application@facility``, the scope of MSH-10."""
        return f"{self.sending_application}@{self.sending_facility}"
