"""The flow for a batch of files, as used by ``map`` and ``push``: parse -> map -> build,
then (for ``push``) one transaction per message.

The pure part, :func:`translate`, turns bytes into transactions; :func:`push_translations`
is the thin I/O shell that sends them. :func:`push_messages` does the same through the
state store's inbox (duplicates recognised, held results queued), and
:func:`reprocess_unmapped` runs the messages with unmapped results again once a mapping
has been added.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from adapter.build import build_transaction, result_identifier
from adapter.config import Settings
from adapter.errors import FhirError, MessageError
from adapter.fhir_client import FhirClient
from adapter.lifecycle import identifier_value, reconcile, stored_observations
from adapter.mapping import HeldResult, MappedReport, map_report
from adapter.mappings import MappingSet
from adapter.parse import parse_bytes
from adapter.store import (
    PROCESSED,
    RECEIVED,
    REFUSED,
    UNMAPPED_CODE,
    Incoming,
    Outcome,
    Store,
    StoredMessage,
    held_row,
)


@dataclass(frozen=True, slots=True)
class Translation:
    """One message: where it came from and its Bundle, or the error that refused it."""

    source: str  # file name (and position, for files with several messages)
    message_id: str | None
    mapped: MappedReport | None
    bundle: dict[str, Any] | None
    error: MessageError | None

    @property
    def held(self) -> tuple[HeldResult, ...]:
        return self.mapped.held if self.mapped else ()


def translate(
    data: bytes, source: str, settings: Settings, mappings: MappingSet
) -> Iterator[Translation]:
    """Every message in ``data`` as a transaction Bundle, or refused with the reason."""
    try:
        parsed = parse_bytes(data, forced_charset=settings.forced_charset)
    except MessageError as exc:  # the file as a whole is not HL7v2
        yield Translation(source, None, None, None, exc)
        return
    for message in parsed:
        where = source if len(parsed) == 1 else f"{source}#{message.position}"
        if message.report is None:
            yield Translation(where, None, None, None, message.error)
            continue
        report = message.report
        try:
            mapped = map_report(report, mappings, default_offset=settings.timezone)
            bundle = build_transaction(mapped, settings.identifiers)
        except MessageError as exc:
            yield Translation(
                where, report.message_id, None, None, exc.with_message_id(report.message_id)
            )
            continue
        yield Translation(where, report.message_id, mapped, bundle, None)


@dataclass
class PushSummary:
    """What a push did: counts a person (or a script, with --json) can check."""

    messages: int = 0
    pushed: int = 0
    refused: int = 0
    failed: int = 0
    observations: int = 0
    held: int = 0
    skipped: int = 0  # results whose stored version is newer (e.g. P after F)
    duplicates: int = 0  # messages already in the inbox and finished with: not pushed again
    by_analyte: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def push_translations(translations: Iterable[Translation], client: FhirClient) -> PushSummary:
    """Send each message's transaction; a refused or failed message never stops the rest."""
    summary = PushSummary()
    for item in translations:
        _push_one(item, client, summary)
    return summary


def push_messages(
    messages: Iterable[Incoming],
    client: FhirClient,
    settings: Settings,
    mappings: MappingSet,
    store: Store,
    *,
    batch_size: int = 200,
) -> PushSummary:
    """Record each message in the store's inbox, then push the ones not seen before.

    Per batch: one transaction puts the messages into the inbox (duplicates recognised and
    counted, not pushed again), each new message is translated and pushed, and one
    transaction records every message's status and held results. A message whose push
    failed stays ``received``, so the next push of it (or the service) tries it again.
    """
    summary = PushSummary()
    for batch in _batches(messages, batch_size):
        outcomes: list[Outcome] = []
        for entry in store.receive(batch):
            if entry.duplicate:
                summary.messages += 1
                summary.duplicates += 1
                continue
            for item in translate(entry.message.raw, entry.message.source, settings, mappings):
                error = _push_one(item, client, summary)
                outcomes.append(_outcome(entry.row_id, item, error))
        store.record(outcomes)
    return summary


def _batches(items: Iterable[Incoming], size: int) -> Iterator[list[Incoming]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _push_one(item: Translation, client: FhirClient, summary: PushSummary) -> str | None:
    """Push one message's transaction and count it; the error text if it was not pushed."""
    summary.messages += 1
    summary.held += len(item.held)
    if item.bundle is None or item.mapped is None:
        summary.refused += 1
        summary.errors.append(f"{item.source}: {item.error}")
        return str(item.error)
    try:
        bundle, skipped = reconcile(item.bundle, stored_observations(client, item.bundle))
        client.transaction(bundle)
    except FhirError as exc:
        summary.failed += 1
        summary.errors.append(f"{item.source} (message {item.message_id}): {exc}")
        return str(exc)
    summary.pushed += 1
    summary.skipped += len(skipped)
    _count_written(summary, item.mapped, bundle)
    return None


def _outcome(row_id: int, item: Translation, error: str | None) -> Outcome:
    status = REFUSED if item.bundle is None else RECEIVED if error else PROCESSED
    return Outcome(row_id, status, error, tuple(held_row(h) for h in item.held))


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
) -> ReprocessSummary:
    """Run each message with unmapped results through translate and push again.

    Only messages with a result that the mappings now cover are pushed (writes are
    conditional, so the results pushed before are unchanged); the held results they now
    map are marked resolved, and the reasons of the results still held are brought up to
    date.
    """
    summary = ReprocessSummary()
    for row_id in progress(store.messages_with_open_held(UNMAPPED_CODE)):
        stored = store.stored_message(row_id)
        summary.messages += 1
        if stored.raw is None:
            summary.unavailable += 1
            continue
        source = f"message {stored.control_id or row_id}"
        for item in translate(stored.raw, source, settings, mappings):
            summary.resolved += store.record([_reprocessed(stored, item, client, summary)])
            summary.still_held += len(item.held)
    return summary


def _reprocessed(
    stored: StoredMessage, item: Translation, client: FhirClient, summary: ReprocessSummary
) -> Outcome:
    still = {h.result.location for h in item.held}
    if item.bundle is not None and stored.status == PROCESSED and stored.open_locations <= still:
        summary.unchanged += 1  # pushed before, and nothing newly mapped: no need to push
        return _outcome(stored.row_id, item, None)
    pushed = PushSummary()
    error = _push_one(item, client, pushed)
    if error:
        summary.failed += 1
        summary.errors.extend(pushed.errors)
    else:
        summary.pushed += 1
    return _outcome(stored.row_id, item, error)


def _count_written(summary: PushSummary, mapped: MappedReport, bundle: dict[str, Any]) -> None:
    analyte_of = {result_identifier(r, mapped.report): r.analyte.key for r in mapped.results}
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Observation":
            key = analyte_of[identifier_value(entry["resource"])]
            summary.observations += 1
            summary.by_analyte[key] = summary.by_analyte.get(key, 0) + 1
