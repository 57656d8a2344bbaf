"""Text of one ORU^R01 -> :class:`Report` (segments read by :mod:`adapter.parse.segments`)."""

from __future__ import annotations

from collections.abc import Iterator

from adapter.errors import ParseError
from adapter.parse.model import Coding, EntityId, Order, Report, Result
from adapter.parse.segments import Segment, parse_segments, patient_ids


def parse_report(text: str, *, charset: str = "utf-8") -> Report:
    """Parse the text of one ORU^R01 message (CR-separated) into a :class:`Report`."""
    segments = parse_segments(text, charset)
    msh = segments[0]
    message_id = msh.component(10)
    try:
        return _build_report(msh, segments[1:], charset)
    except ParseError as exc:
        raise exc.with_message_id(message_id) from exc


def _build_report(msh: Segment, rest: list[Segment], charset: str) -> Report:
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
        patient_ids=patient_ids(pids[0]),
        orders=tuple(_orders(rest)),
    )


def _orders(segments: list[Segment]) -> Iterator[Order]:
    """Group OBR / OBX / NTE segments into orders; ORC numbers are a fallback for OBR's."""
    orc: Segment | None = None
    group: list[Segment] = []
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


def _order(group: list[Segment], orc: Segment | None) -> Order:
    obr, rest = group[0], group[1:]
    order_notes: list[str] = []
    results: list[Result] = []
    pending: tuple[Segment, list[str]] | None = None
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


def _note(nte: Segment) -> str:
    return "\n".join("^".join(rep).rstrip() for rep in nte.repetitions(3)).strip()


def _entity(segment: Segment, number: int) -> EntityId | None:
    value = segment.component(number, 1)
    if not value:
        return None
    # EI: entity id ^ namespace id ^ universal id ^ type; either id names the issuer.
    namespace = segment.component(number, 2) or segment.component(number, 3)
    return EntityId(value=value, namespace=namespace)


def _codings(segment: Segment, number: int) -> tuple[Coding, ...]:
    comps = segment.components(number)
    padded = [c.strip() for c in comps] + [""] * (6 - len(comps))
    codings = [Coding(padded[0], padded[1], padded[2]), Coding(padded[3], padded[4], padded[5])]
    return tuple(c for c in codings if c.code or c.text)


def _result(obx: Segment, notes: list[str]) -> Result:
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
