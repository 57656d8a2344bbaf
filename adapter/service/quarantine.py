"""What is recorded when one message is set aside (quarantined): pure, no I/O.

Processing or pushing one message may fail in any way: a project error that says what is
wrong and where (:class:`~adapter.errors.MessageError` names the segment and field), or any
other exception, which is a TrialBridge bug. Either way the message alone is set aside in the
store (:mod:`adapter.store.service`) and the flow goes on; :func:`fault_of` turns the
exception into what the store and the operator keep: its class, the reason (cleaned, capped)
and where — the segment and field when the error names them, else the line of TrialBridge's
code that failed, so a bug report can name it without quoting the message.

:func:`carries_results` decides whether a quarantined message holds back its subject's later
results: only a result message (ORU) can be overtaken by a later result of the same order
(docs/operations/quarantine.md says why they wait).
"""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePath
from typing import Any

from adapter.errors import MessageError, TrialBridgeError
from adapter.store.quarantine import QuarantineEntry

REASON_LIMIT = 500  # characters of reason kept: enough for any project error and its hint
LOCATION_LIMIT = 255
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # PostgreSQL text takes no NUL
_BUG_HINT = (
    " — not an error TrialBridge expected: a bug. Report it with the message's MSH-10 "
    "(not its content); after an upgrade, run trialbridge quarantine retry"
)


@dataclass(frozen=True, slots=True)
class Fault:
    """An exception as the quarantine records it."""

    error_class: str  # e.g. MappingError, ValueError
    reason: str
    location: str | None  # OBX[2].14 (segment and field), or code: adapter/x.py:12 (f)


def fault_of(exc: BaseException) -> Fault:
    """What to record about ``exc``, the exception that set a message aside."""
    name = type(exc).__name__
    if isinstance(exc, MessageError):
        return Fault(name, _clean(str(exc)), _where(exc.location))
    if isinstance(exc, TrialBridgeError):
        return Fault(name, _clean(str(exc)), None)
    text = _clean(str(exc)) or "(no message)"
    return Fault(name, _cap(text, REASON_LIMIT - len(_BUG_HINT)) + _BUG_HINT, _code_line(exc))


def refusal(reason: str, location: str | None, error_class: str = "MessageError") -> Fault:
    """A message processing refused with a project error it returned (not raised)."""
    return Fault(error_class, _clean(reason), _where(location))


def _clean(text: str) -> str:
    return _cap(_CONTROL.sub("?", text), REASON_LIMIT)


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _where(location: str | None) -> str | None:
    return None if location is None else _cap(_CONTROL.sub("?", location), LOCATION_LIMIT)


def _code_line(exc: BaseException) -> str | None:
    """The deepest frame in TrialBridge's own code: ``code: adapter/parse/x.py:57 (f)``."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        parts = PurePath(frame.filename).parts
        if "adapter" in parts:
            relative = "/".join(parts[len(parts) - parts[::-1].index("adapter") - 1 :])
            return _cap(f"code: {relative}:{frame.lineno} ({frame.name})", LOCATION_LIMIT)
    return None


def carries_results(raw: bytes) -> bool:
    """Whether the message is (or may be) a result message: MSH-9.1 is ORU, or MSH-9 cannot
    be read (the safe side: it may be one)."""
    start = raw.find(b"MSH", 0, 16)  # after a byte order mark or MLLP leftovers, if any
    if start < 0 or len(raw) < start + 8:
        return True
    header = re.split(rb"[\r\n]", raw[start:], maxsplit=1)[0]
    fields = header.split(header[3:4])
    if len(fields) < 9 or not fields[1]:
        return True
    message_type = fields[8].split(fields[1][:1])[0].strip().upper()
    return message_type in (b"ORU", b"")


def entry_json(e: QuarantineEntry) -> dict[str, Any]:
    """An entry as ``quarantine list --json`` and ``status --json`` show it (never the
    message's content)."""
    return {
        "id": e.entry_id,
        "message": e.control_id,
        "sender": e.sender,
        "received_at": _iso(e.received_at),
        "subject": e.subject_id,
        "stage": e.stage,
        "error_class": e.error_class,
        "location": e.location,
        "reason": e.reason,
        "times": e.times,
        "first_seen": _iso(e.first_seen),
        "last_seen": _iso(e.last_seen),
        "holds_subject": e.holds,
        "held_back": e.held_back,
        "retryable": e.raw_kept,
        "resolution": e.resolution,
        "resolved_at": _iso(e.resolved_at),
        "note": e.note,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None
