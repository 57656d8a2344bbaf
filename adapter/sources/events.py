"""The seam through which sources report what they do: counts and message control ids only,
never a patient identifier, a file name, message text or an exception's text.

Sources call :meth:`Events.emit`; the default writes one structured log event through
:mod:`adapter.logs` (JSON, redacted). The service subclasses :class:`Events` to feed its
Prometheus metrics (``adapter/service/wiring.py``). The contract it counts on: every batch
handed to the inbox door emits exactly one ``<source>.accepted`` event with ``messages``
(handed in) and ``kept`` (kept after the enrolment filter); no other event has those fields.
"""

from __future__ import annotations

import logging

from adapter.logs import get_logger

Field = str | int | float

_LOG = get_logger("adapter.sources")


class Events:
    """Receives each source event. Subclass and override :meth:`emit` to count them."""

    def emit(self, name: str, /, *, level: int = logging.INFO, **fields: Field) -> None:
        if level >= logging.ERROR:
            _LOG.error(name, **fields)
        elif level >= logging.WARNING:
            _LOG.warning(name, **fields)
        elif level >= logging.INFO:
            _LOG.info(name, **fields)
        else:
            _LOG.debug(name, **fields)


class Recorder(Events):
    """Keeps every event in memory (for tests and the CLI's summaries)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Field]]] = []

    def emit(self, name: str, /, *, level: int = logging.INFO, **fields: Field) -> None:
        self.events.append((name, dict(fields)))

    def named(self, name: str) -> list[dict[str, Field]]:
        return [fields for event, fields in self.events if event == name]
