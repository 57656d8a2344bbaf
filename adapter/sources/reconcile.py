"""The LIS reconciliation pull's pure core: when a run is due, the window each subject's query
covers, and the record ``trialbridge status`` shows.

Why a second pull: the incremental pull asks each subject's results reported since its
watermark (less ``overlap_minutes``). A result the LIS releases later than that with an
earlier report time (verified now, released tomorrow; back-dated; corrected in place) is
never asked for again. The reconciliation asks each subject's whole study window (or the
last ``reconcile_lookback_days``) up to where the incremental pull will never look again,
``watermark - overlap``; the inbox's deduplication makes the results already there cost one
lookup each, and what is new is, by construction, what the incremental pulls missed.

Runs fall on a grid: every ``reconcile_every_hours`` from ``reconcile_at`` (a time of day in
the study's time zone), so a nightly run stays at its hour through restarts and failovers
(the last run's start is kept in the store, not in a timer). A run that fails part-way
(the LIS killed mid-pull) is run again at the next check; what it already found stays
counted (``pending_missed``), since the second run sees those results as duplicates.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, time, timedelta, tzinfo

# The grid's origin: any fixed day works; slots are origin + k * every.
_ORIGIN_DAY = datetime(2000, 1, 1).date()


@dataclass(frozen=True, slots=True)
class Cadence:
    """When reconciliation runs are due: every ``every`` from ``anchor`` (time of day, ``tz``)."""

    every: timedelta
    anchor: time
    tz: tzinfo

    def slot(self, now: datetime) -> datetime:
        """The start of the slot ``now`` falls in (the latest grid point at or before it)."""
        origin = datetime.combine(_ORIGIN_DAY, self.anchor, tzinfo=self.tz).astimezone(UTC)
        steps = math.floor((now.astimezone(UTC) - origin) / self.every)
        return origin + steps * self.every

    def due(self, last_started: datetime | None, now: datetime) -> bool:
        """Whether a run is due: none has completed since the current slot began."""
        return last_started is None or last_started < self.slot(now)


def window(
    first: datetime, watermark: datetime, overlap: timedelta, lookback: timedelta | None
) -> tuple[datetime, datetime] | None:
    """``[since, until)`` of one subject's reconciliation query, None when empty.

    ``first`` is the start of the subject's study window, ``watermark`` where its incremental
    pull has read up to; the next incremental pull asks again from ``watermark - overlap``,
    so the reconciliation stops there (what it finds is what no incremental pull will ask).
    """
    until = watermark - overlap
    since = first if lookback is None else max(first, watermark - lookback)
    return (since, until) if since < until else None


@dataclass(frozen=True, slots=True)
class Record:
    """What the reconciliation of one query source did: its last complete run, and totals.

    Kept as JSON in the store's source state (``reconciliation`` / the query source's name),
    where ``trialbridge status`` reads it.
    """

    at: str | None = None  # when the last complete run ended (ISO 8601)
    started: str | None = None  # when it started: the grid slot it covered
    subjects: int = 0  # subjects asked in that run
    checked: int = 0  # results the LIS returned in that run
    missed: int = 0  # of them, new to the inbox: the incremental pulls had missed them
    refused: int = 0  # subjects whose query the LIS refused in that run
    missed_total: int = 0  # missed, over every run (pending included)
    pending_missed: int = 0  # found by a run that has not completed yet

    @classmethod
    def from_json(cls, text: str | None) -> Record:
        if not text:
            return cls()
        data = json.loads(text)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @property
    def last_started(self) -> datetime | None:
        return datetime.fromisoformat(self.started) if self.started else None

    def found(self, missed: int) -> Record:
        """``missed`` more results found by the run under way (counted at once, so a run
        that dies afterwards does not lose them)."""
        return replace(
            self,
            pending_missed=self.pending_missed + missed,
            missed_total=self.missed_total + missed,
        )

    def completed(
        self, started: datetime, ended: datetime, subjects: int, checked: int, refused: int
    ) -> Record:
        return replace(
            self,
            at=ended.isoformat(timespec="seconds"),
            started=started.isoformat(),
            subjects=subjects,
            checked=checked,
            missed=self.pending_missed,
            refused=refused,
            pending_missed=0,
        )
