"""Translate: the pure stage that turns bytes into :class:`Translation` s.

:func:`translate` takes a file's (or a stored message's) bytes through parse -> enrolment
gate -> map -> build and yields, per message, its transaction Bundle, the error that refused
it, or the gate's verdict that dropped it; :func:`dry_run` does the same for ``map`` and
``explain``, which show what the gate would do without acting on it. :func:`outcome_of` and
:func:`death_date` say what a translation means for the inbox row and the registry.

Nothing here touches a store or a server: the service's stages
(:mod:`adapter.service.stages`) translate what they claim from the inbox, and the tools
(``map``, ``explain``, ``diff``, the regression corpus, the fuzz targets) translate files.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timezone
from typing import Any

from adapter.build import TrialLink, build_transaction
from adapter.build.provenance import MessageSource, sha256_of
from adapter.config import Settings
from adapter.errors import MessageError
from adapter.mapping import HeldResult, MappedReport, map_report
from adapter.mapping.times import to_fhir_datetime
from adapter.mappings import MappingSet
from adapter.parse import ParsedMessage, Report, VitalEvent, parse_bytes
from adapter.store import PROCESSED, RECEIVED, REFUSED, Outcome, held_row
from adapter.trial.enrolment import Decision, EnrolledSubject, before_baseline
from adapter.trial.gate import UNATTRIBUTABLE, Gate, patient_ids_in
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


def death_date(vital: VitalEvent, tz: timezone) -> date:
    """The day of death an ADT message gives, in the study's time zone."""
    when = vital.death_time or vital.event_time
    fhir = to_fhir_datetime(when, "+00:00") if when else None
    return local_date(fhir, tz) if fhir else datetime.now(tz).date()


def outcome_of(row_id: int, item: Translation, error: str | None) -> Outcome:
    """The inbox status a translated message gets, with its held results."""
    nothing_to_send = item.vital is not None or item.dropped
    if error:
        status = REFUSED if item.bundle is None and not nothing_to_send else RECEIVED
    else:
        status = PROCESSED if item.bundle is not None or nothing_to_send else REFUSED
    return Outcome(row_id, status, error, tuple(held_row(h) for h in item.held))
