"""Structured logs: JSON on stderr, one event per line, and never patient data.

Each line is one JSON object: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``event`` (a
dotted name such as ``fhir.retry``) and the event's fields::

    {"time":"2024-03-01T06:00:00.123Z","level":"warning","logger":"adapter.fhir_client",
     "event":"fhir.retry","method":"POST","path":"/","status":503,"attempt":1,"wait":2.0}

**The rule.** Log counts, control ids (MSH-10), trial subject numbers (``DDSC-001``), job and
source names, durations, HTTP statuses and URL paths without their query. Never PID fields
(names, MRNs and other hospital identifiers, birth dates, addresses, phone numbers), never raw
message bytes, segments, OBX values or NTE text, never credentials, and never the text of an
exception (it may quote a field): an exception is logged as its type and where it was raised.

:class:`RedactionFilter` enforces the rule on every record that reaches the handler: it drops
any field whose name has a dangerous part (``raw``, ``pid``, ``mrn``, ``name``, ``text``, ...,
and credentials such as ``token`` or ``password``; ``patient_name`` and ``job_name`` both go,
so name a job field ``job``) and lists what it dropped under ``redacted``; an event or a string
field that looks like HL7 segments is replaced. Use it with :func:`get_logger`::

    log = get_logger(__name__)
    log.info("outbox.pushed", subject="DDSC-001", control_id="MSG0001", observations=7)

``configure_logging`` is called once by the CLI (``trialbridge --log-level info ...``);
third-party loggers (urllib3, SQLAlchemy, Alembic, APScheduler, Authlib) are kept at WARNING.
python-hl7 is silenced altogether: its messages quote whole fields (its ``unescape`` logged
the field, note text and all, once per empty escape sequence), and its loggers are named
after its files (``logging.getLogger(__file__)``), so :class:`RedactionFilter` drops every
record whose logger name is a path inside the ``hl7`` package, whatever its level.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TextIO

LEVELS = ("debug", "info", "warning", "error")
DANGEROUS_PARTS = frozenset(
    {
        "raw", "pid", "mrn", "name", "names", "text", "patient", "given", "family", "birth",
        "dob", "address", "phone", "hl7", "segment", "segments", "body", "note", "notes",
        "token", "password", "secret", "authorization", "assertion", "key", "cookie",
    }
)  # fmt: skip
QUIET_LOGGERS = ("urllib3", "requests", "sqlalchemy", "alembic", "apscheduler", "authlib")
# python-hl7's loggers: ".../site-packages/hl7/util.py" (its files), or "hl7" / "hl7.*".
SILENCED_LOGGERS = re.compile(r"(?:^|[/\\])hl7[/\\]|^hl7(?:\.|$)")
HL7_CONTENT = re.compile(r"(?:^|[\r\n|^])(?:MSH|PID|PV1|OBR|OBX|NTE|NK1)\|")
HL7_REDACTED = "<redacted: HL7 content>"
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_MARK = "_trialbridge_json"


def is_dangerous(key: str) -> bool:
    """True for a field name that may carry patient data or a credential."""
    parts = re.split(r"[_\-.\s]+", key.lower())
    return any(part in DANGEROUS_PARTS for part in parts)


def scrub(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The fields that are safe to log; the names of the dropped ones under ``redacted``."""
    kept: dict[str, Any] = {}
    dropped = []
    for key, value in fields.items():
        if is_dangerous(key):
            dropped.append(key)
        elif isinstance(value, str) and HL7_CONTENT.search(value):
            kept[key] = HL7_REDACTED
        else:
            kept[key] = value
    if dropped:
        kept["redacted"] = sorted(dropped)
    return kept


class RedactionFilter(logging.Filter):
    """Removes dangerous fields (and HL7 content) from every record before it is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        if SILENCED_LOGGERS.search(record.name):
            return False
        fields = {**_extras(record), **getattr(record, "fields", {})}
        for key in _extras(record):
            delattr(record, key)
        record.fields = scrub(fields)
        message = record.getMessage()
        if HL7_CONTENT.search(message):
            record.msg, record.args = HL7_REDACTED, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, event, fields (scrubbed again)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        event: dict[str, Any] = {
            "time": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": HL7_REDACTED if HL7_CONTENT.search(message) else message,
        }
        event.update(scrub({**_extras(record), **getattr(record, "fields", {})}))
        if record.exc_info and record.exc_info[0] is not None:
            event.update(_error(record.exc_info[0], record.exc_info[2]))
        return json.dumps(event, default=str, ensure_ascii=False, separators=(",", ":"))


class EventLogger:
    """A logger of named events with keyword fields: ``log.info("inbox.stored", count=3)``."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def debug(self, event: str, **fields: Any) -> None:
        self._log(logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log(logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log(logging.WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log(logging.ERROR, event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        """An error with the current exception's type and place (never its text)."""
        self._log(logging.ERROR, event, fields, exc_info=True)

    def _log(self, level: int, event: str, fields: dict[str, Any], exc_info: bool = False) -> None:
        if self.logger.isEnabledFor(level):
            extra = {"fields": fields}
            self.logger.log(level, event, extra=extra, exc_info=exc_info, stacklevel=3)


def get_logger(name: str) -> EventLogger:
    """The event logger for a module (``get_logger(__name__)``)."""
    return EventLogger(logging.getLogger(name))


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (test runners swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(level: str | int = "info", stream: TextIO | None = None) -> None:
    """Send every log record to ``stream`` (default: stderr) as JSON lines, redacted.

    Safe to call again: the handler it installed before is replaced, others are kept."""
    numeric = level if isinstance(level, int) else _level(level)
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactionFilter())
    setattr(handler, _MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, numeric))
    silence_third_party()


def silence_third_party() -> None:
    """Turn off python-hl7's loggers that exist already (the filter drops any made later),
    so their records reach no handler at all, not even Python's last-resort one."""
    for name in list(logging.root.manager.loggerDict):
        if SILENCED_LOGGERS.search(name):
            logging.getLogger(name).disabled = True


def _level(name: str) -> int:
    if name.lower() not in LEVELS:
        raise ValueError(f"log level {name!r} must be one of {', '.join(LEVELS)}")
    return int(getattr(logging, name.upper()))


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    """Fields given the stdlib way, ``logger.info("event", extra={...})``."""
    return {
        k: v
        for k, v in record.__dict__.items()
        if k not in _STANDARD and k != "fields" and not k.startswith("_")
    }


def _timestamp(created: float) -> str:
    moment = datetime.fromtimestamp(created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _error(kind: type[BaseException], tb: TracebackType | None) -> dict[str, Any]:
    where = traceback.extract_tb(tb)[-1] if tb is not None else None
    error: dict[str, Any] = {"error": kind.__name__}
    if where is not None:
        error["error_at"] = f"{where.filename.rsplit('/', 1)[-1]}:{where.lineno}"
    return error
