"""Held results as rows of ``held_results``: what is kept of an OBX that was not mapped.

Pure. Only what an interface engineer needs to add a mapping is kept: where the OBX sits,
its code, text, unit, value type, a short example value and the reason. Nothing that
identifies the patient: free-text results (TX, FT) may carry names in comments, so their
value is never kept, and other values are cut to a few characters.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapter.mapping import HeldResult
from adapter.store.schema import EXAMPLE_LENGTH, SHORT_TEXT_LENGTH, UNMAPPED_CODE

# The mapping stage gives its reasons as text (HeldResult.reason); these fragments sort
# them into kinds. tests/test_unmapped.py pins each against a real held result.
_KINDS: tuple[tuple[str, str], ...] = (
    ("is not in mappings/analytes.yaml", UNMAPPED_CODE),
    ("is not a known unit", "unit"),
    ("needs a number", "value"),
    ("OBX-5 repeats", "value"),
    ("has no value", "value"),
    ("result status (OBX-11)", "status"),
    ("neither a filler", "order"),
    ("is not an HL7 date/time", "time"),
    ("has a time but no day", "time"),
)
_FREE_TEXT = ("TX", "FT")
_EXAMPLE_KEPT = 40


@dataclass(frozen=True, slots=True)
class HeldRow:
    """One held OBX, as stored."""

    location: str
    code: str
    code_system: str
    code_text: str
    unit: str
    value_type: str
    example_value: str
    reason_kind: str
    reason: str


def reason_kind(reason: str) -> str:
    """The kind of a mapping stage reason: unmapped_code, unit, value, status, order, time."""
    for fragment, kind in _KINDS:
        if fragment in reason:
            return kind
    return "other"


def held_row(held: HeldResult) -> HeldRow:
    """The row kept for ``held``."""
    result = held.result
    coding = result.codings[0] if result.codings else None
    unit = (result.unit.code or result.unit.text) if result.unit else ""
    return HeldRow(
        location=result.location,
        code=_cut(coding.code if coding else ""),
        code_system=_cut(coding.system if coding else ""),
        code_text=_cut(coding.text if coding else ""),
        unit=_cut(unit),
        value_type=result.value_type[:8],
        example_value=example_value(result.value_type, result.values),
        reason_kind=reason_kind(held.reason),
        reason=held.reason,
    )


def example_value(value_type: str, values: tuple[str, ...]) -> str:
    """OBX-5 as kept: free text never, anything else cut to a few characters."""
    present = [v for v in values if v]
    if not present:
        return ""
    joined = "~".join(present)
    if value_type in _FREE_TEXT:
        return f"({value_type} text of {len(joined)} characters, not kept)"[:EXAMPLE_LENGTH]
    if len(joined) > _EXAMPLE_KEPT:
        return joined[: _EXAMPLE_KEPT - 1] + "…"
    return joined


def _cut(text: str) -> str:
    return text[:SHORT_TEXT_LENGTH]
