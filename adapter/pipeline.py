"""The flow run once, for the commands: ``trialbridge push`` and ``reprocess --unmapped``.

The top of the flow's three layers: :mod:`adapter.translate` (pure: bytes -> Bundles) is at
the bottom, :mod:`adapter.service.stages` (inbox -> outbox -> FHIR server) above it, and
this module's shells on top. :func:`push_messages` is the one way messages are sent: the
inbox (enrolment gate, deduplication), then the service's own stages run to completion;
:func:`reprocess_unmapped` queues again the messages that a new mapping now covers.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from adapter.config import Settings
from adapter.fhir_client import FhirClient
from adapter.intake import Intake
from adapter.mappings import MappingSet
from adapter.service.config import service_config
from adapter.service.stages import Stages
from adapter.service.summary import PushSummary
from adapter.store import UNMAPPED_CODE, Incoming, Outcome, Received, Store, StoredMessage
from adapter.store.service import ServiceStore
from adapter.translate import outcome_of, translate
from adapter.trial.gate import UNATTRIBUTABLE, Gate
from adapter.trial.registry import Registry


def push_messages(
    messages: Iterable[Incoming],
    client: FhirClient,
    settings: Settings,
    mappings: MappingSet,
    store: Store,
    *,
    registry: Registry | None = None,
    batch_size: int = 200,
) -> PushSummary:
    """Record each enrolled subject's message in the store's inbox, then process the inbox
    and push the outbox to completion: the service's own stages, run once.

    With a ``registry`` (the service always has one), the enrolment gate runs first: a
    message of anyone not enrolled is dropped at once and leaves nothing in the store.
    Messages already in the inbox and finished with are counted as duplicates. Processing
    writes each message's transaction to the outbox together with its status and held
    results; pushing sends every pending transaction once, per subject in the order the
    messages were received. A transaction the server could not take stays in the outbox
    (``failed`` counts it), so the next push (or the service) sends it.
    """
    summary = PushSummary()
    intake = Intake(store, registry) if registry else None
    sources: dict[int, str] = {}  # inbox row id -> file, for the summary's errors
    seen_before: set[int] = set()  # by an earlier push: their transactions may still wait
    for batch in _batches(messages, batch_size):
        for entry in _into_inbox(batch, store, intake, summary):
            first = entry.row_id not in sources
            sources.setdefault(entry.row_id, entry.message.source)
            if entry.duplicate:
                summary.messages += 1
                if first:
                    seen_before.add(entry.row_id)
                else:  # the same message twice in this push
                    summary.duplicates += 1
    stages = Stages(ServiceStore(store), client, settings, mappings, registry, service_config({}))
    stages.sources = sources
    stages.run_to_completion(summary, batch_size)
    # A message seen before whose transaction waited in the outbox was pushed now: not a
    # duplicate. Messages of earlier pushes that went too are counted apart.
    summary.duplicates += len(seen_before - summary.sent_messages)
    summary.earlier = len(summary.sent_messages - sources.keys())
    summary.pushed -= summary.earlier
    return summary


def _into_inbox(
    batch: list[Incoming], store: Store, intake: Intake | None, summary: PushSummary
) -> list[Received]:
    """Commit the messages that may be kept; everyone else's are counted and forgotten."""
    if intake is None:
        return store.receive(batch)
    kept = []
    for accepted in intake.accept(batch):
        if accepted.received is not None:
            kept.append(accepted.received)
        else:
            summary.messages += 1
            summary.dropped += accepted.verdict != UNATTRIBUTABLE
            if accepted.verdict == UNATTRIBUTABLE:
                summary.unattributable += 1
                summary.errors.append(
                    f"{accepted.message.source}: refused: not an HL7 message with a readable "
                    "PID-3 (patient identifier), so nobody to tie it to; nothing was kept"
                )
    return kept


def _batches(items: Iterable[Incoming], size: int) -> Iterator[list[Incoming]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


@dataclass
class ReprocessSummary:
    """What ``reprocess --unmapped`` did."""

    messages: int = 0  # messages with unmapped results, looked at again
    pushed: int = 0  # ... of which now had a result to push, and were pushed
    unchanged: int = 0  # ... of which nothing newly mapped (reasons refreshed, no push)
    failed: int = 0  # refused or not pushed (FHIR server error); still held
    unavailable: int = 0  # raw message purged: cannot be reprocessed
    resolved: int = 0  # held results now mapped and pushed
    still_held: int = 0  # held results of the messages looked at that are still held
    errors: list[str] = field(default_factory=list)


def reprocess_unmapped(
    store: Store,
    client: FhirClient,
    settings: Settings,
    mappings: MappingSet,
    progress: Callable[[list[int]], Iterable[int]] = iter,
    *,
    registry: Registry | None = None,
) -> ReprocessSummary:
    """Queue again each message with a held result the mappings now cover, then run the
    service's stages to completion: the same path as every message (outbox, per-subject
    order), so it is safe while the service runs. Writes are conditional, so the results
    pushed before are unchanged; the held results now mapped are resolved when processed.
    Messages with nothing newly mapped are not queued; their reasons are brought up to date.
    """
    summary = ReprocessSummary()
    gate = Gate(registry.study, registry.index()) if registry else None
    queue: list[int] = []
    for row_id in progress(store.messages_with_open_held(UNMAPPED_CODE)):
        summary.messages += 1
        stored = store.stored_message(row_id)
        if stored.raw is None:
            summary.unavailable += 1
            continue
        try:
            newly, outcomes = _newly_mapped(stored, settings, mappings, gate, summary)
        except Exception:  # processing it sets it aside, with the reason, as any message
            queue.append(row_id)
            continue
        if newly:
            queue.append(row_id)
        else:
            store.record(outcomes)  # nothing to push; the held reasons brought up to date
    ServiceStore(store).requeue(queue)
    pushed = PushSummary()
    stages = Stages(ServiceStore(store), client, settings, mappings, registry, service_config({}))
    stages.run_to_completion(pushed, 200)
    summary.failed = pushed.failed + pushed.refused
    summary.pushed = len(queue) - summary.failed
    summary.errors.extend(pushed.errors)
    return summary


def _newly_mapped(
    stored: StoredMessage,
    settings: Settings,
    mappings: MappingSet,
    gate: Gate | None,
    summary: ReprocessSummary,
) -> tuple[bool, list[Outcome]]:
    """Whether the message now maps a result that was held (counting what stays held), and
    its outcomes as translated now."""
    source = f"message {stored.control_id or stored.row_id}"
    items = list(
        translate(stored.raw or b"", source, settings, mappings, gate=gate,
                  received_at=stored.received_at)
    )  # fmt: skip
    still = {h.result.location for item in items for h in item.held}
    summary.still_held += len(still)
    resolved = len(stored.open_locations - still)
    summary.resolved += resolved
    summary.unchanged += resolved == 0
    return resolved > 0, [outcome_of(stored.row_id, item, None) for item in items]
