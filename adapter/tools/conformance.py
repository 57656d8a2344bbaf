"""``trialbridge check --conformance``: structure and datatype conformance of a message
against the HL7 version it declares in MSH-12, using hl7apy offline.

DESIGN.md keeps hl7apy off the hot path (25-30x slower than python-hl7); here it is the
reference for segment order and cardinality (its ``Validator``), and TrialBridge adds what
hl7apy does not check when it parses tolerantly: the values of primitive datatypes (DT, DTM,
TS, NM, SI), OBX-2 against HL7 table 0125, and OBX-5 against the type OBX-2 declares.
Locations use the standard's notation: ``PID.7``, ``OBX[2].5`` (the second OBX).

Each finding gets a kind (:mod:`adapter.tools.findings`): it will make TrialBridge hold a
result, a LIS can ignore it, or it is the validator's own limit. A message is conformant when
it has no error but the validator's limits. hl7apy knows the four encoding characters of
v2.5.1 only, so a v2.7 truncation character in MSH-2 (``^~\\&#``) is removed before it
validates the message, and the report says so.

:func:`check_sent` is the check for what TrialBridge itself sends (queries, acknowledgements):
tests call it on every message kind.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_message
from hl7apy.validation import Validator

from adapter.errors import MessageError
from adapter.mapping import map_report
from adapter.mappings import Analyte, CodeRule, MappingSet
from adapter.parse import Report, parse_bytes
from adapter.parse.decode import decode_message, split_messages
from adapter.tools.findings import KINDS, Hold, Kind, classify

Level = Literal["error", "warning"]
_NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_PATTERNS = {
    "NM": re.compile(rf"^{_NUM}$"),
    "SI": re.compile(r"^\d+$"),
    "DT": re.compile(r"^(?P<y>\d{4})(?:(?P<m>\d{2})(?P<d>\d{2})?)?$"),
    "DTM": re.compile(
        r"^(?P<y>\d{4})(?:(?P<m>\d{2})(?:(?P<d>\d{2})(?:(?P<H>\d{2})(?:(?P<M>\d{2})"
        r"(?:(?P<S>\d{2})(?:\.\d{1,4})?)?)?)?)?)?(?:[+-]\d{4})?$"
    ),
    "SN": re.compile(rf"^(?:<=|>=|<>|<|>|=)?\^?{_NUM}(?:\^[-+/:.]?\^{_NUM})?$"),
}
_TIME_TYPES = frozenset({"TS", "DTM"})
# HL7 table 0125 (value types), v2.3 to v2.8: hl7apy's copy lacks CWE, CNE and others.
TABLE_0125 = frozenset(
    [
        "AD",
        "CE",
        "CF",
        "CK",
        "CN",
        "CNE",
        "CP",
        "CWE",
        "CX",
        "DR",
        "DT",
        "DTM",
        "ED",
        "FT",
        "ID",
        "MA",
        "MO",
        "NA",
        "NM",
        "PN",
        "RP",
        "SN",
        "ST",
        "TM",
        "TN",
        "TS",
        "TX",
        "XAD",
        "XCN",
        "XON",
        "XPN",
    ]
)
_VALIDATOR_FIELD = re.compile(r"\b([A-Z][A-Z0-9]{2})\.\1_(\d+)\b")
_VALIDATOR_COMPONENT = re.compile(r"\b([A-Z][A-Z0-9]{2})_(\d+)\.[A-Z]+_(\d+)\b")
_EXTRA_COMPONENTS = re.compile(r"<Field ([A-Z][A-Z0-9]{2})_(\d+) .* of type (\w+)>: \[None\]")
_NO_COMPONENTS = re.compile(r"Datatype None is not correct for ([A-Z0-9]{3})\.\1_(\d+) .*")


@dataclass(frozen=True, slots=True)
class Problem:
    """One conformance problem, with where it is, and what it means for the feed."""

    location: str
    level: Level
    message: str
    kind: Kind = "ignorable"  # holds | ignorable | validator (adapter.tools.findings)
    why: str = ""  # why it is of that kind

    def __str__(self) -> str:
        why = f" ({self.why})" if self.why else ""
        return f"{self.location}: {self.level}: {self.message}{why}"


@dataclass(frozen=True, slots=True)
class Conformance:
    """One message checked against its declared version."""

    position: int  # 1-based in the file
    message_id: str
    version: str
    problems: tuple[Problem, ...]

    @property
    def conformant(self) -> bool:
        """No error in the message: the validator's own limits do not count."""
        return not self.errors

    @property
    def errors(self) -> list[Problem]:
        """The errors that are about the message (not the validator's limits)."""
        return [p for p in self.problems if p.level == "error" and p.kind != "validator"]

    def counts(self) -> dict[str, int]:
        """Findings of each kind (holds, ignorable, validator)."""
        return {kind: sum(1 for p in self.problems if p.kind == kind) for kind in KINDS}

    def as_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "message_id": self.message_id,
            "version": self.version,
            "conformant": self.conformant,
            "counts": self.counts(),
            "problems": [asdict(p) for p in self.problems],
        }


def check_conformance(data: bytes, forced_charset: str | None = None) -> list[Conformance]:
    """Check every message in ``data`` (a file's bytes; batches are unwrapped)."""
    results = []
    try:
        chunks = split_messages(data)
    except MessageError as exc:  # not HL7v2 at all: one finding, and the next file goes on
        problem = Problem("MSH", "error", str(exc), "holds", "TrialBridge refuses it too")
        return [Conformance(1, "", "", (problem,))]
    for position, chunk in enumerate(chunks, start=1):
        try:
            text, _ = decode_message(chunk, forced_charset)
        except MessageError as exc:
            problem = Problem("MSH.18", "error", str(exc), "holds", "TrialBridge refuses it")
            results.append(Conformance(position, "", "", (problem,)))
            continue
        results.append(check_message(text, position))
    return results


def check_sent(data: bytes) -> Conformance:
    """Check one message TrialBridge sends (a query, an acknowledgement): its bytes as they
    go on the wire. ``conformant`` is what a test asserts; ``errors`` says why not."""
    [checked] = [check_message(decode_message(data, None)[0]) for data in split_messages(data)]
    return checked


def check_message(text: str, position: int = 1) -> Conformance:
    """Check one decoded message (CR-separated segments), and (ORU and ADT messages) which
    findings make TrialBridge hold a result."""
    message_id, version = _msh_field(text, 10), _msh_field(text, 12)
    notes, validated = _without_truncation_character(text)
    try:
        message = parse_message(
            validated, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=True
        )
    except HL7apyException as exc:
        found = [*notes, Problem("MSH", "error", f"hl7apy cannot parse it: {exc}")]
    else:
        try:
            found = [*notes, *_structure(message), *_values(message)]
        except Exception as exc:  # hl7apy has bugs of many types on unusual input
            found = [*notes, Problem("message", "error", f"hl7apy failed on it: {exc!r}")]
    read = _msh_field(text, 9).split("^", 1)[0] in _READ_TYPES
    problems = _classified(list(_unique(found)), _holds(text) if read else [], read)
    return Conformance(position, message_id, version, tuple(problems))


def _without_truncation_character(text: str) -> tuple[list[Problem], str]:
    """MSH-2 with v2.7's fifth encoding character (truncation, ``#``) loses it for hl7apy."""
    encoding = text[4:].split(text[3:4], 1)[0] if len(text) > 4 else ""
    if len(encoding) != 5 or len(set(encoding)) != 5:
        return [], text
    note = Problem(
        "MSH.2",
        "warning",
        f"MSH-2 '{encoding}' carries the truncation character '{encoding[4]}' (HL7 v2.7); "
        f"v{_msh_field(text, 12) or '?'} has four encoding characters. It was removed for "
        "validation (hl7apy knows four)",
    )
    return [note], text[:8] + text[9:]


def _holds(text: str) -> list[Hold]:
    """Where TrialBridge's own parse and map stages refuse the message or hold a result for
    a reason in the message. Every code is mapped for this (to a number when OBX-2 is NM, SN
    or not a value type at all, else to text; in whatever unit was sent), so what is held is
    the message's doing, whatever the mappings say."""
    holds = []
    for parsed in parse_bytes(text.encode("utf-8")):
        if parsed.error is not None:
            holds.append(Hold(parsed.error.location or "MSH", f"refused: {parsed.error.reason}"))
        if parsed.report is None:
            continue
        mapped = map_report(parsed.report, _every_code(parsed.report), default_offset="+00:00")
        holds += [Hold(h.where or h.result.location, f"held: {h.reason}") for h in mapped.held]
    return holds


_READ_TYPES = ("ORU", "ADT")  # the message types TrialBridge reads (others it sends)
_ANY_NUMBER = Analyte("number", "A numeric result", "0-0", "", "1", {}, "quantity")
_ANY_TEXT = Analyte("text", "A text result", "0-0", "", "", {}, "text")


def _every_code(report: Report) -> MappingSet:
    """Mappings that map every code of ``report`` and accept every unit it sends."""
    rules: dict[tuple[str, str], tuple[CodeRule, ...]] = {}
    units: dict[str, str] = {}
    for result in (r for order in report.orders for r in order.results):
        numeric = result.value_type in ("NM", "SN") or result.value_type not in TABLE_0125
        analyte = _ANY_NUMBER if numeric else _ANY_TEXT
        for coding in result.codings:
            key = (coding.system.strip().upper(), coding.code.strip().upper())
            rules[key] = (CodeRule(coding.system, coding.code, analyte.key, None),)
        if result.unit is not None:
            units[(result.unit.code or result.unit.text).strip().lower()] = "1"
    analytes = {a.key: a for a in (_ANY_NUMBER, _ANY_TEXT)}
    return MappingSet("conformance", analytes, unit_aliases=units or {"": "1"}, rules=rules)


def _classified(found: list[Problem], holds: list[Hold], read: bool) -> list[Problem]:
    problems = []
    for problem in found:
        kind, why = classify(problem.location, problem.message, holds, read=read)
        problems.append(Problem(problem.location, problem.level, problem.message, kind, why))
    seen = {p.location for p in problems if p.kind == "holds"}
    for hold in holds:  # what TrialBridge holds that the validator did not point at
        if not any(classify(location, "", [hold])[0] == "holds" for location in seen):
            why = "found by TrialBridge's parse and map stages"
            problems.append(Problem(hold.location, "error", hold.reason, "holds", why))
    return problems


def _msh_field(text: str, number: int) -> str:
    msh = text.split("\r", 1)[0]
    fields = msh.split(msh[3:4]) if len(msh) > 3 else []
    return fields[number - 1] if len(fields) >= number else ""


def _unique(problems: list[Problem]) -> Iterator[Problem]:
    seen: set[Problem] = set()
    for problem in problems:
        if problem not in seen:
            seen.add(problem)
            yield problem


def _structure(message: Any) -> Iterator[Problem]:
    """hl7apy's Validator: children, cardinality, datatypes and table values."""
    with tempfile.TemporaryDirectory(prefix="trialbridge-conformance-") as temp:
        report = Path(temp) / "report.txt"
        # Every problem is in the report; the exception raised is only the first of them.
        with contextlib.suppress(HL7apyException):
            Validator.validate(message, report_file=str(report))
        lines = report.read_text(encoding="utf-8").splitlines() if report.exists() else []
    for line in lines:
        level, _, text = line.partition(": ")
        if "HL70125" not in text:  # OBX-2 is checked against the full table 0125 below
            yield _validator_problem("error" if level == "Error" else "warning", text)


def _validator_problem(level: Level, text: str) -> Problem:
    if match := _NO_COMPONENTS.match(text):
        where = f"{match[1]}.{match[2]}"
        return Problem(where, level, "the value has components where the field allows none")
    if match := _EXTRA_COMPONENTS.search(text):
        where = f"{match[1]}.{match[2]}"
        return Problem(where, level, f"more components than datatype {match[3]} has")
    if text.startswith("Unknown element found: None.<Message"):
        return Problem("MSH.9", level, "the message structure is unknown (is MSH-9 complete?)")
    if match := _VALIDATOR_COMPONENT.search(text):
        return Problem(f"{match[1]}.{match[2]}.{match[3]}", level, text)
    match = _VALIDATOR_FIELD.search(text)
    where = f"{match[1]}.{match[2]}" if match else "message"
    return Problem(where, level, _VALIDATOR_FIELD.sub(lambda m: f"{m[1]}-{m[2]}", text))


def _segments(element: Any) -> Iterator[Any]:
    for child in element.children:
        if child.classname == "Segment":
            yield child
        else:
            yield from _segments(child)


def _values(message: Any) -> Iterator[Problem]:
    segments = list(_segments(message))
    totals = Counter(segment.name for segment in segments)
    seen: Counter[str] = Counter()
    for segment in segments:
        seen[segment.name] += 1
        name = segment.name
        prefix = name if totals[name] == 1 else f"{name}[{seen[name]}]"
        for field in segment.children:
            if field.name and "_" in field.name:  # fields past the definition have no name
                yield from _field(field, f"{prefix}.{field.name.rsplit('_', 1)[1]}")
        if name == "OBX":
            yield from _obx(segment, prefix)


def _field(field: Any, where: str) -> Iterator[Problem]:
    datatype = field.datatype
    for repetition in [field.to_er7()]:
        value = repetition.split("^", 1)[0] if datatype in _TIME_TYPES else repetition
        problem = value_problem("DTM" if datatype in _TIME_TYPES else datatype, value)
        if problem:
            yield Problem(where, "error", problem)


def value_problem(datatype: str | None, value: str) -> str | None:
    """Why ``value`` is not a valid ``datatype`` value (NM, SI, DT, DTM, SN), or None."""
    pattern = _PATTERNS.get(datatype or "")
    if pattern is None or value == "" or value == '""':
        return None
    match = pattern.match(value)
    if match is None:
        return f"{value!r} is not a valid {datatype}"
    if datatype in ("DT", "DTM") and not _real_date(match):
        return f"{value!r} is not a valid {datatype}: no such date or time"
    return None


def _real_date(match: re.Match[str]) -> bool:
    parts = match.groupdict()
    try:
        date(int(parts["y"]), int(parts["m"] or 1), int(parts["d"] or 1))
    except ValueError:
        return False
    limits = {"H": 23, "M": 59, "S": 59}
    return all(parts.get(k) is None or int(parts[k]) <= top for k, top in limits.items())


def _obx(segment: Any, prefix: str) -> Iterator[Problem]:
    value_type = segment.obx_2.to_er7() if segment.obx_2 else ""
    if value_type and value_type not in TABLE_0125:
        yield Problem(f"{prefix}.2", "error", f"value type {value_type!r} is not in HL7 table 0125")
        return
    checked = {"TS": "DTM", "DTM": "DTM", "DT": "DT", "NM": "NM", "SN": "SN"}.get(value_type)
    if checked is None:
        return
    for repetition in segment.obx_5.to_er7().split("~") if segment.obx_5 else []:
        value = repetition.split("^", 1)[0] if checked == "DTM" else repetition
        problem = value_problem(checked, value)
        if problem:
            yield Problem(f"{prefix}.5", "error", f"{problem} (OBX-2 says {value_type})")
