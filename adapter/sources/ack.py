"""MLLP's second layer: what a frame holds, and the acknowledgement it gets. Pure.

:func:`check` decides whether a frame's payload can go to the inbox (an HL7 v2 ORU or ADT
message with an MSH-10, decodable in its character set) or names the problem. :func:`build_ack`
writes the original-mode acknowledgement: the MSH swaps sender and receiver, MSH-9 is
``ACK^<trigger>^ACK``, the version and processing id are the message's, MSA-2 echoes MSH-10,
and an error carries an ERR segment (HL7 table 0357) naming it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime

from adapter.errors import MessageError
from adapter.parse.decode import decode_message, normalise
from adapter.sources.hl7v2 import DEFAULT_ENCODING, Header, escape, format_ts, read_header
from adapter.store.inbox import Incoming, one_message

ACCEPTED_TYPES = ("ORU", "ADT")
DEFAULT_VERSION = "2.5.1"
# HL7 table 0357, message error condition codes.
ERROR_NAMES = {
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "200": "Unsupported message type",
    "207": "Application internal error",
}
_MESSAGE_SEGMENTS = (b"MSH", b"FHS", b"BHS", b"BTS", b"FTS")  # none may follow a frame's MSH
_TRAILING = b"\r\x00 \t\x0b\x1c"  # what normalise() strips from the ends
_EMPTY = ("",) * 18  # pads an MSH to MSH-18
_OLD_VERSIONS = ("2.1", "2.2", "2.3")  # no message structure in MSH-9, ERR-1 only (< 2.5)


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a message is not accepted, as the ACK will say it."""

    code: str  # MSA-1: AE (error: may be resent) or AR (rejected: resending will not help)
    error: str  # HL7 table 0357 code
    location: str  # ERL: segment^sequence^field, e.g. MSH^1^10; empty when unknown
    text: str  # what to fix; never message content


def check(payload: bytes, source: str, forced_charset: str | None = None) -> Incoming | Problem:
    """The inbox entry for one frame's payload, or the problem with it."""
    checked = check_frame(read_header(payload), payload, forced_charset)
    return checked if isinstance(checked, Problem) else one_message(checked, source)


def check_frame(
    header: Header | None, payload: bytes, forced_charset: str | None = None
) -> bytes | Problem:
    """The message of a frame (normalised, as the inbox keeps it), or the problem with it.
    The inbox entry (its hash) is left for the messages the enrolment gate lets in."""
    if header is None:
        text = "not an HL7 v2 message: the frame does not start with an MSH segment"
        if normalise(payload[:3]) in (b"FHS", b"BHS"):
            text = "a batch (FHS/BHS) cannot be sent over MLLP: send one message per frame"
        return Problem("AR", "100", "MSH^1", text)
    if header.message_type not in ACCEPTED_TYPES:
        shown = header.field(9)[:20] or "(empty)"
        return Problem("AR", "200", "MSH^1^9", f"message type {shown} is not ORU or ADT")
    if not header.control_id:
        return Problem("AR", "101", "MSH^1^10", "MSH-10 (message control id) is empty")
    message = _normalised(payload)
    if _several_messages(message, header.separator):
        text = "the frame holds more than one message: send each message in a frame of its own"
        return Problem("AR", "100", "MSH^2", text)
    try:
        decode_message(message, forced_charset)
    except MessageError as exc:
        return Problem("AE", "102", "MSH^1^18", exc.reason)
    return message


def _normalised(payload: bytes) -> bytes:
    """:func:`normalise`, short-cut for the usual frame (MSH first, CR only): the bytes must
    be the same, as the inbox deduplicates by their hash (a resend by file must match)."""
    if payload.startswith(b"MSH") and b"\n" not in payload:
        return payload.rstrip(_TRAILING)
    return normalise(payload)


def _several_messages(message: bytes, separator: str) -> bool:
    """Whether a normalised payload holds another MSH (or a batch segment) after its own."""
    return _next_message(separator).search(message) is not None


@functools.lru_cache(maxsize=8)
def _next_message(separator: str) -> re.Pattern[bytes]:
    names = b"|".join(_MESSAGE_SEGMENTS)
    return re.compile(b"\r(?:" + names + b")" + re.escape(separator.encode("latin-1")))


def internal_problem(what: str) -> Problem:
    """The problem for a message TrialBridge failed to store: the sender should resend."""
    return Problem("AE", "207", "", f"{what}; the message was not stored, send it again")


@dataclass(frozen=True, slots=True)
class Responder:
    """Who TrialBridge says it is when the message does not name its receiver."""

    application: str = "TRIALBRIDGE"
    facility: str = ""


def build_ack(
    header: Header | None,
    control_id: str,
    now: datetime,
    problem: Problem | None = None,
    responder: Responder = Responder(),
) -> bytes:
    """The acknowledgement of a message (``header`` None when it had no readable MSH).

    Bytes in Latin-1, the same bytes the echoed fields came in.
    """
    h = header or Header("|", DEFAULT_ENCODING, ("MSH", DEFAULT_ENCODING))
    segments = [_msh(h, control_id, now, responder), _msa(h, problem)]
    if problem is not None:
        segments.append(_err(h, problem))
    return ("\r".join(segments) + "\r").encode("latin-1")


def _msh(h: Header, control_id: str, now: datetime, responder: Responder) -> str:
    f = (*h.fields, *_EMPTY[len(h.fields) :])  # MSH-n is f[n - 1]; absent fields empty
    version = h.version or DEFAULT_VERSION
    component = h.encoding[0]
    message_type = "ACK"
    if h.trigger:
        message_type += f"{component}{h.trigger}"
        if not version.startswith(_OLD_VERSIONS) or version.startswith("2.3.1"):
            message_type += f"{component}ACK"
    fields = [
        "MSH",
        h.encoding,
        f[4] or responder.application,
        f[5] or responder.facility,
        f[2],
        f[3],
        _timestamp(now.replace(microsecond=0)),
        "",
        message_type,
        control_id,
        f[10] or "P",
        f[11] or DEFAULT_VERSION,
    ]
    if f[17]:  # MSH-18, the character set, echoed
        fields += ["", "", "", "", "", f[17]]
    return h.separator.join(fields)


@functools.lru_cache(maxsize=4)
def _timestamp(second: datetime) -> str:
    """MSH-7 (second precision): the same text for every ACK within one second."""
    return format_ts(second)


def _msa(h: Header, problem: Problem | None) -> str:
    code = "AA" if problem is None else problem.code
    fields = ["MSA", code, h.control_id]
    if problem is not None:
        fields.append(escape(problem.text[:80], h.separator, h.encoding))
    return h.separator.join(fields)


def _err(h: Header, problem: Problem) -> str:
    sep, component, sub = h.separator, h.encoding[0], h.encoding[3]
    name = ERROR_NAMES.get(problem.error, "")
    location = problem.location.replace("^", component)
    text = escape(problem.text, sep, h.encoding)
    if (h.version or DEFAULT_VERSION).startswith((*_OLD_VERSIONS, "2.4")):
        code = sub.join((problem.error, name, "HL70357"))
        eld = component.join((*([*problem.location.split("^"), "", "", ""])[:3], code))
        return sep.join(("ERR", eld))  # before 2.5, ERR-1 only; MSA-3 carries the text
    code = component.join((problem.error, name, "HL70357"))
    return sep.join(("ERR", "", location, code, "E", "", "", "", text))
