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
                parsed.append(ParsedMessage(position, raw, None, None, parse_adt(text)))
            else:
                parsed.append(ParsedMessage(position, raw, parse_report(text, charset=codec), None))
        except MessageError as exc:
            parsed.append(ParsedMessage(position, raw, None, exc))
    return parsed
