"""The LIS query protocol, pure: building a query, and turning its response into ORU^R01s.

Two dialects (``sources.query.protocol``):

- ``qry``: original-mode ``QRY^R02`` (QRD: the patient in QRD-8, results ``RES``; QRF: the
  report-time window in QRF-2/3, qualifier ``REP``, any status) answered by ``ORF^R04``;
- ``qbp``: ``QBP^Z01^QBP_Q11`` (QPD-3 the patient, QPD-4/5 the window; RCP) answered by
  ``RSP``, as in an LIS's own conformance statement.

Either way a long answer is paged with DSC-1 (continuation pointer), asked again with a DSC.

Every message sent has its own MSH-10, the first query and each continuation alike; the query
itself is named by its query tag (QRD-4 / QPD-2), which the continuations repeat (HL7 v2.4
section 2.15.4, v2.5.1 section 5.6.3). A reply is matched on MSA-2 (the MSH-10 of the request
just sent) and on the query it answers: QAK-1 (RSP) or the echoed QRD-4 (ORF), when present.
A LIS that discards duplicate control ids would otherwise drop the follow-up pages.

Every required field of the query's declared version is filled (``check --conformance``
accepts it): QRF-1, the "where subject filter" (the department the query pertains to, v2.4
section 2.24.5.1), is ``where_subject``, by default the LIS's application or ``LAB``.

Responses are split into one ORU^R01 per patient and order group (PID with its PD1/PV1,
then ORC/OBR with their OBX/NTE...), so the rest of the flow sees the same messages a
listener would. The ORU's MSH-10 is derived from its content (``Q`` + 19 hex of sha256) and
MSH-7 is the order's report time, so the same result asked for twice is the same inbox row.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from adapter.errors import QueryError
from adapter.parse.decode import normalise
from adapter.sources.hl7v2 import DEFAULT_ENCODING, Header, escape, format_ts, read_header

PATIENT_SEGMENTS = ("PID", "PD1", "PV1", "PV2", "NK1")
SKIPPED_SEGMENTS = ("MSA", "ERR", "QAK", "QRD", "QRF", "QPD", "RCP", "DSC", "SFT")
ORDER_STARTS = ("ORC", "OBR")
PAGE_LIMIT = 9999  # results asked for in one response (QRD-7 / RCP-2)
DEFAULT_WHERE_SUBJECT = "LAB"  # QRF-1 when nothing better is known: the laboratory


@dataclass(frozen=True, slots=True)
class Dialect:
    """How this LIS is asked: protocol, version and the applications on both ends."""

    protocol: str = "qry"  # qry | qbp
    version: str = "2.4"
    query_name: str = "Z01^Lab results since^L"
    application: str = "TRIALBRIDGE"
    facility: str = ""
    lis_application: str = ""
    lis_facility: str = ""
    where_subject: str = ""  # QRF-1; empty: lis_application, else LAB

    @property
    def qrf_where(self) -> str:
        """QRF-1, which v2.4 requires: never empty."""
        return self.where_subject or self.lis_application or DEFAULT_WHERE_SUBJECT


@dataclass(frozen=True, slots=True)
class PatientQuery:
    """Results of one patient identifier reported in ``[since, until)``."""

    patient_id: str
    authority: str
    since: datetime
    until: datetime
    query_id: str  # QRD-4 / QPD-2 (the query tag), the same in every continuation


def build_query(
    dialect: Dialect,
    query: PatientQuery,
    now: datetime,
    *,
    control_id: str,
    continuation: str = "",
) -> bytes:
    """The query message (Latin-1 bytes; identifiers are ASCII in practice), ``control_id``
    its MSH-10: a new one for every message, continuations included."""
    if dialect.protocol == "qbp":
        body = _qbp(dialect, query)
        message_type = "QBP^Z01^QBP_Q11"
    else:
        body = _qry(query, now, dialect)
        message_type = "QRY^R02^QRY_R02"
    msh = "|".join(
        [
            "MSH",
            DEFAULT_ENCODING,
            dialect.application,
            dialect.facility,
            dialect.lis_application,
            dialect.lis_facility,
            format_ts(now),
            "",
            message_type,
            escape(control_id),
            "P",
            dialect.version,
        ]
    )
    segments = [msh, *body]
    if continuation:
        segments.append(f"DSC|{escape(continuation)}|I")
    return ("\r".join(segments) + "\r").encode("latin-1")


def _who(query: PatientQuery, authority_position: int) -> str:
    components = [escape(query.patient_id)] + [""] * (authority_position - 1)
    components[authority_position - 1] = escape(query.authority)
    return "^".join(components)


def _qry(query: PatientQuery, now: datetime, dialect: Dialect) -> list[str]:
    who = _who(query, 9)  # QRD-8 is an XCN: ID ^ ... ^ assigning authority (XCN-9)
    qrd = f"QRD|{format_ts(now)}|R|I|{query.query_id}|||{PAGE_LIMIT}^RD|{who}|RES|ALL"
    window = f"{format_ts(query.since)}|{format_ts(query.until)}"
    qrf = f"QRF|{escape(dialect.qrf_where)}|{window}|||REP|ANY|ALL"
    return [qrd, qrf]


def _qbp(dialect: Dialect, query: PatientQuery) -> list[str]:
    who = _who(query, 4) + "^MR"  # QPD-3 is a CX: ID ^^^ assigning authority ^ type
    window = f"{format_ts(query.since)}|{format_ts(query.until)}"
    return [f"QPD|{dialect.query_name}|{query.query_id}|{who}|{window}", f"RCP|I|{PAGE_LIMIT}^RD"]


@dataclass(frozen=True, slots=True)
class Answer:
    """What one response says: the results as ORU^R01 messages, and where to go on."""

    messages: tuple[bytes, ...]
    continuation: str  # DSC-1; empty when this was the last page


def read_answer(raw: bytes, control_id: str, query_id: str) -> Answer:
    """The ORU^R01 messages in an ORF^R04 or RSP response to the request whose MSH-10 was
    ``control_id``, for the query tagged ``query_id``; :class:`QueryError` when the LIS
    refused the query or answered something else (or another request)."""
    data = normalise(raw)
    header = read_header(data)
    if header is None:
        raise QueryError("the LIS answered with something that is not an HL7 message")
    segments = data.decode("latin-1").split("\r")
    fields = {s[:3]: s.split(header.separator) for s in reversed(segments)}
    _check_status(header, fields)
    _check_match(fields, control_id, query_id)
    continuation = _field(fields.get("DSC"), 1)
    groups = _groups(segments[1:], header.separator)
    return Answer(tuple(_oru(header, p, o) for p, o in groups), continuation)


def _field(fields: list[str] | None, number: int) -> str:
    return fields[number].strip() if fields is not None and len(fields) > number else ""


def _check_status(header: Header, fields: dict[str, list[str]]) -> None:
    msa = fields.get("MSA")
    code = _field(msa, 1).upper()
    if code not in ("AA", "CA"):
        text = _field(msa, 3) or _field(fields.get("ERR"), 8) or "no reason given"
        raise QueryError(f"the LIS refused the query (MSA-1 {code or 'missing'}): {text}")
    if header.message_type not in ("ORF", "RSP"):
        raise QueryError(f"the LIS answered {header.field(9)}, not ORF^R04 or RSP")
    status = _field(fields.get("QAK"), 2).upper()
    if status not in ("", "OK", "NF"):
        raise QueryError(f"the LIS could not answer the query (QAK-2 {status})")


def _check_match(fields: dict[str, list[str]], control_id: str, query_id: str) -> None:
    """The reply is to the request just sent (MSA-2 = its MSH-10, required) and to this
    query (QAK-1 / the echoed QRD-4 = the query tag, when the LIS sends them)."""
    answered = _field(fields.get("MSA"), 2)
    if answered != control_id:
        raise QueryError(
            f"the answer is to message {answered or '(none: MSA-2 is empty)'}, not to "
            f"{control_id}, the request just sent (MSA-2); the LIS must echo MSH-10 in MSA-2"
        )
    for segment, number, name in (("QAK", 1, "QAK-1"), ("QRD", 4, "QRD-4")):
        tag = _field(fields.get(segment), number)
        if tag and tag != query_id:
            raise QueryError(f"the answer is to query {tag}, not {query_id} ({name})")


def _groups(segments: list[str], separator: str) -> list[tuple[list[str], list[str]]]:
    """(patient segments, order segments) for each order in the response."""
    groups: list[tuple[list[str], list[str]]] = []
    patient: list[str] = []
    order: list[str] | None = None
    for segment in segments:
        name = segment[:3]
        if not segment or name in SKIPPED_SEGMENTS:
            continue
        if name == "PID":
            patient, order = [segment], None
        elif name in PATIENT_SEGMENTS and order is None and patient:
            patient.append(segment)
        elif name in ORDER_STARTS and not (name == "OBR" and _only_orc(order)):
            order = [segment]
            groups.append((patient, order))
        elif order is not None:
            order.append(segment)
        elif patient:
            patient.append(segment)  # NTE about the patient
    return [(p, o) for p, o in groups if p and any(s.startswith("OBR") for s in o)]


def _only_orc(order: list[str] | None) -> bool:
    return order is not None and len(order) == 1 and order[0].startswith("ORC")


def _oru(response: Header, patient: list[str], order: list[str]) -> bytes:
    sep = response.separator
    body = [*patient, *order]
    digest = hashlib.sha256("\r".join(body).encode("latin-1")).hexdigest()
    reported = _report_time(order, sep) or response.field(7)
    component = response.encoding[0]
    msh = [
        "MSH",
        response.encoding,
        response.field(3),
        response.field(4),
        response.field(5),
        response.field(6),
        reported,
        "",
        component.join(("ORU", "R01", "ORU_R01")),
        "Q" + digest[:19].upper(),
        response.field(11) or "P",
        response.field(12),
    ]
    if response.field(18):
        msh += ["", "", "", "", "", response.field(18)]
    return ("\r".join([sep.join(msh), *body]) + "\r").encode("latin-1")


def _report_time(order: list[str], separator: str) -> str:
    for segment in order:
        if segment.startswith("OBR"):
            fields = segment.split(separator)
            for number in (22, 7):
                if len(fields) > number and fields[number].strip():
                    return fields[number].strip()
    return ""
