"""HL7 v2.5.1 text for the simulated feed: ORU^R01 messages and FHS/BHS batch files.

Segments end with CR. Times carry the hospital's offset (``+0800``). Text fields are escaped
(``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\``); names are written in Chinese characters only when the
message declares ``UNICODE UTF-8`` in MSH-18, in pinyin otherwise (so that an undeclared
message is plain ASCII).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from adapter.simulate.model import FILLER_AUTHORITY, Message, Order, Patient, Result

CR = "\r"
ENCODING = "^~\\&"
SENDER = ("NTC-LIS^^", "NTCH^^")
RECEIVER = ("TRIALBRIDGE", "NTCH")
PLACER_AUTHORITY = "NTCH-HIS"
UTF8 = "UNICODE UTF-8"
_ESCAPES = (("\\", "\\E\\"), ("|", "\\F\\"), ("^", "\\S\\"), ("&", "\\T\\"), ("~", "\\R\\"))


def escape(text: str) -> str:
    """``text`` with HL7's delimiters escaped (the escape character first)."""
    for raw, escaped in _ESCAPES:
        text = text.replace(raw, escaped)
    return text


def ts(moment: datetime | None) -> str:
    """An HL7 DTM with seconds and its UTC offset, e.g. ``20240115073000+0800``."""
    return "" if moment is None else moment.strftime("%Y%m%d%H%M%S%z")


def segment(name: str, fields: Mapping[int, str]) -> str:
    """A segment from its numbered fields (missing ones empty, trailing ones dropped)."""
    last = max((i for i, text in fields.items() if text), default=0)
    return "|".join([name, *(fields.get(i, "") for i in range(1, last + 1))])


def header_segment(name: str, fields: Mapping[int, str]) -> str:
    """MSH, FHS or BHS: field 1 is the field separator itself, field 2 the encoding
    characters; ``fields`` numbers the rest from 3."""
    return f"{name}|{ENCODING}" + segment("", fields)[2:]


def msh(control_id: str, sent: datetime, charset: str) -> str:
    fields = {
        3: SENDER[0],
        4: SENDER[1],
        5: RECEIVER[0],
        6: RECEIVER[1],
        7: ts(sent),
        9: "ORU^R01^ORU_R01",
        10: control_id,
        11: "P",
        12: "2.5.1",
        15: "NE",
        16: "NE",
        17: "CHN",
        18: charset,
    }
    return header_segment("MSH", fields)


def pid(patient: Patient, utf8: bool) -> str:
    ids = "~".join((f"{patient.mrn}^^^{patient.authority}^MR", *patient.other_ids))
    if utf8:
        name = f"{patient.family_hanzi}^{patient.given_hanzi}"
    else:
        name = f"{patient.family}^{patient.given}"
    return segment(
        "PID", {1: "1", 3: ids, 5: name, 7: patient.birth_date.strftime("%Y%m%d"), 8: patient.sex}
    )


def orc(order: Order) -> str:
    return segment(
        "ORC",
        {
            1: "RE",
            2: f"{order.placer}^{PLACER_AUTHORITY}",
            3: f"{order.filler}^{FILLER_AUTHORITY}",
            5: "CM",
        },
    )


def obr(index: int, order: Order) -> str:
    section = "HM" if order.service_code in {"CBC", "COAG"} else "CH"
    return segment(
        "OBR",
        {
            1: str(index),
            2: f"{order.placer}^{PLACER_AUTHORITY}",
            3: f"{order.filler}^{FILLER_AUTHORITY}",
            4: f"{order.service_code}^{escape(order.service_text)}^L",
            7: ts(order.collected),
            14: ts(order.received),
            22: ts(order.reported),
            24: section,
            25: order.status,
        },
    )


def unit_text(unit: str, utf8: bool) -> str:
    """The micro sign only where the message declares UTF-8."""
    return unit if utf8 else unit.replace("µ", "u")


def obx(index: int, result: Result, collected: datetime, utf8: bool) -> str:
    return segment(
        "OBX",
        {
            1: str(index),
            2: result.value_type,
            3: f"{result.code}^{escape(result.text)}^{result.system}",
            4: result.sub_id,
            5: result.value,
            6: escape(unit_text(result.unit, utf8)),
            7: result.ref_range,
            8: result.flag,
            11: result.status,
            14: ts(collected),
            19: ts(result.analysed),
        },
    )


def nte(text: str) -> str:
    return segment("NTE", {1: "1", 2: "L", 3: escape(text)})


def order_segments(index: int, order: Order, utf8: bool) -> Iterable[str]:
    yield orc(order)
    yield obr(index, order)
    if order.note:
        yield nte(order.note)
    for number, result in enumerate(order.results, start=1):
        yield obx(number, result, order.collected, utf8)
        if result.note:
            yield nte(result.note)


def message_text(control_id: str, message: Message, charset: str) -> str:
    """One ORU^R01, every segment terminated by CR."""
    utf8 = charset == UTF8
    lines = [
        msh(control_id, message.sent, charset),
        pid(message.patient, utf8),
        segment("PV1", {1: "1", 2: message.patient_class}),
    ]
    for index, order in enumerate(message.orders, start=1):
        lines.extend(order_segments(index, order, utf8))
    return "".join(line + CR for line in lines)


def batch_text(batch_id: str, created: datetime, bodies: list[str]) -> str:
    """Messages wrapped in FHS/BHS ... BTS/FTS (one batch in one file)."""
    header = {3: SENDER[0], 4: SENDER[1], 5: RECEIVER[0], 6: RECEIVER[1], 7: ts(created)}
    fhs = header_segment("FHS", {**header, 9: f"{batch_id}.hl7", 11: batch_id})
    bhs = header_segment("BHS", {**header, 9: "ORU", 11: batch_id})
    trailer = f"BTS|{len(bodies)}{CR}FTS|1{CR}"
    return fhs + CR + bhs + CR + "".join(bodies) + trailer
