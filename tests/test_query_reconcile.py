"""The LIS reconciliation pull, distinct MSH-10s and the queries' conformance, against the
LIS simulator over a real socket, into a real store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, time, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from adapter.config import DEFAULT_CONFIG, load_settings
from adapter.errors import ConfigError, SourceError
from adapter.intake import Intake
from adapter.parse import parse_bytes
from adapter.service import metrics
from adapter.service.runner import current_status
from adapter.service.status import render
from adapter.service.wiring import sources_from_config
from adapter.sources import Background, QuerySource, Recorder
from adapter.sources.config import QueryConfig, load_sources_config, sources_config
from adapter.sources.lis_simulator import LisSimulator
from adapter.sources.query_source import Reconciliation
from adapter.sources.reconcile import Cadence, Record, window
from adapter.store import open_store
from adapter.store.schema import messages
from adapter.store.service import ServiceStore
from adapter.tools.conformance import check_sent
from adapter.trial.enrolment import EnrolledSubject
from adapter.trial.registry import Registry
from adapter.trial.study import load_study
from tests.messages import ALT, obx, oru

CST = timezone(timedelta(hours=8))
REPORTED = "20240115093000+0800"  # what tests/messages.py writes in MSH-7 and OBR-22
OBSERVED = "20240115083000+0800"  # and in OBR-7 and OBX-14


def result(
    order: str, reported: str, mrn: str = "MRN001", value: str = "42", status: str = "F"
) -> bytes:
    text = oru(
        obx(1, ALT, value, "U/L", status=status), message_id=f"M{order}", mrn=mrn, order=order
    )
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
    simulator.add(result("BASE", "20240110080000+0800"))  # baseline, before enrolment
    with Background(simulator.serve):
        simulator.wait_ready()
        yield simulator


def source(lis: LisSimulator, clock: Clock, **options: object) -> QuerySource:
    config = QueryConfig(enabled=True, port=lis.port or 0, **options)  # type: ignore[arg-type]
    return QuerySource(config, events=Recorder(), clock=clock)


def reconciliation(pull: QuerySource) -> Reconciliation:
    found = pull.reconciliation()
    assert found is not None
    return found


def orders(intake: Intake) -> list[str]:
    with intake.store.engine.connect() as conn:
        raws = conn.scalars(select(messages.c.raw).order_by(messages.c.id)).all()
    return [parse_bytes(raw)[0].report.orders[0].filler.value for raw in raws]  # type: ignore[union-attr]


def inbox_rows(intake: Intake) -> int:
    with intake.store.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(messages)) or 0)


# The reconciliation pull ----------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["qry", "qbp"])
def test_a_result_released_after_the_watermark_passed_it_comes_once_and_is_counted(
    intake: Intake, lis: LisSimulator, protocol: str
) -> None:
    clock = Clock(datetime(2024, 1, 16, 10, 0, tzinfo=CST))
    pull = source(lis, clock, protocol=protocol)
    assert pull.poll(intake) == 1  # BASE; the watermark is now 2024-01-16 10:00

    # Verified at 08:00, released by the lab only now: two hours behind the watermark,
    # beyond the 5-minute overlap.
    lis.add(result("LATE", "20240116080000+0800"))
    clock.now = datetime(2024, 1, 17, 10, 0, tzinfo=CST)
    assert pull.poll(intake) == 0  # the incremental pull never asks that far back
    assert orders(intake) == ["BASE"]

    reconcile = reconciliation(pull)
    assert reconcile.poll(intake) == 1  # never run: due at once
    assert orders(intake) == ["BASE", "LATE"]
    record = reconcile.record(intake.store)
    assert (record.subjects, record.checked, record.missed, record.missed_total) == (1, 2, 1, 1)
    assert isinstance(pull.events, Recorder)
    assert pull.events.named("query.reconciled") == [{"subject": "DDSC-T01", "missed": 1}]

    # Once: the next run finds it again, but the inbox already has it; nor does the
    # incremental pull bring it.
    clock.now = datetime(2024, 1, 18, 2, 0, tzinfo=CST)  # the next night's 02:00 slot
    assert reconcile.poll(intake) == 0
    assert pull.poll(intake) == 0
    assert orders(intake) == ["BASE", "LATE"]
    record = reconcile.record(intake.store)
    assert (record.checked, record.missed, record.missed_total) == (2, 0, 1)


def test_a_correction_back_dated_to_its_first_report_time_is_found(
    intake: Intake, lis: LisSimulator
) -> None:
    clock = Clock(datetime(2024, 1, 16, 10, 0, tzinfo=CST))
    pull = source(lis, clock)
    lis.add(result("F1", "20240115090000+0800", value="42"))
    assert pull.poll(intake) == 2
    # The lab corrects the value in place, keeping the original report time.
    lis.add(result("F1", "20240115090000+0800", value="45", status="C"))
    clock.now = datetime(2024, 1, 16, 12, 0, tzinfo=CST)
    assert pull.poll(intake) == 0
    assert reconciliation(pull).run(intake) == 1
    assert orders(intake) == ["BASE", "F1", "F1"]


def test_the_status_and_the_metric_say_what_the_reconciliation_found(
    own_state_store: str,
    intake: Intake,
    lis: LisSimulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Wired as ``trialbridge run`` wires it: its own job, the metric, the status line."""
    monkeypatch.setenv("TRIALBRIDGE_SOURCES_QUERY_ENABLED", "true")
    monkeypatch.setenv("TRIALBRIDGE_SOURCES_QUERY_PORT", str(lis.port))
    specs = {spec.name: spec for spec in sources_from_config(load_settings(), DEFAULT_CONFIG)}
    assert set(specs) == {"query", "query-reconcile"}
    assert specs["query-reconcile"].interval_seconds == 300  # checks whether a run is due
    incremental, reconcile = specs["query"].source, specs["query-reconcile"].source
    assert isinstance(incremental, QuerySource) and isinstance(reconcile, Reconciliation)

    def missed() -> float:
        name = "trialbridge_query_reconciliation_missed_total"
        return metrics.REGISTRY.get_sample_value(name, {"source": "query"}) or 0.0

    before = missed()
    assert incremental.poll(intake) == 1  # real clock: the whole window up to now
    lis.add(result("LATE", "20240116080000+0800"))  # released long after its report time
    assert incremental.poll(intake) == 0
    assert reconcile.poll(intake) == 1
    assert reconcile.poll(intake) == 0  # not due again before the next 02:00
    assert missed() - before == 1

    status = current_status(ServiceStore(intake.store))
    assert status.as_dict()["reconciliation"]["lis-query"]["missed"] == 1
    line = next(x for x in render(status) if x.startswith("LIS reconciliation"))
    assert "1 result(s) the incremental pull had missed, 1 in all (should be 0" in line
    attention = status.as_dict()["attention"]
    assert any(
        a.startswith("LIS reconciliation lis-query: its last run found 1") for a in attention
    )


def test_a_reconciliation_cut_short_by_a_killed_lis_is_run_again_and_loses_no_count(
    intake: Intake, lis: LisSimulator, enrol: Callable[..., EnrolledSubject]
) -> None:
    enrol("MRN002", "DDSC-T02")
    lis.add(result("B2", "20240110090000+0800", mrn="MRN002"))
    clock = Clock(datetime(2024, 1, 16, 10, 0, tzinfo=CST))
    pull = source(lis, clock)
    assert pull.poll(intake) == 2
    lis.add(result("LATE1", "20240116080000+0800"))
    lis.add(result("LATE2", "20240116080000+0800", mrn="MRN002"))
    reconcile = reconciliation(pull)

    lis.drop_after = lis.queries + 1  # answers the first subject's query, then dies
    with pytest.raises(SourceError):
        reconcile.poll(intake)
    record = reconcile.record(intake.store)
    assert (record.at, record.pending_missed, record.missed_total) == (None, 1, 1)

    lis.drop_after = None  # back up: the next check runs it again (no run completed)
    clock.now += timedelta(minutes=5)
    assert reconcile.poll(intake) == 1  # only the second subject's is new now
    record = reconcile.record(intake.store)
    assert (record.missed, record.missed_total, record.pending_missed) == (2, 2, 0)
    assert sorted(orders(intake)) == ["B2", "BASE", "LATE1", "LATE2"]


def test_a_look_back_limits_what_the_reconciliation_asks(intake: Intake, lis: LisSimulator) -> None:
    clock = Clock(datetime(2024, 1, 20, 10, 0, tzinfo=CST))
    pull = source(lis, clock, reconcile_lookback_days=2.0)
    pull.poll(intake)
    lis.add(result("OLD", "20240112080000+0800"))  # eight days back: beyond the look-back
    lis.add(result("RECENT", "20240119080000+0800"))
    assert reconciliation(pull).run(intake) == 1
    assert orders(intake) == ["BASE", "RECENT"]


def test_a_subject_never_pulled_is_left_to_its_first_incremental_pull(
    intake: Intake, lis: LisSimulator
) -> None:
    pull = source(lis, Clock(datetime(2024, 1, 16, 10, 0, tzinfo=CST)))
    assert reconciliation(pull).run(intake) == 0
    assert inbox_rows(intake) == 0
    assert lis.queries == 0


def test_reconciliation_can_be_switched_off(lis: LisSimulator) -> None:
    pull = source(lis, Clock(datetime(2024, 1, 16, tzinfo=CST)), reconcile_every_hours=0.0)
    assert pull.reconciliation() is None


# The cadence and the window (pure) --------------------------------------------------------


NIGHTLY = Cadence(timedelta(hours=24), time(2, 0), CST)


@pytest.mark.parametrize(
    ("last", "now", "due"),
    [
        (None, "2024-01-16T15:00", True),  # never run: at once
        ("2024-01-16T02:00:30", "2024-01-17T01:59", False),
        ("2024-01-16T02:00:30", "2024-01-17T02:00", True),
        ("2024-01-16T15:00", "2024-01-17T01:00", False),  # a first run by day waits for 02:00
        ("2024-01-17T02:04", "2024-01-17T02:09", False),  # a restart does not run it again
    ],
)
def test_a_nightly_run_is_due_once_a_night_at_its_hour(
    last: str | None, now: str, due: bool
) -> None:
    started = datetime.fromisoformat(last).replace(tzinfo=CST) if last else None
    moment = datetime.fromisoformat(now).replace(tzinfo=CST)
    assert NIGHTLY.due(started, moment) is due


def test_runs_every_six_hours_fall_on_a_grid_from_their_hour() -> None:
    cadence = Cadence(timedelta(hours=6), time(2, 0), CST)
    slot = cadence.slot(datetime(2024, 1, 16, 13, 59, tzinfo=CST))
    assert slot == datetime(2024, 1, 16, 8, 0, tzinfo=CST)


def test_the_window_stops_where_the_incremental_pull_looks_again() -> None:
    first = datetime(2024, 1, 1, tzinfo=CST)
    mark = datetime(2024, 1, 16, 10, 0, tzinfo=CST)
    five = timedelta(minutes=5)
    assert window(first, mark, five, None) == (first, mark - five)
    assert window(first, mark, five, timedelta(days=2)) == (mark - timedelta(days=2), mark - five)
    assert window(first, first + five, five, None) is None


def test_the_record_survives_its_json_and_ignores_unknown_keys() -> None:
    record = Record().found(2)
    again = Record.from_json(record.to_json().replace("{", '{"later_key": 1, ', 1))
    assert again == record
    assert (again.pending_missed, again.missed_total) == (2, 2)


# Distinct MSH-10s -------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["qry", "qbp"])
def test_every_query_and_continuation_has_its_own_msh10(
    intake: Intake, lis: LisSimulator, protocol: str
) -> None:
    for day in range(2, 9):
        lis.add(result(f"D{day}", f"2024010{day}080000+0800"))
    lis.page_size = 2  # 8 results: 4 pages
    clock = Clock(datetime(2024, 1, 16, tzinfo=CST))
    pull = source(lis, clock, protocol=protocol)
    assert pull.poll(intake) == 8
    clock.now += timedelta(days=1)
    lis.add(result("NEW", "20240116120000+0800"))
    assert pull.poll(intake) == 1
    assert reconciliation(pull).run(intake) == 0

    sent = lis.control_ids
    assert len(sent) == lis.queries == 4 + 1 + 5  # pages of each pull, all answered
    assert len(set(sent)) == len(sent)  # reuse would fail here (and at the LIS: AR)
    tags = [_query_tag(raw, protocol) for raw in lis.requests]
    assert len(set(tags[:4])) == 1 and tags[4] != tags[0]  # continuations keep the query's


def _query_tag(raw: bytes, protocol: str) -> str:
    segment = "QRD" if protocol == "qry" else "QPD"
    number = 4 if protocol == "qry" else 2
    line = next(s for s in raw.decode().split("\r") if s.startswith(segment))
    return line.split("|")[number]


def test_a_lis_that_refuses_reused_control_ids_refuses_a_reused_one(lis: LisSimulator) -> None:
    request = (
        b"MSH|^~\\&|TRIALBRIDGE||||20240116000000+0800||QRY^R02^QRY_R02|SAME|P|2.4\r"
        b"QRD|20240116000000+0800|R|I|Q1|||9999^RD|MRN001^^^^^^^^NTCH|RES|ALL\r"
        b"QRF|LAB|20240101000000+0800|20240116000000+0800|||REP|ANY|ALL\r"
    )
    assert b"MSA|AA|SAME" in lis.answer(request)
    assert b"MSA|AR|SAME" in lis.answer(request)


# Conformance of every query kind with the default configuration -----------------------


@pytest.mark.parametrize("protocol", ["qry", "qbp"])
def test_every_query_sent_with_the_shipped_configuration_validates(
    intake: Intake, lis: LisSimulator, protocol: str
) -> None:
    environ = {
        "TRIALBRIDGE_SOURCES_QUERY_ENABLED": "true",
        "TRIALBRIDGE_SOURCES_QUERY_PORT": str(lis.port),
        "TRIALBRIDGE_SOURCES_QUERY_PROTOCOL": protocol,
    }
    config = load_sources_config(DEFAULT_CONFIG, environ).query
    assert config.lis_application == ""  # the shipped default
    lis.add(result("MORE", "20240111080000+0800"))
    lis.page_size = 1
    pull = QuerySource(config, clock=Clock(datetime(2024, 1, 16, tzinfo=CST)))
    assert pull.poll(intake) == 2
    assert reconciliation(pull).run(intake) == 0

    kinds = {(b"DSC|" in raw) for raw in lis.requests}
    assert kinds == {False, True}  # first queries and continuations
    for raw in lis.requests:  # the check ``trialbridge check --conformance`` makes
        checked = check_sent(raw)
        assert checked.version == ("2.4" if protocol == "qry" else "2.5.1")
        assert checked.conformant, checked.errors
        # Only the validator's own limits (QBP: parameters after QPD-3, a Z event) remain.
        assert {p.kind for p in checked.problems} <= {"validator"}, checked.problems
    if protocol == "qry":
        assert check_sent(lis.requests[0]).problems == ()


def test_qrf1_is_the_where_subject_then_the_lis_application_then_lab() -> None:
    def qrf1(**query: str) -> str:
        config = sources_config({"query": query}).query
        pull = QuerySource(config)
        return pull.dialect.qrf_where

    assert qrf1() == "LAB"
    assert qrf1(lis_application="NTC-LIS") == "NTC-LIS"
    assert qrf1(lis_application="NTC-LIS", where_subject="LAB~HEMO") == "LAB~HEMO"


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ({"protocol": "qbp", "query_name": ""}, "sources.query.query_name must name the query"),
        ({"reconcile_at": "2am"}, "sources.query.reconcile_at must be a time of day HH:MM"),
        ({"reconcile_every_hours": -1}, "sources.query.reconcile_every_hours must be at least"),
    ],
)
def test_a_query_configuration_that_cannot_work_is_refused_naming_the_key(
    query: dict[str, object], says: str
) -> None:
    with pytest.raises(ConfigError, match=says):
        sources_config({"query": query})


def test_the_reconciliation_keys_are_read() -> None:
    config = sources_config(
        {
            "query": {
                "reconcile_every_hours": "6",
                "reconcile_at": "23:30",
                "reconcile_lookback_days": 30,
            }
        }
    ).query
    assert config.reconcile_every_hours == 6.0
    assert config.reconcile_at == time(23, 30)
    assert config.reconcile_lookback_days == 30.0
