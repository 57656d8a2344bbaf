"""OBX-11 (HL7 table 0085) -> Observation.status, as DESIGN.md's table says.

Rank orders statuses through a result's life, so an older status never overwrites a newer
one (a preliminary arriving after the final is ignored).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StatusRule:
    """What one OBX-11 code means for the Observation."""

    fhir_status: str
    rank: int  # higher wins when two messages disagree
    keeps_value: bool  # False: the result carries no value (cancelled, registered)
    finalises_stored: bool = False  # U: final, the stored value stays


_RULES: dict[str, StatusRule] = {
    "I": StatusRule("registered", 0, keeps_value=False),
    "O": StatusRule("registered", 0, keeps_value=False),
    "P": StatusRule("preliminary", 1, keeps_value=True),
    "R": StatusRule("preliminary", 1, keeps_value=True),
    "S": StatusRule("preliminary", 1, keeps_value=True),
    "F": StatusRule("final", 2, keeps_value=True),
    "U": StatusRule("final", 2, keeps_value=True, finalises_stored=True),
    "C": StatusRule("corrected", 3, keeps_value=True),
    "A": StatusRule("amended", 3, keeps_value=True),
    "B": StatusRule("amended", 3, keeps_value=True),
    "X": StatusRule("cancelled", 4, keeps_value=False),
    "D": StatusRule("entered-in-error", 5, keeps_value=False),
    "W": StatusRule("entered-in-error", 5, keeps_value=False),
}

FHIR_RANK: dict[str, int] = {rule.fhir_status: rule.rank for rule in _RULES.values()}


def status_rule(obx_11: str) -> StatusRule | None:
    """The rule for an OBX-11 code, or None when the code is not in table 0085's use here."""
    return _RULES.get(obx_11.strip().upper())
