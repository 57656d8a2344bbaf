"""The segment layer under every message type: python-hl7 parses, and fields are read back
in the standard's numbering, split by the message's own separators and unescaped.

python-hl7's tree changes depth with the content (a field with no component separator is a
plain string), so fields are read back as text and split here; repetitions are all kept
(``extract_field`` keeps only the first).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

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
    repetition: str
    component: str
    subcomponent: str


class Segment:
    """One segment with field access in the standard's numbering (PID-3 is ``field(3)``)."""

    def __init__(self, message: hl7.Message, segment: hl7.Segment, seps: Seps, index: int):
        self._message = message
        self._segment = segment
        self._seps = seps
        self.name = str(segment[0])
        self.location = f"{self.name}[{index}]"

    def raw(self, number: int) -> str:
        """Field ``number`` as sent (escaped, all repetitions)."""
        if number >= len(self._segment):
            return ""
        return str(self._segment[number])

    def repetitions(self, number: int) -> list[list[str]]:
        """Every repetition of a field, each as its unescaped components."""
        raw = self.raw(number)
        if raw == "":
            return []
        return [
            [self._unescape(c) for c in rep.split(self._seps.component)]
            for rep in raw.split(self._seps.repetition)
        ]

    def components(self, number: int) -> list[str]:
        """The components of a field's first repetition, unescaped."""
        reps = self.repetitions(number)
        return reps[0] if reps else []

    def component(self, number: int, position: int = 1) -> str:
        """One component (1-based) of a field's first repetition, unescaped; '' if absent."""
        comps = self.components(number)
        return comps[position - 1].strip() if len(comps) >= position else ""

    def text(self, number: int) -> str:
        """A whole field as text: the first repetition, components joined by '^'."""
        return "^".join(self.components(number)).strip()

    def _unescape(self, text: str) -> str:
        if "\\" not in text:
            return text
        return str(self._message.unescape(text, app_map=_APP_ESCAPES))


def parse_segments(text: str) -> list[Segment]:
    """Every segment of one message (CR-separated text), MSH first."""
    text = _repair_encoding_characters(text)
    try:
        message = hl7.parse(text)
    except Exception as exc:  # python-hl7 raises bare exceptions of several types
        raise ParseError(f"python-hl7 could not parse the message: {exc}") from exc
    return list(_segments(message))


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


def _segments(message: hl7.Message) -> Iterator[Segment]:
    encoding = str(message.segment("MSH")[2])
    seps = Seps(repetition=encoding[1], component=encoding[0], subcomponent=encoding[3])
    counts: dict[str, int] = {}
    for segment in message:
        name = str(segment[0])
        counts[name] = counts.get(name, 0) + 1
        yield Segment(message, segment, seps, counts[name])


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
