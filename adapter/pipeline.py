"""The flow for a batch of messages, as used by ``map``, ``explain`` and ``push``.

The pure part, :func:`translate` (and :func:`dry_run` for the dry runs), turns bytes into
transaction Bundles through parse -> enrolment filter -> map -> build. :func:`push_messages`
is the one way messages are sent: the inbox (enrolment gate, deduplication), then the
service's own stages (inbox -> outbox -> FHIR server) run to completion;
:func:`reprocess_unmapped` queues again the messages that a new mapping now covers.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timezone
from typing import Any

from adapter.build import TrialLink, build_transaction
from adapter.build.provenance import MessageSource, sha256_of
from adapter.config import Settings
from adapter.errors import MessageError
from adapter.fhir_client import FhirClient
from adapter.intake import Intake
from adapter.mapping import HeldResult, MappedReport, map_report
from adapter.mapping.times import to_fhir_datetime
from adapter.mappings import MappingSet
from adapter.parse import ParsedMessage, Report, VitalEvent, parse_bytes
from adapter.store import (
    PROCESSED,
    RECEIVED,
    REFUSED,
    UNMAPPED_CODE,
    Incoming,
    Outcome,
    Received,
    Store,
    StoredMessage,
    held_row,
)
from adapter.trial.enrolment import Decision, EnrolledSubject, before_baseline
from adapter.trial.gate import UNATTRIBUTABLE, Gate, patient_ids_in
from adapter.trial.registry import Registry
from adapter.trial.visits import local_date


@dataclass(frozen=True, slots=True)
class Translation:
    """One message: where it came from and its Bundle, or the error that refused it.

    With an enrolment gate, ``verdict`` says what it decided; a message of anyone not
    enrolled carries nothing but that verdict (no message id, no report).
    """

    source: str  # file name (and position, for files with several messages)
    message_id: str | None
    mapped: MappedReport | None
    bundle: dict[str, Any] | None
    error: MessageError | None
    verdict: str = ""  # enrolled | not-enrolled | withdrawn | ambiguous | unattributable
    subject: EnrolledSubject | None = None
    vital: VitalEvent | None = None  # an ADT message's vital status (enrolled subjects only)
    dropped_results: int = 0  # results dated before the baseline window

    @property
    def held(self) -> tuple[HeldResult, ...]:
        return self.mapped.held if self.mapped else ()

    @property
    def dropped(self) -> bool:
        """Not forwarded, by the enrolment filter's decision (not an error)."""
        return self.verdict in (NOT_ENROLLED, WITHDRAWN, UNATTRIBUTABLE)


NOT_ENROLLED, WITHDRAWN, AMBIGUOUS = "not-enrolled", "withdrawn", "ambiguous"


def translate(
    data: bytes,
    source: str,
    settings: Settings,
    mappings: MappingSet,
    *,
    gate: Gate | None = None,
    received_at: datetime | None = None,
) -> Iterator[Translation]:
    """Every message in ``data`` as a transaction Bundle, refused with the reason, or (with
    an enrolment ``gate``) dropped because it is not an enrolled subject's."""
    try:
        parsed = parse_bytes(data, forced_charset=settings.forced_charset)
    except MessageError as exc:  # the file as a whole is not HL7v2
        yield _unparsed(source, exc, gate)
        return
    context = _Context(settings, mappings, gate, received_at or datetime.now(UTC))
    for message in parsed:
        where = source if len(parsed) == 1 else f"{source}#{message.position}"
        yield _translate_one(message, where, context)


def dry_run(
    data: bytes, source: str, settings: Settings, mappings: MappingSet, gate: Gate | None
) -> Iterator[Translation]:
    """Like :func:`translate`, for ``map`` and ``explain``: every message is translated
    (interface engineers test with real feeds), and ``verdict`` says what the enrolment
    filter would do with it. Nothing is kept or sent."""
    gated = list(translate(data, source, settings, mappings, gate=gate))
    if gate is None or not any(item.dropped or item.verdict == AMBIGUOUS for item in gated):
        yield from gated
        return
    plain = list(translate(data, source, settings, mappings))
    for filtered, unfiltered in zip(gated, plain, strict=True):
        passes = not (filtered.dropped or filtered.verdict == AMBIGUOUS)
        yield filtered if passes else replace(unfiltered, verdict=filtered.verdict)


def filter_verdict(item: Translation) -> str:
    """What the enrolment filter would do with a message, in words."""
    if item.verdict == "enrolled" and item.subject is not None:
        return f"would pass, as {item.subject.subject_id}"
    if item.verdict:
        return f"would not pass ({item.verdict})"
    return "not checked (no registry)"


@dataclass(frozen=True, slots=True)
class _Context:
    settings: Settings
    mappings: MappingSet
    gate: Gate | None
    received_at: datetime


def _unparsed(source: str, error: MessageError, gate: Gate | None) -> Translation:
    if gate is not None:  # nothing says whose it is: it cannot be kept
        return Translation(source, None, None, None, None, verdict=UNATTRIBUTABLE)
    return Translation(source, None, None, None, error)


def _translate_one(message: ParsedMessage, where: str, context: _Context) -> Translation:
    patient_ids = (
        message.report.patient_ids
        if message.report
        else message.vital.patient_ids
        if message.vital
        else patient_ids_in(message.raw)
    )
    decision = context.gate.decide(patient_ids, context.received_at) if context.gate else None
    if decision is not None and not decision.passes:
        return _not_passed(where, message, decision)
    subject = decision.subject if decision else None
    if message.vital is not None:
        return Translation(
            where,
            message.vital.message_id,
            None,
            None,
            None,
            verdict=decision.verdict if decision else "",
            subject=subject,
            vital=message.vital,
        )
    if message.report is None:
        return Translation(
            where,
            None,
            None,
            None,
            message.error,
            verdict=decision.verdict if decision else "",
            subject=subject,
        )
    return _translate_report(message, message.report, where, context, subject)


def _not_passed(where: str, message: ParsedMessage, decision: Decision) -> Translation:
    if decision.verdict == AMBIGUOUS:  # enrolled people involved: held for review
        report_id = message.report.message_id if message.report else None
        error = MessageError(
            f"held for review: {decision.reason}", message_id=report_id, location="PID.3"
        )
        return Translation(where, report_id, None, None, error, verdict=AMBIGUOUS)
    return Translation(where, None, None, None, None, verdict=decision.verdict)


def _translate_report(
    message: ParsedMessage,
    report: Report,
    where: str,
    context: _Context,
    subject: EnrolledSubject | None,
) -> Translation:
    settings, gate = context.settings, context.gate
    verdict = "enrolled" if subject else ""
    try:
        mapped = map_report(report, context.mappings, default_offset=settings.timezone)
        dropped = 0
        trial = None
        if subject is not None and gate is not None:
            mapped, dropped = _without_pre_baseline(mapped, subject, gate)
            trial = TrialLink(gate.study, subject.record, subject.day0)
        source = _message_source(message.raw, report, context)
        bundle = build_transaction(mapped, settings.identifiers, trial=trial, source=source)
    except MessageError as exc:
        error = exc.with_message_id(report.message_id)
        return Translation(
            where, report.message_id, None, None, error, verdict=verdict, subject=subject
        )
    return Translation(
        where,
        report.message_id,
        mapped,
        bundle,
        None,
        verdict=verdict,
        subject=subject,
        dropped_results=dropped,
    )


def _without_pre_baseline(
    mapped: MappedReport, subject: EnrolledSubject, gate: Gate
) -> tuple[MappedReport, int]:
    kept = tuple(r for r in mapped.results if not before_baseline(r.effective, subject, gate.study))
    return MappedReport(mapped.report, kept, mapped.held), len(mapped.results) - len(kept)


def _message_source(raw: bytes, report: Report, context: _Context) -> MessageSource:
    return MessageSource(
        sender=report.sender(),
        control_id=report.message_id,
        sha256=sha256_of(raw),
        received_at=context.received_at.isoformat(timespec="seconds"),
        mappings_version=context.mappings.provenance_version,
    )


@dataclass
class PushSummary:
    """What a push did: counts a person (or a script, with --json) can check."""

    messages: int = 0
    pushed: int = 0
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
    from adapter.service.config import service_config  # the service builds on this module
    from adapter.service.stages import Stages
    from adapter.store.service import ServiceStore

    summary = PushSummary()
    intake = Intake(store, registry) if registry else None
    for batch in _batches(messages, batch_size):
        for entry in _into_inbox(batch, store, intake, summary):
            if entry.duplicate:
                summary.messages += 1
                summary.duplicates += 1
    stages = Stages(ServiceStore(store), client, settings, mappings, registry, service_config({}))
    stages.run_to_completion(summary, batch_size)
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


def death_date(vital: VitalEvent, tz: timezone) -> date:
    """The day of death an ADT message gives, in the study's time zone."""
    when = vital.death_time or vital.event_time
    fhir = to_fhir_datetime(when, "+00:00") if when else None
    return local_date(fhir, tz) if fhir else datetime.now(tz).date()


def _batches(items: Iterable[Incoming], size: int) -> Iterator[list[Incoming]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def outcome_of(row_id: int, item: Translation, error: str | None) -> Outcome:
    """The inbox status a translated message gets, with its held results."""
    nothing_to_send = item.vital is not None or item.dropped
    if error:
        status = REFUSED if item.bundle is None and not nothing_to_send else RECEIVED
    else:
        status = PROCESSED if item.bundle is not None or nothing_to_send else REFUSED
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
    *,
    registry: Registry | None = None,
) -> ReprocessSummary:
    """Queue again each message with a held result the mappings now cover, then run the
    service's stages to completion: the same path as every message (outbox, per-subject
    order), so it is safe while the service runs. Writes are conditional, so the results
    pushed before are unchanged; the held results now mapped are resolved when processed.
    Messages with nothing newly mapped are not queued; their reasons are brought up to date.
    """
    from adapter.service.config import service_config  # the service builds on this module
    from adapter.service.stages import Stages
    from adapter.store.service import ServiceStore

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
