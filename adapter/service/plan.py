"""The pure core of the service's jobs: what goes into the outbox, which rows to push next,
when to try again, and what a FHIR error means. No I/O here.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from adapter.store.service import Candidate

_PART_NAMESPACE = uuid.UUID("6a1f4f0e-0b7d-4d0e-9a53-3c1b8f5e7a20")
# 4xx answers that say nothing about the transaction itself (auth, wrong URL, throttling):
# tried again later rather than dead-lettered.
_RETRYABLE_4XX = frozenset({401, 403, 404, 405, 407, 408, 425, 429})


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter, bounded, honouring Retry-After."""

    base_seconds: float = 1.0
    max_seconds: float = 300.0

    def delay(
        self, attempts: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait after the ``attempts``-th failure (1 for the first)."""
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** max(attempts - 1, 0))
        jittered = (rng or random.Random()).uniform(ceiling / 2, ceiling)  # noqa: S311
        return max(jittered, min(retry_after or 0.0, self.max_seconds))


def retryable(status: int | None) -> bool:
    """Whether a failed push is tried again (connection error, 5xx, 429, ...) or is a dead
    letter (the server refused the transaction itself: 400, 409, 412, 422, ...)."""
    return status is None or status >= 500 or status in _RETRYABLE_4XX


def split_bundle(bundle: dict[str, Any], max_entries: int) -> list[dict[str, Any]]:
    """A transaction cut into transactions of at most ``max_entries`` entries (shared
    entries such as the Patient and ResearchStudy repeated in each, being conditional).

    Each part's Provenance targets that part's Observations and has an id of its own, so
    the parts together say what the whole did.
    """
    entries = bundle["entry"]
    if len(entries) <= max_entries:
        return [bundle]
    observations = [e for e in entries if e["resource"]["resourceType"] == "Observation"]
    provenance = [e for e in entries if e["resource"]["resourceType"] == "Provenance"]
    shared = [e for e in entries if e not in observations and e not in provenance]
    room = max(max_entries - len(shared) - len(provenance), 1)
    chunks = [observations[i : i + room] for i in range(0, len(observations), room)]
    return [
        {
            **bundle,
            "entry": [*shared, *chunk, *(_part_of(p, [*shared, *chunk], n) for p in provenance)],
        }
        for n, chunk in enumerate(chunks)
    ]


def _part_of(entry: dict[str, Any], chunk: list[dict[str, Any]], n: int) -> dict[str, Any]:
    resource = entry["resource"]
    kept = {e["fullUrl"] for e in chunk}
    targets = [t for t in resource["target"] if t["reference"] in kept]
    resource_id = str(uuid.uuid5(_PART_NAMESPACE, f"{resource['id']}#{n}"))
    return {
        "fullUrl": f"urn:uuid:{resource_id}",
        "resource": {**resource, "id": resource_id, "target": targets},
        "request": {"method": "PUT", "url": f"Provenance/{resource_id}"},
    }


def pick_due(
    pending: Sequence[Candidate],
    now: datetime,
    limit: int,
    *,
    barrier: int | None,
    ignore_schedule: bool = False,
) -> list[int]:
    """The outbox rows to push next, at most ``limit``, each subject's from its head.

    ``pending`` is every pending row in (subject, sequence) order. A subject's rows are
    taken from its head while they are due and not claimed by a live worker; a row that is
    waiting (backoff) or claimed holds back the rest of its subject. Rows of messages after
    ``barrier`` (the oldest message still to process) wait, so that an earlier message of
    the same subject is never overtaken.
    """
    picked: list[int] = []
    by_subject: dict[str, list[Candidate]] = {}
    for row in pending:
        by_subject.setdefault(row.subject_id, []).append(row)
    for rows in by_subject.values():
        if len(picked) >= limit:
            break
        picked.extend(_head(rows, now, barrier, ignore_schedule)[: limit - len(picked)])
    return picked


def _head(
    rows: list[Candidate], now: datetime, barrier: int | None, ignore_schedule: bool
) -> list[int]:
    taken: list[int] = []
    for row in rows:
        claimed = row.claimed_until is not None and row.claimed_until > now
        waiting = row.next_attempt_at > now and not ignore_schedule
        behind = barrier is not None and row.sequence >= barrier
        if claimed or waiting or behind:
            break
        taken.append(row.row_id)
    return taken


def next_attempt(now: datetime, seconds: float) -> datetime:
    return now + timedelta(seconds=seconds)
