"""The LIS query pull against the LIS simulator over a real socket, into a real store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from adapter.errors import QueryError
from adapter.intake import Intake
from adapter.parse import parse_bytes
from adapter.sources import Background, QuerySource, Recorder
from adapter.sources.config import QueryConfig
from adapter.sources.lis_simulator import LisSimulator
from adapter.sources.query import Dialect, PatientQuery, build_query, read_answer
from adapter.store import open_store
from adapter.store.schema import messages
from adapter.trial.enrolment import EnrolledSubject
from adapter.trial.registry import Registry
from adapter.trial.study import load_study
from tests.messages import ALT, obx, oru

CST = timezone(timedelta(hours=8))
REPORTED = "20240115093000+0800"  # what tests/messages.py writes in MSH-7 and OBR-22
OBSERVED = "20240115083000+0800"  # and in OBR-7 and OBX-14


def result(order: str, reported: str, mrn: str = "MRN001", value: str = "42") -> bytes:
    text = oru(obx(1, ALT, value, "U/L"), message_id=f"M{order}", mrn=mrn, order=order)
    return text.replace(REPORTED, reported).replace(OBSERVED, reported).encode()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def intake(own_state_store: str, enrol: Callable[..., EnrolledSubject]) -> Iterator[Intake]:
    enrol()  # MRN001^NTCH, day 0 2024-01-15: the baseline window opens 2024-01-01
    with open_store(own_state_store) as store:
        yield Intake(store, Registry(store, load_study()))


@pytest.fixture
def lis() -> Iterator[LisSimulator]:
    simulator = LisSimulator()
    simulator.add(result("OLD", "20231220080000+0800"))  # before the baseline window
    simulator.add(result("BASE", "20240110080000+0800"))  # baseline, before enrolment
    simulator.add(result("OTHER", "20240110080000+0800", mrn="X999"))
    with Background(simulator.serve):
        simulator.wait_ready()
        yield simulator


def pull(lis: LisSimulator, clock: Clock, **options: object) -> QuerySource:
    config = QueryConfig(enabled=True, port=lis.port or 0, **options)  # type: ignore[arg-type]
    return QuerySource(config, events=Recorder(), clock=clock)


def orders(intake: Intake) -> list[str]:
    with intake.store.engine.connect() as conn:
        raws = conn.scalars(select(messages.c.raw).order_by(messages.c.id)).all()
    return [parse_bytes(raw)[0].report.orders[0].filler.value for raw in raws]  # type: ignore[union-attr]


@pytest.mark.parametrize("protocol", ["qry", "qbp"])
def test_baseline_on_the_first_pull_then_only_new_results(
    intake: Intake, lis: LisSimulator, protocol: str
) -> None:
    clock = Clock(datetime(2024, 1, 16, 10, 0, tzinfo=CST))
    source = pull(lis, clock, protocol=protocol)
    assert source.poll(intake) == 1
    assert orders(intake) == ["BASE"]
    assert source.poll(intake) == 0  # nothing new (the overlap re-asks the last 5 minutes)

    lis.add(result("WEEK1", "20240122080000+0800"))
    clock.now = datetime(2024, 1, 23, 10, 0, tzinfo=CST)
    assert source.poll(intake) == 1
    assert orders(intake) == ["BASE", "WEEK1"]


def test_the_watermark_survives_a_restart_and_moves_only_after_commit(
    own_state_store: str, intake: Intake, lis: LisSimulator
) -> None:
    first = datetime(2024, 1, 16, 10, 0, tzinfo=CST)
    pull(lis, Clock(first)).poll(intake)
    lis.add(result("LATE", "20240116095800+0800"))  # filed late, inside the overlap
    lis.add(result("NEXT", "20240117080000+0800"))
    with open_store(own_state_store) as store:  # a new process
        restarted = Intake(store, Registry(store, load_study()))
        source = pull(lis, Clock(datetime(2024, 1, 18, tzinfo=CST)))
        assert source.watermark(restarted, "DDSC-T01") == first
        assert source.poll(restarted) == 2
    assert orders(intake) == ["BASE", "LATE", "NEXT"]

    def failing(batch: object) -> object:
        raise OSError("disk full")

    intake.accept = failing  # type: ignore[assignment,method-assign]
    lis.add(result("LOST", "20240118120000+0800"))
    source = pull(lis, Clock(datetime(2024, 1, 19, tzinfo=CST)))
    with pytest.raises(OSError):
        source.poll(intake)
    assert source.watermark(intake, "DDSC-T01") == datetime(2024, 1, 18, tzinfo=CST)


def test_paged_answers_are_followed(intake: Intake, lis: LisSimulator) -> None:
    for day in range(2, 9):
        lis.add(result(f"D{day}", f"2024010{day}080000+0800"))
    lis.page_size = 2
    before = lis.queries
    source = pull(lis, Clock(datetime(2024, 1, 16, tzinfo=CST)))
    assert source.poll(intake) == 8
    assert lis.queries - before == 4
    assert orders(intake) == ["D2", "D3", "D4", "D5", "D6", "D7", "D8", "BASE"]


def test_a_refused_query_leaves_the_watermark_and_the_run_goes_on(
    intake: Intake, lis: LisSimulator
) -> None:
    source = pull(lis, Clock(datetime(2024, 1, 16, tzinfo=CST)), max_pages=1)
    lis.page_size = 1
    lis.add(result("MORE", "20240111080000+0800"))
    assert source.poll(intake) == 0
    assert source.watermark(intake, "DDSC-T01") is None
    assert isinstance(source.events, Recorder)
    assert source.events.named("query.refused") == [{"subject": "DDSC-T01", "error": "QueryError"}]


DIALECT = Dialect(lis_application="NTC-LIS", lis_facility="NTCH")
ASK = PatientQuery(
    "MRN001", "NTCH", datetime(2024, 1, 1, tzinfo=CST), datetime(2024, 1, 16, tzinfo=CST), "Q1"
)


def test_the_qry_query() -> None:
    text = build_query(DIALECT, ASK, datetime(2024, 1, 16, tzinfo=CST), control_id="M1").decode()
    msh, qrd, qrf, _ = text.split("\r")
    assert msh.split("|")[8:12] == ["QRY^R02^QRY_R02", "M1", "P", "2.4"]
    assert qrd == "QRD|20240116000000+0800|R|I|Q1|||9999^RD|MRN001^^^^^^^^NTCH|RES|ALL"
    assert qrf == "QRF|NTC-LIS|20240101000000+0800|20240116000000+0800|||REP|ANY|ALL"


def test_a_response_becomes_one_oru_per_order() -> None:
    response = (
        b"MSH|^~\\&|NTC-LIS|NTCH|TRIALBRIDGE||20240116||ORF^R04^ORF_R04|R1|P|2.4\r"
        b"MSA|AA|M1\rQRD|x|||Q1\rQRF|y\r"
        b"PID|1||MRN001^^^NTCH^MR\rPV1|1|O\r"
        b"ORC|RE|P1|F1\rOBR|1|P1|F1|LFT|||20240110080000+0800\rOBX|1|NM|ALT^ALT^L||42|U/L\r"
        b"OBR|2|P2|F2|TB|||20240110080000+0800\rOBX|1|NM|TBIL^TBIL^L||1.2|mg/dL\rNTE|1||note\r"
        b"DSC|2|I\r"
    )
    answer = read_answer(response, "M1", "Q1")
    assert answer.continuation == "2"
    first, second = (m.decode().split("\r") for m in answer.messages)
    assert first[0].split("|")[2:4] == ["NTC-LIS", "NTCH"]
    assert first[0].split("|")[6] == "20240110080000+0800"
    assert first[0].split("|")[8] == "ORU^R01^ORU_R01"
    assert [s[:3] for s in first] == ["MSH", "PID", "PV1", "ORC", "OBR", "OBX", ""]
    assert [s[:3] for s in second] == ["MSH", "PID", "PV1", "OBR", "OBX", "NTE", ""]
    assert (
        read_answer(response, "M1", "Q1").messages == answer.messages
    )  # same ids when asked again
    assert len({m.split(b"\r")[0].split(b"|")[9] for m in answer.messages}) == 2
    assert parse_bytes(answer.messages[1])[0].report is not None


@pytest.mark.parametrize(
    ("response", "says"),
    [
        (b"MSH|^~\\&|L||||x||ACK^R02|1|P|2.4\rMSA|AR|M1|unknown query\r", "unknown query"),
        (b"MSH|^~\\&|L||||x||RSP^Z02|1|P|2.5\rMSA|AA|M1\rQAK|Q1|AE\r", "QAK-2 AE"),
        # an answer to another message (an earlier page's request), or to none
        (b"MSH|^~\\&|L||||x||ORF^R04|1|P|2.4\rMSA|AA|M0\r", "message M0, not to M1"),
        (b"MSH|^~\\&|L||||x||ORF^R04|1|P|2.4\rMSA|AA\r", "MSA-2 is empty"),
        # an answer to the request, but about another query
        (b"MSH|^~\\&|L||||x||RSP^Z02|1|P|2.5\rMSA|AA|M1\rQAK|Q0|OK\r", "query Q0.*QAK-1"),
        (b"MSH|^~\\&|L||||x||ORF^R04|1|P|2.4\rMSA|AA|M1\rQRD|x|R|I|Q0\r", "QRD-4"),
        (b"hello", "not an HL7"),
    ],
)
def test_a_refusal_is_a_query_error(response: bytes, says: str) -> None:
    with pytest.raises(QueryError, match=says):
        read_answer(response, "M1", "Q1")


def test_the_simulator_refuses_what_is_not_a_query() -> None:
    ack = LisSimulator().answer(result("X", REPORTED)).decode()
    assert "MSA|AR|MX|" in ack
