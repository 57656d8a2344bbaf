"""Stage "inbox": the one door every source (file drop, MLLP, LIS query) comes through.

:meth:`Intake.accept` runs the enrolment gate on each message, forgets everyone else's at
once (counts only), and commits the rest to the state store's inbox in one transaction,
deduplicated by sender + MSH-10 + content hash. It returns only after the commit, so an MLLP
listener may ACK when it returns: an ACK never precedes durability.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from adapter.store import Incoming, Received, Store
from adapter.trial.gate import UNATTRIBUTABLE, Gate
from adapter.trial.registry import Registry

Clock = Callable[[], datetime]
_FORGOTTEN = ("not-enrolled", "withdrawn", UNATTRIBUTABLE)


@dataclass(frozen=True, slots=True)
class Accepted:
    """What happened to one message at the door."""

    message: Incoming
    verdict: str  # enrolled | ambiguous | not-enrolled | withdrawn | unattributable
    received: Received | None  # the inbox row, when it was kept

    @property
    def kept(self) -> bool:
        return self.received is not None

    @property
    def duplicate(self) -> bool:
        return self.received is not None and self.received.duplicate


@dataclass
class IntakeCounts:
    """Counts only: nothing of a forgotten message is kept, not even here."""

    kept: int = 0
    duplicates: int = 0
    forgotten: dict[str, int] = field(default_factory=dict)


def forgotten(verdict: str) -> bool:
    """Whether the gate's verdict means the message is dropped at the door."""
    return verdict in _FORGOTTEN


class Intake:
    """The enrolment gate plus the inbox. The registry is read again for every batch, so an
    enrolment or withdrawal takes effect without a restart."""

    def __init__(self, store: Store, registry: Registry, clock: Clock | None = None) -> None:
        self.store = store
        self.registry = registry
        self.clock = clock or (lambda: datetime.now(UTC))
        self.counts = IntakeCounts()

    def accept(self, batch: Sequence[Incoming]) -> list[Accepted]:
        """Decide, keep (committed when this returns) or forget each message, in order."""
        return self.commit(batch, self.triage([message.raw for message in batch]))

    def triage(self, raws: Sequence[bytes]) -> list[str]:
        """The enrolment gate's verdict for each raw message, against the registry as of now.
        Cheap (no write, and a registry read only after a commit), so the MLLP listener runs
        it on its event loop and hands only the messages to keep to its committer."""
        gate = Gate(self.registry.study, self.registry.index())
        now = self.clock()
        return [gate.admit(raw, now).verdict for raw in raws]

    def commit(self, batch: Sequence[Incoming], verdicts: Sequence[str]) -> list[Accepted]:
        """Keep the messages ``verdicts`` let in (one transaction, committed when this
        returns; none when all are forgotten) and count the rest."""
        keep = [m for m, v in zip(batch, verdicts, strict=True) if not forgotten(v)]
        received = iter(self.store.receive(keep) if keep else ())
        accepted = []
        for message, verdict in zip(batch, verdicts, strict=True):
            row = None if forgotten(verdict) else next(received)
            accepted.append(Accepted(message, verdict, row))
            self._count(verdict, row)
        return accepted

    def forget(self, verdicts: Sequence[str]) -> None:
        """Count messages the gate dropped (their verdicts): nothing of them is kept."""
        for verdict in verdicts:
            self._count(verdict, None)

    def _count(self, verdict: str, row: Received | None) -> None:
        if row is None:
            self.counts.forgotten[verdict] = self.counts.forgotten.get(verdict, 0) + 1
        elif row.duplicate:
            self.counts.duplicates += 1
        else:
            self.counts.kept += 1
