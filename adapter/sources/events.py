"""The seam through which sources report what they do: counts and message control ids only,
never a patient identifier, a file name or message text.

Sources call :meth:`Events.emit`; the default writes one log record per event on the
``trialbridge.sources`` logger (the event name and its fields in ``extra``). The service
passes its own subclass to feed metrics as well.
"""

from __future__ import annotations

import logging

Field = str | int | float

_LOG = logging.getLogger("trialbridge.sources")


class Events:
    """Receives each source event. Subclass and override :meth:`emit` to count them."""

    def emit(self, name: str, /, *, level: int = logging.INFO, **fields: Field) -> None:
        if _LOG.isEnabledFor(level):
            shown = " ".join(f"{key}={value}" for key, value in fields.items())
            _LOG.log(level, "%s %s", name, shown, extra={"event": name, "fields": fields})


class Recorder(Events):
    """Keeps every event in memory (for tests and the CLI's summaries)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Field]]] = []

    def emit(self, name: str, /, *, level: int = logging.INFO, **fields: Field) -> None:
        self.events.append((name, dict(fields)))

    def named(self, name: str) -> list[dict[str, Field]]:
        return [fields for event, fields in self.events if event == name]
