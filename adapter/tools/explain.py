"""``trialbridge explain``: what each OBX of a message becomes, and why.

For every result: the rule in ``mappings/analytes.yaml`` that matched (with its line), the
conversion applied, the status decision (HL7 table 0085 -> Observation.status) and the
Observation itself; or the reason it was held. Pure: a :class:`Translation` in, plain data
out (``Decimal`` values kept exact).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adapter.build.observation import build_observation, result_identifier
from adapter.config import Identifiers
from adapter.mapping import MappedResult, Quantity
from adapter.mappings import Factor, MappingSet
from adapter.parse.model import Result
from adapter.translate import Translation, filter_verdict

_TIMES = "\u00d7"  # the multiplication sign: "51.3 umol/L TIMES 1/17.1 = 3.00 mg/dL"
_NO_VALUE = {
    "cancelled": "no value; dataAbsentReason not-performed",
    "registered": "no value yet; dataAbsentReason temp-unknown",
    "entered-in-error": "no value; dataAbsentReason error",
}


@dataclass(frozen=True, slots=True)
class Explanation:
    """One message explained: each result in message order, or why it was refused."""

    source: str
    message_id: str | None
    refused: str | None
    results: tuple[dict[str, Any], ...]
    filter: str = ""  # what the enrolment filter would do with the message
    sender: str = ""  # MSH-3.1@MSH-4.1: the scope code entries are matched in

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "message_id": self.message_id,
            "sender": self.sender,
            "filter": self.filter,
            "refused": self.refused,
            "results": list(self.results),
        }


def explain(item: Translation, mappings: MappingSet, ids: Identifiers) -> Explanation:
    """Explain one translated message."""
    verdict = filter_verdict(item)
    if item.mapped is None or item.bundle is None:
        return Explanation(item.source, item.message_id, str(item.error), (), verdict)
    report = item.mapped.report
    patient_ref = next(
        str(e["fullUrl"])
        for e in item.bundle["entry"]
        if e["resource"]["resourceType"] == "Patient"
    )
    identities = [result_identifier(r, report) for r in item.mapped.results]
    entries: list[tuple[Result, dict[str, Any]]] = []
    for index, mapped in enumerate(item.mapped.results):
        entry = _mapped(mapped, mappings)
        entry["observation"] = build_observation(mapped, report, patient_ref, ids)
        later = [
            r.result.location
            for r, ident in zip(
                item.mapped.results[index + 1 :], identities[index + 1 :], strict=True
            )
            if ident == identities[index]
        ]
        if later:
            entry["superseded_by"] = later[-1]
        entries.append((mapped.result, entry))
    for held in item.mapped.held:
        entries.append((held.result, {**_sent(held.result), "held": held.reason}))
    ordered = sorted(entries, key=lambda pair: _position(pair[0]))
    results = tuple(e for _, e in ordered)
    return Explanation(item.source, item.message_id, None, results, verdict, report.sender())


def _position(result: Result) -> int:
    digits = "".join(ch for ch in result.location if ch.isdigit())
    return int(digits) if digits else 0


def _sent(result: Result) -> dict[str, Any]:
    coding = result.codings[0] if result.codings else None
    return {
        "location": result.location,
        "code": f"{coding.code}^{coding.text}^{coding.system}" if coding else "",
        "value_type": result.value_type,
        "values": list(result.values),
        "unit": (result.unit.code or result.unit.text) if result.unit else "",
        "status": result.status,
    }


def _mapped(mapped: MappedResult, mappings: MappingSet) -> dict[str, Any]:
    rule = mapped.rule
    directory = mappings.directory.name if mappings.directory else "mappings"
    where = f"{directory}/analytes.yaml:{rule.line}" if rule and rule.line else None
    return {
        **_sent(mapped.result),
        "rule": {
            "analyte": mapped.analyte.key,
            "loinc": mapped.analyte.loinc,
            "matched": {"code": mapped.matched.code, "system": mapped.matched.system},
            "scope": rule.scope_text() if rule else "any sender",
            "where": where,
        },
        "conversion": _conversion(mapped),
        "status_decision": _status(mapped),
    }


def _conversion(mapped: MappedResult) -> str:
    if mapped.quantity is None:
        return "none (no numeric value)"
    if mapped.factor is None or mapped.as_sent is None:
        return f"none: {_quantity(mapped.quantity)} is in the canonical unit"
    return (
        f"{_quantity(mapped.as_sent)} {_TIMES} {factor_text(mapped.factor)} = "
        f"{_quantity(mapped.quantity)}"
    )


def factor_text(factor: Factor) -> str:
    """A factor as written in analytes.yaml: ``1/17.1``, ``10`` or ``3/2``."""
    if factor.divide == 1:
        return str(factor.multiply)
    return f"{factor.multiply}/{factor.divide}"


def _quantity(quantity: Quantity) -> str:
    return f"{quantity.comparator or ''}{quantity.value} {quantity.unit}"


def _status(mapped: MappedResult) -> str:
    rule = mapped.status
    code = mapped.result.status.strip().upper()
    if rule.finalises_stored:
        what = "final; finalises the stored preliminary, whose value stays"
    elif rule.keeps_value:
        what = "carries the value"
    else:
        what = _NO_VALUE.get(rule.fhir_status, "no value")
    return (
        f"OBX-11 {code} -> Observation.status {rule.fhir_status} "
        f"(HL7 table 0085 row {code}: {what}; rank {rule.rank})"
    )
