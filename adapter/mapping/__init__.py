"""Stage "map": a parsed :class:`Report` -> the study's analytes, in canonical UCUM units.

Pure: data in, data out. Every OBX either becomes a :class:`MappedResult` or a
:class:`HeldResult` with the reason, so nothing is lost silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from adapter.errors import MappingError
from adapter.mapping.status import StatusRule, status_rule
from adapter.mapping.times import TimestampError, to_fhir_datetime, to_fhir_instant
from adapter.mapping.values import Number, parse_number, parse_range
from adapter.mappings import UNIT_FACTOR, Analyte, CodeRule, Factor, MappingSet
from adapter.parse.model import Coding, Order, Report, Result

__all__ = ["HeldResult", "MappedReport", "MappedResult", "Quantity", "map_report"]


@dataclass(frozen=True, slots=True)
class Quantity:
    """A value with its UCUM unit and optional comparator."""

    value: Decimal
    unit: str
    comparator: str | None = None


@dataclass(frozen=True, slots=True)
class MappedResult:
    """One OBX, mapped: what the Observation will say."""

    order: Order
    result: Result
    analyte: Analyte
    matched: Coding  # the OBX-3 coding that matched the analyte's rule in mappings/
    status: StatusRule
    factor: Factor | None  # the conversion applied to reach the canonical unit (None: none)
    quantity: Quantity | None  # in the canonical unit; None when there is no value
    as_sent: Quantity | None  # the value in the lab's unit, when it was converted
    reference_low: Decimal | None
    reference_high: Decimal | None
    reference_text: str
    effective: str | None  # FHIR dateTime
    issued: str | None  # FHIR instant
    text: str | None = None  # a text analyte's value: every OBX-5 repetition, one per line
    codes: tuple[tuple[Coding, ...], ...] = ()  # a coded analyte's values: codings per repetition
    rule: CodeRule | None = None  # the analytes.yaml entry that matched (scope and line)


@dataclass(frozen=True, slots=True)
class HeldResult:
    """One OBX that was not mapped, and why (a person can act on the reason)."""

    order: Order
    result: Result
    reason: str
    where: str = ""  # the field the reason is about, e.g. OBX[3].5


@dataclass(frozen=True, slots=True)
class MappedReport:
    """A report with each of its results mapped or held."""

    report: Report
    results: tuple[MappedResult, ...]
    held: tuple[HeldResult, ...]


def map_report(report: Report, mappings: MappingSet, *, default_offset: str) -> MappedReport:
    """Map every result of ``report``; ``default_offset`` applies to times sent without one."""
    mapped: list[MappedResult] = []
    held: list[HeldResult] = []
    for order in report.orders:
        for result in order.results:
            try:
                mapped.append(_map_result(report, order, result, mappings, default_offset))
            except MappingError as exc:
                held.append(HeldResult(order, result, exc.reason, exc.location or ""))
    return MappedReport(report, tuple(mapped), tuple(held))


def _map_result(
    report: Report, order: Order, result: Result, mappings: MappingSet, offset: str
) -> MappedResult:
    analyte, matched, code_rule = _analyte(report, result, mappings)
    rule = _status(result)
    if order.order_number() is None:
        _fail(result, "the order has neither a filler (OBR-3) nor a placer (OBR-2) number", 3)
    values = [v for v in result.values if v]
    if not values and rule.keeps_value and not rule.finalises_stored:
        _fail(result, f"a {rule.fhir_status} result (OBX-11) has no value", 5)
    numeric = analyte.value == "quantity" and rule.keeps_value
    as_sent = _as_sent(result, analyte, values, mappings) if numeric and values else None
    factor = _factor(result, analyte, as_sent)
    bounds = parse_range(result.reference_range)
    return MappedResult(
        order=order,
        result=result,
        analyte=analyte,
        matched=matched,
        status=rule,
        factor=factor if factor and factor != UNIT_FACTOR else None,
        quantity=_converted(as_sent, factor, analyte),
        as_sent=as_sent if as_sent and as_sent.unit != analyte.unit else None,
        reference_low=_bound(bounds.low if bounds else None, factor),
        reference_high=_bound(bounds.high if bounds else None, factor),
        reference_text=result.reference_range,
        effective=_effective(result, order, offset),
        issued=_issued(order, report, offset),
        text="\n".join(values) if analyte.value == "text" and values else None,
        codes=tuple(_codings_of(v) for v in values) if analyte.value == "coded" else (),
        rule=code_rule,
    )


def _codings_of(value: str) -> tuple[Coding, ...]:
    """A CWE/CE value ``code^text^system^alt code^alt text^alt system`` as its codings."""
    parts = [p.strip() for p in value.split("^")] + [""] * 6
    codings = (Coding(parts[0], parts[1], parts[2]), Coding(parts[3], parts[4], parts[5]))
    return tuple(c for c in codings if c.code or c.text)


def _fail(result: Result, reason: str, field: int) -> None:
    raise MappingError(reason, location=f"{result.location}.{field}")


def _analyte(
    report: Report, result: Result, mappings: MappingSet
) -> tuple[Analyte, Coding, CodeRule]:
    app, facility = report.sending_application, report.sending_facility
    for coding in result.codings:
        rule = mappings.rule_for(coding.system, coding.code, app, facility) if coding.code else None
        if rule is not None:
            return mappings.analytes[rule.analyte], coding, rule
    raise MappingError(
        f"{_codes_sent(result.codings, report.sender())} is not in mappings/analytes.yaml",
        location=f"{result.location}.3",
        hint=_unmapped_hint(result.codings, app, facility),
    )


def _codes_sent(codings: tuple[Coding, ...], sender: str) -> str:
    """``code 84295 (GH)``; a coding with no code (an empty alternate) is left out, and a
    bare code says which sender it came from, since only a scoped entry can map it."""
    sent = [c for c in codings if c.code]
    if not sent:
        return "code (none)"
    words = [
        f"{c.code} ({c.system})" if c.system else f"{c.code} (no system) from {sender}"
        for c in sent
    ]
    return ("code " if len(words) == 1 else "codes ") + ", ".join(words)


def _unmapped_hint(codings: tuple[Coding, ...], application: str, facility: str) -> str:
    if any(c.code and not c.system for c in codings) and not any(c.system for c in codings):
        return (
            "add it to the analyte it means, scoped to this sender: "
            f"{{code: ..., application: {application or '?'}, facility: {facility or '?'}}}; "
            "or leave it if the study does not collect it"
        )
    return "add it to the analyte it means, or leave it if the study does not collect it"


def _status(result: Result) -> StatusRule:
    rule = status_rule(result.status)
    if rule is None:
        raise MappingError(
            f"result status (OBX-11) {result.status or 'empty'!r} is not one of "
            "F C A B P R S I O X D W U",
            location=f"{result.location}.11",
        )
    return rule


def _as_sent(result: Result, analyte: Analyte, values: list[str], m: MappingSet) -> Quantity:
    if len(values) > 1:
        _fail(
            result,
            f"OBX-5 repeats {len(values)} values ({', '.join(values)}); {analyte.display} "
            "takes one number",
            5,
        )
    number = parse_number(result.value_type, values[0])
    if number is None:
        _fail(
            result,
            f"{analyte.display} needs a number, but OBX-5 is {values[0]!r} "
            f"(value type {result.value_type or 'empty'})",
            5,
        )
    assert number is not None
    return _quantity(number, _ucum(result, analyte, m))


def _ucum(result: Result, analyte: Analyte, mappings: MappingSet) -> str:
    sent = result.unit.code if result.unit and result.unit.code else _unit_text(result.unit)
    ucum = mappings.ucum_for(sent)
    if ucum is None or analyte.factor_from(ucum) is None:
        raise MappingError(
            f"unit {sent or '(none)'!r} is not a known unit for {analyte.display} "
            f"(canonical {analyte.unit})",
            location=f"{result.location}.6",
            hint="add the unit to mappings/units.yaml and a conversion to the analyte",
        )
    return ucum


def _unit_text(unit: Coding | None) -> str:
    return unit.text if unit else ""


def _quantity(number: Number, unit: str) -> Quantity:
    return Quantity(number.value, unit, number.comparator)


def _factor(result: Result, analyte: Analyte, as_sent: Quantity | None) -> Factor | None:
    return analyte.factor_from(as_sent.unit) if as_sent else None


def _converted(
    as_sent: Quantity | None, factor: Factor | None, analyte: Analyte
) -> Quantity | None:
    if as_sent is None or factor is None:
        return None
    return Quantity(factor.apply(as_sent.value), analyte.unit, as_sent.comparator)


def _bound(value: Decimal | None, factor: Factor | None) -> Decimal | None:
    if value is None:
        return None
    return factor.apply(value) if factor else value


def _effective(result: Result, order: Order, offset: str) -> str | None:
    """OBX-14 (else OBR-7) as a FHIR dateTime. A result needs the day it was collected: a
    year or month alone cannot be placed in a study visit, so such a result is held."""
    if result.observed_at:
        field, value, where = "OBX-14", result.observed_at, f"{result.location}.14"
    else:
        field, value, where = "OBR-7", order.observed_at, f"{order.location}.7"
    try:
        effective = to_fhir_datetime(value, offset)
    except TimestampError as exc:
        raise MappingError(f"{field} (observation time): {exc.reason}", location=where) from exc
    if effective is not None and len(effective) < len("YYYY-MM-DD"):
        raise MappingError(
            f"{field} (observation time) {value.strip()!r} gives no day, so the result cannot "
            "be placed in a study visit; the lab must send the date it was collected",
            location=where,
        )
    return effective


def _issued(order: Order, report: Report, offset: str) -> str | None:
    """OBR-22 (else MSH-7) as a FHIR instant; left out when less precise than seconds."""
    if order.reported_at:
        field, value, where = "OBR-22", order.reported_at, f"{order.location}.22"
    else:
        field, value, where = "MSH-7", report.sent_at, "MSH.7"
    try:
        return to_fhir_instant(value, offset)
    except TimestampError as exc:
        raise MappingError(f"{field} (results reported): {exc.reason}", location=where) from exc
