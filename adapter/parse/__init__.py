"""Stage "parse": bytes from the LIS -> typed :class:`Report` objects.

Pure: no I/O. ``parse_bytes`` decodes (BOM, MSH-18 or a forced charset), normalises the
segment separators, unwraps FHS/BHS batches, and parses each ORU^R01 with python-hl7.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapter.errors import MessageError
from adapter.parse.adt import VitalEvent, is_adt, parse_adt
from adapter.parse.decode import decode_message, split_messages
from adapter.parse.model import Coding, EntityId, Order, PatientIdentifier, Report, Result
from adapter.parse.oru import parse_report

__all__ = [
    "Coding",
    "EntityId",
    "Order",
    "ParsedMessage",
    "PatientIdentifier",
    "Report",
    "Result",
    "VitalEvent",
    "parse_bytes",
    "parse_report",
]


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """One message out of a file or stream: its report (ORU), its vital status (ADT), or the
    error that refused it."""

    position: int  # 1-based position in the input
    raw: bytes
    report: Report | None
    error: MessageError | None
    vital: VitalEvent | None = None


def parse_bytes(data: bytes, *, forced_charset: str | None = None) -> list[ParsedMessage]:
    """Every message in ``data``, parsed or refused; one bad message never hides the rest."""
    parsed: list[ParsedMessage] = []
    for position, raw in enumerate(split_messages(data), start=1):
        try:
            text, codec = decode_message(raw, forced_charset)
            if is_adt(text):
                parsed.append(ParsedMessage(position, raw, None, None, parse_adt(text, codec)))
            else:
                parsed.append(ParsedMessage(position, raw, parse_report(text, charset=codec), None))
        except MessageError as exc:
            named = exc if exc.message_id else exc.with_message_id(control_id_in(raw))
            parsed.append(ParsedMessage(position, raw, None, named))
    return parsed


def control_id_in(raw: bytes) -> str | None:
    """MSH-10 read from the bytes, for naming a message that could not be decoded or
    parsed; None unless it is short printable ASCII (it is a control id, never content)."""
    msh = raw.split(b"\r", 1)[0]
    fields = msh.split(msh[3:4]) if len(msh) > 3 else []
    if len(fields) <= 9:
        return None
    control_id = fields[9].split(b"^", 1)[0].strip()
    if not control_id or len(control_id) > 50 or not control_id.isascii():
        return None
    text = control_id.decode("ascii")
    return text if text.isprintable() else None
