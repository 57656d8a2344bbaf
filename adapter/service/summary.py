"""What a run of the service's stages did, counted: :class:`PushSummary`.

The stages (:mod:`adapter.service.stages`) count into it, and ``trialbridge push``, the
scheduler's jobs and the benchmarks read it; it lives apart so that all of them can import
it without importing the stages.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PushSummary:
    """What a push did: counts a person (or a script, with --json) can check."""

    messages: int = 0
    pushed: int = 0  # messages whose results went (each once, however many transactions)
    earlier: int = 0  # messages an earlier push left in the outbox, sent now (trialbridge push)
    refused: int = 0
    quarantined: int = 0  # ... of the refused and failed: set aside (trialbridge quarantine)
    failed: int = 0
    observations: int = 0
    held: int = 0
    skipped: int = 0  # results whose stored version is newer (e.g. P after F)
    duplicates: int = 0  # messages already in the inbox and finished with: not pushed again
    dropped: int = 0  # messages of patients who are not enrolled (or withdrew): not kept
    unattributable: int = 0  # not HL7 or no readable PID-3: nobody to tie them to, not kept
    dropped_results: int = 0  # results of enrolled subjects dated before the baseline window
    vital: int = 0  # vital-status changes recorded from ADT messages
    subjects: set[str] = field(default_factory=set)  # subjects whose results were written
    sent_messages: set[int] = field(default_factory=set)  # their inbox row ids
    by_analyte: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def add(self, other: PushSummary) -> None:
        """Add another summary's counts to this one (two stages counting side by side)."""
        for name, value in vars(other).items():
            mine = getattr(self, name)
            if isinstance(value, int):
                setattr(self, name, mine + value)
            elif isinstance(value, set):
                mine.update(value)
            elif isinstance(value, dict):
                for key, count in value.items():
                    mine[key] = mine.get(key, 0) + count
            else:
                mine.extend(value)
