"""The segment layer under every message type: fields in the standard's numbering, split by
the message's own separators and unescaped.

python-hl7 reads the MSH segment (the separators, and the escape rules its ``unescape``
applies); the other segments are split here with ``str.split``. Building python-hl7's
container tree for every segment and reading it back as text (its tree changes depth with the
content, so fields have to be read as text) was the largest single cost of translating a
message; the fields and their numbering are the same. Repetitions are all kept
(``extract_field`` keeps only the first).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import hl7

from adapter.errors import ParseError
from adapter.parse.model import PatientIdentifier

# Escapes with a meaning beyond the separators: line break, highlighting on/off (dropped).
_APP_ESCAPES = {".br": "\n", "H": "", "N": ""}
_STANDARD_ENCODING = "^~\\&"
# "^~\\&" (the escape character doubled) comes from a source-code string literal copied into
# a feed; it is unambiguous, so it is repaired rather than refused.
_DOUBLED_ESCAPE = "^~\\\\&"


@dataclass(frozen=True, slots=True)
class Seps:
    field: str
    repetition: str
    component: str
    subcomponent: str
    escape: str  # MSH-2's third character; "\\" nearly always, but a message may choose


class Segment:
    """One segment with field access in the standard's numbering (PID-3 is ``raw(3)``)."""

    def __init__(
        self, fields: list[str], seps: Seps, unescape: Callable[[str], str], index: int
    ) -> None:
        self._fields = fields
        self._seps = seps
        self._unescape_text = unescape
        self.name = fields[0]
        self.location = f"{self.name}[{index}]"
        # MSH-1 is the field separator itself, so MSH-n sits one place earlier in the split.
        self._shift = 1 if self.name == "MSH" else 0

    def raw(self, number: int) -> str:
        """Field ``number`` as sent (escaped, all repetitions)."""
        if self._shift and number == 1:
            return self._seps.field
        index = number - self._shift
        return self._fields[index] if 0 < index < len(self._fields) else ""

    def repetitions(self, number: int) -> list[list[str]]:
        """Every repetition of a field, each as its unescaped components."""
        raw = self.raw(number)
        if raw == "":
            return []
        if self._shift and number == 2:  # MSH-2 holds the separators: never split it
            return [[raw]]
        seps = self._seps
        if seps.escape not in raw:  # nothing to unescape (most fields)
            return [rep.split(seps.component) for rep in raw.split(seps.repetition)]
        return [
            [self._unescape(c) for c in rep.split(seps.component)]
            for rep in raw.split(seps.repetition)
        ]

    def components(self, number: int) -> list[str]:
        """The components of a field's first repetition, unescaped (the others are not
        split: this is most of the reads)."""
        raw = self.raw(number)
        if raw == "":
            return []
        if self._shift and number == 2:
            return [raw]
        comps = raw.split(self._seps.repetition, 1)[0].split(self._seps.component)
        return comps if self._seps.escape not in raw else [self._unescape(c) for c in comps]

    def component(self, number: int, position: int = 1) -> str:
        """One component (1-based) of a field's first repetition, unescaped; '' if absent."""
        comps = self.components(number)
        return comps[position - 1].strip() if len(comps) >= position else ""

    def text(self, number: int) -> str:
        """A whole field as text: the first repetition, components joined by '^'."""
        return "^".join(self.components(number)).strip()

    def _unescape(self, text: str) -> str:
        if self._seps.escape not in text:
            return text
        return self._unescape_text(text)


def parse_segments(text: str) -> list[Segment]:
    """Every segment of one message (CR-separated text), MSH first."""
    text = _repair_encoding_characters(text)
    lines = [line for line in text.split("\r") if line.strip()]
    if not lines or not lines[0].startswith("MSH"):
        raise ParseError("the message does not start with an MSH segment", location="MSH")
    seps = _separators(lines[0])
    end = lines[0].find(seps.field, 4)  # the end of MSH-2, as python-hl7 finds it
    unescape = _unescaper(lines[0][: end + 1] if end != -1 else lines[0])
    counts: dict[str, int] = {}
    segments = []
    for line in lines:
        fields = line.split(seps.field)
        counts[fields[0]] = counts.get(fields[0], 0) + 1
        segments.append(Segment(fields, seps, unescape, counts[fields[0]]))
    return segments


@lru_cache(maxsize=64)
def _unescaper(msh_start: str) -> Callable[[str], str]:
    """python-hl7's unescape for a message whose MSH starts with ``msh_start`` (up to the
    field separator after MSH-2): its rules depend on those separators alone, so the header
    is parsed once per set of separators, not for every message."""
    try:
        header = hl7.parse(msh_start)
    except Exception as exc:  # python-hl7 raises bare exceptions of several types
        raise ParseError(f"python-hl7 could not parse the MSH segment: {exc}") from exc

    def unescape(field: str) -> str:
        return str(header.unescape(field, app_map=_APP_ESCAPES))

    return unescape


def _separators(msh: str) -> Seps:
    field = msh[3]
    encoding = msh[4:].split(field, 1)[0]
    return Seps(
        field,
        repetition=encoding[1],
        component=encoding[0],
        subcomponent=encoding[3],
        escape=encoding[2],
    )


def _repair_encoding_characters(text: str) -> str:
    encoding = text[4:].split(text[3:4], 1)[0] if len(text) > 4 else ""
    if encoding == _DOUBLED_ESCAPE:
        return text[:4] + _STANDARD_ENCODING + text[4 + len(_DOUBLED_ESCAPE) :]
    if len(encoding) < 4:
        raise ParseError(
            f"MSH-2 has {len(encoding)} encoding characters ({encoding!r}); four are needed "
            "(component, repetition, escape, subcomponent, as in '^~\\&')",
            location="MSH.2",
            hint="fix the encoding characters at the sender",
        )
    return text


def patient_ids(pid: Segment) -> tuple[PatientIdentifier, ...]:
    ids = tuple(
        PatientIdentifier(
            value=rep[0].strip(),
            authority=_first_component(rep[3]) if len(rep) > 3 else "",
            type_code=rep[4].strip() if len(rep) > 4 else "",
        )
        for rep in pid.repetitions(3)
        if rep and rep[0].strip()
    )
    if not ids:
        raise ParseError(
            "PID-3 (patient identifier list) is empty",
            location=f"{pid.location}.3",
            hint="the LIS must send the patient's MRN with its assigning authority in PID-3",
        )
    return ids


def _first_component(text: str) -> str:
    # HD types (assigning authority) may carry subcomponents: namespace&universal id&type.
    return text.split("&", 1)[0].strip()
