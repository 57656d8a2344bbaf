"""Text of one ORU^R01 -> :class:`Report`, with python-hl7 doing the segment parsing.

python-hl7's tree changes depth with the content (a field with no component separator is a
plain string), so fields are read back as text and split here by the message's own
separators, then unescaped; repetitions are all kept (``extract_field`` keeps only the first).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import hl7

from adapter.errors import ParseError
from adapter.parse.model import Coding, EntityId, Order, PatientIdentifier, Report, Result

# Escapes with a meaning beyond the separators: line break, highlighting on/off (dropped).
_APP_ESCAPES = {".br": "\n", "H": "", "N": ""}
_STANDARD_ENCODING = "^~\\&"
# "^~\\&" (the escape character doubled) comes from a source-code string literal copied into
# a feed; it is unambiguous, so it is repaired rather than refused.
_DOUBLED_ESCAPE = "^~\\\\&"


@dataclass(frozen=True, slots=True)
class _Seps:
    repetition: str
    component: str
    subcomponent: str


class _Segment:
    """One segment with field access in the standard's numbering (PID-3 is ``field(3)``)."""

    def __init__(self, message: hl7.Message, segment: hl7.Segment, seps: _Seps, index: int):
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


def parse_report(text: str, *, charset: str = "utf-8") -> Report:
    """Parse the text of one ORU^R01 message (CR-separated) into a :class:`Report`."""
    text = _repair_encoding_characters(text)
    try:
        message = hl7.parse(text)
    except Exception as exc:  # python-hl7 raises bare exceptions of several types
        raise ParseError(f"python-hl7 could not parse the message: {exc}") from exc
    segments = list(_segments(message))
    msh = segments[0]
    message_id = msh.component(10)
    try:
        return _build_report(msh, segments[1:], charset)
    except ParseError as exc:
        raise exc.with_message_id(message_id) from exc


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


def _segments(message: hl7.Message) -> Iterator[_Segment]:
    encoding = str(message.segment("MSH")[2])
    seps = _Seps(repetition=encoding[1], component=encoding[0], subcomponent=encoding[3])
    counts: dict[str, int] = {}
    for segment in message:
        name = str(segment[0])
        counts[name] = counts.get(name, 0) + 1
        yield _Segment(message, segment, seps, counts[name])


def _build_report(msh: _Segment, rest: list[_Segment], charset: str) -> Report:
    message_type = "^".join(msh.components(9)[:2])
    if not message_type.startswith("ORU"):
        raise ParseError(
            f"message type is {message_type or 'empty'!r}, not ORU^R01",
            location="MSH.9",
            hint="only unsolicited observation results (ORU^R01) are carried",
        )
    pids = [s for s in rest if s.name == "PID"]
    if not pids:
        raise ParseError(
            "the message has no PID segment, so its results cannot be tied to a patient",
            location="PID",
            hint="the LIS must send PID with PID-3 identifiers before the orders",
        )
    return Report(
        message_id=msh.component(10),
        message_type=message_type,
        sending_application=msh.component(3),
        sending_facility=msh.component(4),
        sent_at=msh.component(7),
        version=msh.component(12),
        charset=charset,
        patient_ids=_patient_ids(pids[0]),
        orders=tuple(_orders(rest)),
    )


def _patient_ids(pid: _Segment) -> tuple[PatientIdentifier, ...]:
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


def _orders(segments: list[_Segment]) -> Iterator[Order]:
    """Group OBR / OBX / NTE segments into orders; ORC numbers are a fallback for OBR's."""
    orc: _Segment | None = None
    group: list[_Segment] = []
    for segment in segments:
        if segment.name == "ORC":
            orc = segment
        elif segment.name == "OBR":
            if group:
                yield _order(group, orc)
            group = [segment]
        elif group and segment.name in ("OBX", "NTE"):
            group.append(segment)
    if group:
        yield _order(group, orc)


def _order(group: list[_Segment], orc: _Segment | None) -> Order:
    obr, rest = group[0], group[1:]
    order_notes: list[str] = []
    results: list[Result] = []
    pending: tuple[_Segment, list[str]] | None = None
    for segment in rest:
        if segment.name == "NTE":
            note = _note(segment)
            (pending[1] if pending else order_notes).append(note)
        else:
            if pending:
                results.append(_result(*pending))
            pending = (segment, [])
    if pending:
        results.append(_result(*pending))
    return Order(
        location=obr.location,
        placer=_entity(obr, 2) or (_entity(orc, 2) if orc else None),
        filler=_entity(obr, 3) or (_entity(orc, 3) if orc else None),
        service=_codings(obr, 4),
        observed_at=obr.component(7),
        reported_at=obr.component(22),
        status=obr.component(25),
        results=tuple(results),
        notes=tuple(n for n in order_notes if n),
    )


def _note(nte: _Segment) -> str:
    return "\n".join("^".join(rep).rstrip() for rep in nte.repetitions(3)).strip()


def _entity(segment: _Segment, number: int) -> EntityId | None:
    value = segment.component(number, 1)
    if not value:
        return None
    # EI: entity id ^ namespace id ^ universal id ^ type; either id names the issuer.
    namespace = segment.component(number, 2) or segment.component(number, 3)
    return EntityId(value=value, namespace=namespace)


def _codings(segment: _Segment, number: int) -> tuple[Coding, ...]:
    comps = segment.components(number)
    padded = [c.strip() for c in comps] + [""] * (6 - len(comps))
    codings = [Coding(padded[0], padded[1], padded[2]), Coding(padded[3], padded[4], padded[5])]
    return tuple(c for c in codings if c.code or c.text)


def _result(obx: _Segment, notes: list[str]) -> Result:
    unit = _codings(obx, 6)
    return Result(
        location=obx.location,
        set_id=obx.component(1),
        value_type=obx.component(2).upper(),
        codings=_codings(obx, 3),
        sub_id=obx.component(4),
        values=tuple("^".join(rep).strip() for rep in obx.repetitions(5)),
        unit=unit[0] if unit else None,
        reference_range=obx.text(7),
        flags=tuple(rep[0].strip() for rep in obx.repetitions(8) if rep and rep[0].strip()),
        status=obx.component(11).upper(),
        observed_at=obx.component(14),
        analysed_at=obx.component(19),
        notes=tuple(n for n in notes if n),
    )
