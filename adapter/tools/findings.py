"""What a conformance finding means for the feed: will TrialBridge hold a result because of
it, can the LIS ignore it, or is it the validator's own limit?

Pure. :mod:`adapter.tools.conformance` gives each finding from hl7apy (and its own value
checks) a *kind*:

* ``holds``: TrialBridge refuses the message or holds a result at that field (judged by
  running TrialBridge's own parse and map stages over the message, not by a list);
* ``validator``: a limit of hl7apy, not a problem in the message: HL7 tables a site extends
  or defines itself, the query parameters after QPD-3, Z events;
* ``ignorable``: a real departure from the declared version that TrialBridge copes with
  (a field it does not read, or reads and did not hold a result for);
* ``real``: in a message TrialBridge does not read but sends (a query, an acknowledgement),
  a real departure the receiving system may refuse the message for.

Sources for the validator limits are cited next to each rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["holds", "real", "ignorable", "validator"]
KINDS: tuple[Kind, ...] = ("holds", "real", "ignorable", "validator")
KIND_TITLES = {
    "holds": "will make TrialBridge hold a result or refuse the message",
    "real": "real: the receiving system may refuse the message for them",
    "ignorable": "real, but a LIS can ignore them: TrialBridge copes",
    "validator": "from the validator's own limits, not problems in the message",
}

# HL7 v2.5.1 Appendix A marks these tables "User" (the site defines the values); hl7apy only
# knows the values HL7 suggests, so a site's own values are reported as not in the table.
_USER_TABLES = (1, 2, 4, 5, 6, 7, 10, 18, 19, 21, 22, 23, 69, 87, 88, 92, 93, 98, 99, 113, 171)
USER_DEFINED_TABLES = frozenset(
    f"{n:04d}" for n in (*_USER_TABLES, 172, 189, 212, 289, 361, 362, 363, 471)
)
# The fields TrialBridge reads (adapter/parse): a finding elsewhere cannot change a result.
READ_FIELDS = {
    "MSH": {2, 3, 4, 7, 9, 10, 12, 18},
    "PID": {3, 29, 30},
    "ORC": {2, 3},
    "OBR": {2, 3, 4, 7, 22, 25},
    "OBX": {2, 3, 4, 5, 6, 7, 8, 11, 14, 19},
    "NTE": {3},
}
_TABLE = re.compile(r"not in table HL7(\d{4})")
_LOCATION = re.compile(
    r"^(?P<segment>[A-Z][A-Z0-9]{2})(?:\[(?P<index>\d+)\])?(?:\.(?P<field>\d+))?"
)
# hl7apy's QPD has QPD-1..3 only; v2.5.1 ch. 5.5.4: "QPD-3 ... user parameters (in successive
# fields)", each query's conformance statement defines them (QPD-4, QPD-5, ...).
_QPD_PARAMETERS = re.compile(r"Invalid children detected for <Segment QPD>: \['QPD_\d+'")
# Fields beyond the last one the declared version defines (OBX-29..33 come from v2.7).
_PAST_DEFINITION = re.compile(r"Invalid children detected for <Segment \w+>: \[None")


@dataclass(frozen=True, slots=True)
class Field:
    """A location as segment, occurrence (1 when not given) and field number (0: none)."""

    segment: str
    index: int
    field: int

    @classmethod
    def parse(cls, location: str) -> Field | None:
        match = _LOCATION.match(location)
        if match is None:
            return None
        return cls(match["segment"], int(match["index"] or 1), int(match["field"] or 0))


@dataclass(frozen=True, slots=True)
class Hold:
    """Where TrialBridge refused the message or held a result, and why (its own words)."""

    location: str  # e.g. OBX[2].5, PID.3, MSH.2
    reason: str


def classify(
    location: str, message: str, holds: list[Hold], *, read: bool = True
) -> tuple[Kind, str]:
    """The kind of one finding and why, given where TrialBridge held or refused; ``read``
    is False for a message TrialBridge sends rather than reads."""
    hold = _matching_hold(location, holds)
    if hold is not None:
        return "holds", f"TrialBridge: {hold.reason}"
    limit = validator_limit(message)
    if limit is not None:
        return "validator", limit
    if not read:
        return "real", "in the declared version's definition; a strict receiver may refuse it"
    if _PAST_DEFINITION.search(message):
        return "ignorable", "fields after the last one the declared version defines; unread"
    if "truncation character" in message:
        return "ignorable", "TrialBridge reads MSH-2 as v2.7 does (the fifth character unused)"
    where = Field.parse(location)
    if where is None or where.field == 0:
        return "ignorable", "TrialBridge parsed the message and held nothing for it"
    if where.field not in READ_FIELDS.get(where.segment, set()):
        return "ignorable", f"TrialBridge does not read {where.segment}-{where.field}"
    return "ignorable", f"TrialBridge reads {where.segment}-{where.field} and held nothing for it"


def validator_limit(message: str) -> str | None:
    """Why a finding comes from hl7apy's limits, or None when it is about the message."""
    if _QPD_PARAMETERS.search(message):
        return (
            "HL7 v2.5.1 5.5.4: the query's parameters follow QPD-3 in successive fields, as "
            "its conformance statement defines; hl7apy's QPD stops at QPD-3"
        )
    table = _TABLE.search(message)
    if table is None:
        return None
    number = table[1]
    if number == "0396":
        return (
            "HL7 table 0396 (coding systems) admits local systems (99zzz, L) and grows with each "
            "version; hl7apy's copy is fixed"
        )
    if number == "0003" and re.search(r"Value Z\w* not in table", message):
        return (
            "trigger events beginning with Z are reserved for locally defined messages (HL7 v2 "
            "ch. 2, Messages); the LIS's interface specification defines it"
        )
    if number in USER_DEFINED_TABLES:
        return (
            f"table {number} is user-defined: the site chooses its values (hl7apy knows "
            "HL7's suggestions only)"
        )
    return None


def _matching_hold(location: str, holds: list[Hold]) -> Hold | None:
    where = Field.parse(location)
    if where is None:
        return None
    for hold in holds:
        held = Field.parse(hold.location)
        if held is None or held.segment != where.segment or held.index != where.index:
            continue
        if where.field in (0, held.field) or held.field == 0:
            return hold
    return None
