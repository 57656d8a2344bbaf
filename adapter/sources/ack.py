"""MLLP's second layer: what a frame holds, and the acknowledgement it gets. Pure.

:func:`check` decides whether a frame's payload can go to the inbox (an HL7 v2 ORU or ADT
message with an MSH-10, decodable in its character set) or names the problem. :func:`build_ack`
writes the original-mode acknowledgement: the MSH swaps sender and receiver, MSH-9 is
``ACK^<trigger>^ACK``, the version and processing id are the message's, MSA-2 echoes MSH-10,
and an error carries an ERR segment (HL7 table 0357) naming it. :func:`build_ack` cannot fail:
whatever bytes came in, a reply goes out (a lock-step sender waits for it forever otherwise).

The codes follow HL7 v2.5.1 chapter 2, section 2.9.2 (original acknowledgment mode):

- 2.9.2.1: a message whose MSH-9 (message type) the receiver does not accept is rejected
  with **AR**; the ERR names MSH-9 (table 0357 code 200). The sender fixes its routing.
- 2.9.2.2 a): a message processed (committed to the store, or forgotten by the enrolment
  filter) gets **AA**.
- 2.9.2.2 b): an error in the message's content gets **AE** with the ERR naming segment and
  field. Sending the same bytes again gets the same AE: the sender must not resend it
  unchanged (a correction is a new message).
- 2.9.2.2 c): a failure unrelated to the content (the store is unavailable, the enrolment
  registry cannot be read) gets **AR** with code 207: nothing was stored, and the same
  message will be accepted later, so the sender resends it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime

from adapter.errors import MessageError
from adapter.parse.decode import decode_message, normalise
from adapter.sources.framing import BadFrame
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
SEVERITY = "E"  # ERR-4, HL7 table 0516: every problem here stops the message (E: error)
# Byte-order marks of UTF-16 LE (and UTF-32 LE, which starts the same), UTF-16 BE, UTF-32 BE.
_WIDE_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")
_TRIGGER = re.compile(r"[A-Za-z0-9_]{1,7}")  # MSH-9.2 as echoed in the ACK's MSH-9
# C0 controls other than CR (MLLP's start and end blocks among them) must not reach the ACK:
_CONTROLS = {c: "?" for c in range(32) if c != 13}
_MESSAGE_SEGMENTS = (b"MSH", b"FHS", b"BHS", b"BTS", b"FTS")  # none may follow a frame's MSH
_TRAILING = b"\r\x00 \t\x0b\x1c"  # what normalise() strips from the ends
_EMPTY = ("",) * 18  # pads an MSH to MSH-18
_OLD_VERSIONS = ("2.1", "2.2", "2.3")  # no message structure in MSH-9, ERR-1 only (< 2.5)


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a message is not accepted, as the ACK will say it."""

    code: str  # MSA-1: AE (content error: do not resend unchanged) or AR (see the docstring)
    error: str  # ERR-3, HL7 table 0357 code
    location: str  # ERR-2: segment^sequence^field, e.g. MSH^1^10; empty when unknown
    text: str  # what to fix (MSA-3, ERR-8); never message content


def content_problem(error: str, location: str, text: str) -> Problem:
    """An error in the message itself (2.9.2.2 b): AE, the sender corrects and sends anew."""
    return Problem("AE", error, location, text)


def transient_problem(what: str) -> Problem:
    """A failure on TrialBridge's side, unrelated to the content (2.9.2.2 c): AR, nothing
    was stored, and the same message is accepted later."""
    return Problem("AR", "207", "", f"not stored, send the same message later: {what}")


internal_problem = transient_problem  # the name older callers use


def unreadable_problem(error_name: str) -> Problem:
    """A frame TrialBridge failed to read for a reason of its own (a bug, not a stoppage):
    the same bytes would fail the same way, so it is AE, and the sender must not loop."""
    text = (
        f"do not resend it unchanged, it will fail again: TrialBridge could not read it "
        f"({error_name}); keep it and report it to the TrialBridge operators"
    )
    return Problem("AE", "207", "MSH^1", text)


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
        return _no_header(payload)
    if header.message_type not in ACCEPTED_TYPES:
        shown = header.message_type[:10] or "(empty)"
        text = f"message type {shown} is not ORU or ADT: route only ORU and ADT messages here"
        return Problem("AR", "200", "MSH^1^9", text)  # 2.9.2.1: MSH-9 not acceptable
    if not header.control_id:
        return content_problem("101", "MSH^1^10", "MSH-10 (message control id) is empty")
    try:
        message = _normalised(payload)
    except (UnicodeError, MessageError):  # a UTF-16/32 byte-order mark on other bytes
        return _wide_bom_problem()
    if _several_messages(message, header.separator):
        text = "the frame holds more than one message: send each message in a frame of its own"
        return content_problem("100", "MSH^2", text)
    return _decoded(message, header, forced_charset)


def _decoded(message: bytes, header: Header, forced_charset: str | None) -> bytes | Problem:
    """``message`` when it decodes in its character set, else the AE naming MSH-18."""
    try:
        decode_message(message, forced_charset)
    except MessageError as exc:
        return content_problem("102", "MSH^1^18", exc.reason)
    except Exception as exc:  # a codec that is not a text codec (quopri, punycode, ...)
        charset = forced_charset or header.field(18)[:40]
        text = (
            f"character set {charset!r} cannot decode this message ({type(exc).__name__}): "
            "use an HL7 table 0211 name such as UNICODE UTF-8 or 8859/1"
        )
        return content_problem("102", "MSH^1^18", text)
    return message


def _no_header(payload: bytes) -> Problem:
    if payload.startswith(_WIDE_BOMS):
        return _wide_bom_problem()
    text = "not an HL7 v2 message: the frame does not start with an MSH segment"
    try:
        batch = normalise(payload[:16])[:3] in (b"FHS", b"BHS")
    except Exception:  # normalise() refused the bytes: not a batch either
        batch = False
    if batch:
        text = "a batch (FHS/BHS) cannot be sent over MLLP: send one message per frame"
    return content_problem("100", "MSH^1", text)


def _wide_bom_problem() -> Problem:
    text = (
        "the frame starts with a UTF-16/UTF-32 byte-order mark but its bytes do not decode "
        "that way: send the message in UTF-8 (MSH-18 UNICODE UTF-8) or 8859/1"
    )
    return content_problem("102", "MSH^1^18", text)


_FRAMING = "send each message as <VT> message <FS><CR> (MLLP), within sources.mllp limits"


def read_frame(
    item: bytes | BadFrame, forced_charset: str | None = None
) -> tuple[Header | None, bytes | Problem]:
    """What the listener does with each frame, whatever its bytes: its MSH (for the reply,
    None when unreadable) and its message, or the problem to answer. Never raises."""
    header = None
    try:
        if isinstance(item, BadFrame):
            header = read_header(item.data)
            return header, content_problem("100", "", f"{item.reason}: {_FRAMING}")
        header = read_header(item)
        return header, check_frame(header, item, forced_charset)
    except Exception as exc:  # a bug in checking must still answer the sender
        return header, unreadable_problem(type(exc).__name__)


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

    Bytes in Latin-1, the same bytes the echoed fields came in. It cannot fail: should the
    echoed header hold something unwritable, the ACK goes out without echoing it.
    """
    try:
        return _ack(header, control_id, now, problem, responder)
    except Exception:  # an MSH nobody foresaw: answer all the same, echoing only MSH-10
        echoed = header.control_id if header is not None else ""
        bare = Header("|", DEFAULT_ENCODING, ("MSH", DEFAULT_ENCODING, *("",) * 7, echoed))
        return _ack(bare, control_id, now, problem, responder)


def _ack(
    header: Header | None,
    control_id: str,
    now: datetime,
    problem: Problem | None,
    responder: Responder,
) -> bytes:
    h = header or Header("|", DEFAULT_ENCODING, ("MSH", DEFAULT_ENCODING))
    segments = [_msh(h, control_id, now, responder), _msa(h, problem)]
    if problem is not None:
        segments.append(_err(h, problem))
    text = ("\r".join(segments) + "\r").translate(_CONTROLS)
    return text.encode("latin-1", errors="replace")


def _msh(h: Header, control_id: str, now: datetime, responder: Responder) -> str:
    f = (*h.fields, *_EMPTY[len(h.fields) :])  # MSH-n is f[n - 1]; absent fields empty
    version = h.version or DEFAULT_VERSION
    component = h.encoding[0]
    message_type = "ACK"
    if _TRIGGER.fullmatch(h.trigger):  # echoed only when it is a trigger event code
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
    if second.tzinfo is None:  # a caller's naive clock: the time without its offset
        return second.strftime("%Y%m%d%H%M%S")
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
    return sep.join(("ERR", "", location, code, SEVERITY, "", "", "", text))
