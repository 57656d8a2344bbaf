"""The flow for a batch of files, as used by ``map`` and ``push``: parse -> map -> build,
then (for ``push``) one transaction per message.

The pure part, :func:`translate`, turns bytes into transactions; :func:`push_translations`
is the thin I/O shell that sends them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
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
    by_analyte: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def push_translations(translations: Iterable[Translation], client: FhirClient) -> PushSummary:
    """Send each message's transaction; a refused or failed message never stops the rest."""
    summary = PushSummary()
    for item in translations:
        summary.messages += 1
        summary.held += len(item.held)
        if item.bundle is None or item.mapped is None:
            summary.refused += 1
            summary.errors.append(f"{item.source}: {item.error}")
            continue
        try:
            bundle, skipped = reconcile(item.bundle, stored_observations(client, item.bundle))
            client.transaction(bundle)
        except FhirError as exc:
            summary.failed += 1
            summary.errors.append(f"{item.source} (message {item.message_id}): {exc}")
            continue
        summary.pushed += 1
        summary.skipped += len(skipped)
        _count_written(summary, item.mapped, bundle)
    return summary


def _count_written(summary: PushSummary, mapped: MappedReport, bundle: dict[str, Any]) -> None:
    analyte_of = {result_identifier(r, mapped.report): r.analyte.key for r in mapped.results}
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Observation":
            key = analyte_of[identifier_value(entry["resource"])]
            summary.observations += 1
            summary.by_analyte[key] = summary.by_analyte.get(key, 0) + 1
