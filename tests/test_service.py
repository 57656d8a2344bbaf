"""The service's stages in process, against a real store (SQLite and PostgreSQL) and the
local FHIR server: the outbox, per-subject order, backoff behind a failing server, dead
letters, leases, retention, replay and the operator's commands."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update

from adapter.cli import main
from adapter.config import load_settings
from adapter.fhir_client import FhirClient
from adapter.intake import Intake
from adapter.mappings import load_mappings
from adapter.service.config import service_config
from adapter.service.plan import Backoff, pick_due, retryable, split_bundle
from adapter.service.stages import Stages
from adapter.service.summary import PushSummary
from adapter.store import Store, incoming, open_store
from adapter.store.schema import messages, outbox
from adapter.store.service import Candidate, ServiceStore
from tests.messages import ALT, TBIL, obx, oru
from tests.test_service_support import FlakyProxy, provenance_ids, registry_of, wait_for

T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


# The pure core ---------------------------------------------------------------------------


def candidate(row_id: int, subject: str, seq: int, *, due: int = 0, claimed: int = 0) -> Candidate:
    until = T0 + timedelta(seconds=claimed) if claimed else None
    return Candidate(
        row_id, subject, seq, T0 + timedelta(seconds=due), "w" if claimed else None, until
    )


def test_pick_due_takes_each_subject_from_its_head_in_order() -> None:
    pending = [
        candidate(1, "A", 1), candidate(2, "A", 5, due=30), candidate(3, "A", 7),
        candidate(4, "B", 2), candidate(5, "B", 3),
        candidate(6, "C", 4, claimed=60), candidate(7, "C", 6),
        candidate(8, "D", 9),
    ]  # fmt: skip
    assert pick_due(pending, T0, 10, barrier=None) == [1, 4, 5, 8]
    assert pick_due(pending, T0, 10, barrier=8) == [1, 4, 5]  # message 8 not yet processed
    assert pick_due(pending, T0, 2, barrier=None) == [1, 4]
    assert pick_due(pending, T0, 10, barrier=None, ignore_schedule=True) == [1, 2, 3, 4, 5, 8]


def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    backoff = Backoff(base_seconds=1, max_seconds=60)
    rng = random.Random(1)
    delays = [backoff.delay(n, None, rng) for n in range(1, 9)]
    for n, delay in enumerate(delays, start=1):
        ceiling = min(60, 2 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert backoff.delay(1, 30.0, rng) == 30.0
    assert backoff.delay(1, 3600.0, rng) == 60.0


@pytest.mark.parametrize(
    ("status", "again"),
    [(None, True), (500, True), (503, True), (429, True), (401, True), (400, False),
     (412, False), (422, False)],
)  # fmt: skip
def test_what_a_failed_push_means(status: int | None, again: bool) -> None:
    assert retryable(status) is again


def test_a_big_transaction_is_cut_into_parts_that_each_stand_alone() -> None:
    shared = [
        {"fullUrl": f"urn:uuid:s{i}", "resource": {"resourceType": "Patient"}} for i in range(2)
    ]
    obs = [
        {"fullUrl": f"urn:uuid:o{i}", "resource": {"resourceType": "Observation"}} for i in range(7)
    ]
    targets = [{"reference": e["fullUrl"]} for e in shared + obs]
    prov = {
        "fullUrl": "urn:uuid:p",
        "resource": {"resourceType": "Provenance", "id": "p", "target": targets},
    }
    parts = split_bundle({"resourceType": "Bundle", "entry": [*shared, *obs, prov]}, 6)
    assert [len(p["entry"]) for p in parts] == [6, 6, 4]
    seen = [
        e["fullUrl"] for p in parts for e in p["entry"] if e["fullUrl"].startswith("urn:uuid:o")
    ]
    assert seen == [e["fullUrl"] for e in obs]
    provs = [p["entry"][-1]["resource"] for p in parts]
    assert len({p["id"] for p in provs}) == 3
    assert [t["reference"] for t in provs[2]["target"]] == [
        "urn:uuid:s0",
        "urn:uuid:s1",
        "urn:uuid:o6",
    ]


# The stages over a real store ------------------------------------------------------------


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(store_url: str, clock: Clock) -> Iterator[Store]:
    with open_store(store_url, clock=clock) as opened:
        yield opened


def enrol_two(store: Store) -> None:
    from adapter.trial.enrolment import HospitalId
    from adapter.trial.registry import NewSubject

    registry = registry_of(store)
    for n in (1, 2):
        registry.enrol(
            NewSubject(f"DDSC-T0{n}", (HospitalId(f"MRN00{n}", "NTCH"),), "low-dose",
                       datetime(2024, 1, 2).date(), (datetime(2024, 1, 15).date(),), "F", 1961)
        )  # fmt: skip


def stages(store: Store, client: FhirClient, **config: Any) -> Stages:
    settings = load_settings()
    return Stages(
        ServiceStore(store), client, settings, load_mappings(settings.mappings_dir),
        registry_of(store), service_config(config), rng=random.Random(7),
    )  # fmt: skip


def take_in(store: Store, *texts: str) -> None:
    batch = [m for i, t in enumerate(texts) for m in incoming(t.encode(), f"m{i}")]
    Intake(store, registry_of(store)).accept(batch)


def lab(n: int, mrn: str = "MRN001", value: str = "42", status: str = "F", order: str = "") -> str:
    return oru(
        obx(1, ALT, value, "U/L", status=status), obx(2, TBIL, "1.1", "mg/dL"),
        mrn=mrn, message_id=f"M{n}-{mrn[-1]}", order=order or f"A{n}",
    )  # fmt: skip


def count(store: Store, table: Any, *where: Any) -> int:
    with store.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table).where(*where)) or 0)


def test_processing_writes_the_outbox_and_the_status_in_one_transaction(
    store: Store, fhir_url: str
) -> None:
    enrol_two(store)
    take_in(store, lab(1), lab(2, "MRN002"))
    undecodable = oru(obx(1, ALT, "42", "U/L"), charset="UNICODE UTF-8", notes=("Hämolyse",))
    batch = incoming(undecodable.replace("MSG0001", "M3").encode("latin-1"), "m3")
    Intake(store, registry_of(store)).accept(batch)
    with FhirClient(fhir_url, retries=0) as client:
        work = stages(store, client)
        summary = PushSummary()
        assert work.process_inbox(10, summary) == 3
        assert work.process_inbox(10, summary) == 0
    assert count(store, messages, messages.c.status == "received") == 0
    assert count(store, outbox, outbox.c.status == "pending") == 2
    assert summary.refused == 1  # not valid UTF-8: refused with its reason, not queued
    with store.engine.connect() as conn:
        bundle = conn.scalar(select(outbox.c.bundle).limit(1))
    assert '"resourceType":"Bundle"' in bundle and "MRN001" not in bundle


def test_a_failing_server_builds_a_backlog_that_drains_in_order(
    store: Store, fhir_url: str, clock: Clock
) -> None:
    enrol_two(store)
    take_in(store, *[lab(n, mrn, str(40 + n), "P" if n < 4 else "F", f"A{mrn[-1]}")
                     for n in range(1, 5) for mrn in ("MRN001", "MRN002")])  # fmt: skip
    with (
        FlakyProxy(fhir_url, [503, 503, 429, 503, 500], retry_after="5") as proxy,
        FhirClient(proxy.url, retries=0) as client,
    ):
        work = stages(store, client, push={"backoff_base_seconds": 2, "backoff_max_seconds": 60})
        work.process_inbox(100)
        rounds = 0
        while count(store, outbox, outbox.c.status == "pending") and rounds < 50:
            work.push_outbox(50)
            clock.now += timedelta(seconds=61)  # past any backoff
            rounds += 1
        assert proxy.refused == 5 and count(store, outbox, outbox.c.status == "sent") == 8
        with store.engine.connect() as conn:
            rows = conn.execute(
                select(outbox.c.subject_id, outbox.c.sequence, outbox.c.bundle, outbox.c.attempts)
            ).all()
    order = {pid: (r.subject_id, r.sequence) for r in rows for pid in provenance_ids(r.bundle)}
    for subject in ("DDSC-T01", "DDSC-T02"):
        sent = [order[p][1] for p in proxy.forwarded if order[p][0] == subject]
        assert sent == sorted(sent) and len(sent) == 4
    assert max(r.attempts for r in rows) >= 1
    found = FhirClient(fhir_url).search("Observation", {"code": "http://loinc.org|1742-6"})
    assert sorted((o["status"], o["valueQuantity"]["value"]) for o in found) == [("final", 44)] * 2


def test_a_retry_waits_for_its_backoff_and_holds_back_the_subject(
    store: Store, fhir_url: str, clock: Clock
) -> None:
    enrol_two(store)
    take_in(store, lab(1), lab(2))
    with (
        FlakyProxy(fhir_url, [503], retry_after="30") as proxy,
        FhirClient(proxy.url, retries=0) as client,
    ):
        work = stages(store, client)
        work.process_inbox(10)
        work.push_outbox(10)
        with store.engine.connect() as conn:
            first = conn.execute(
                select(outbox.c.next_attempt_at, outbox.c.attempts).order_by(outbox.c.id)
            ).first()
        assert first is not None and first.attempts == 1
        assert first.next_attempt_at >= T0 + timedelta(seconds=30)  # Retry-After honoured
        assert work.push_outbox(10) == 0  # the later message waits behind the first
        clock.now += timedelta(seconds=31)
        assert work.push_outbox(10) == 2
    assert count(store, outbox, outbox.c.status == "sent") == 2


def test_trialbridge_push_holds_back_a_subject_behind_its_failed_row_in_later_claims(
    store: Store, fhir_url: str
) -> None:
    """``trialbridge push`` tries each row once; one that failed stays pending, and the same
    subject's later transactions, queued after that claim, must wait behind it (sent first,
    they would let the older status overwrite them when it is retried)."""
    enrol_two(store)
    tried: set[int] = set()
    with (
        FlakyProxy(fhir_url, [503]) as proxy,
        FhirClient(proxy.url, retries=0) as client,
    ):
        work = stages(store, client)
        take_in(store, lab(1, value="40", status="P", order="A1"))
        work.process_inbox(10)
        assert work.push_outbox(10, ignore_schedule=True, tried=tried) == 1  # refused: 503
        take_in(store, lab(2, value="41", order="A1"))  # the final, queued after the claim
        work.process_inbox(10)
        assert work.push_outbox(10, ignore_schedule=True, tried=tried) == 0
        assert proxy.forwarded == []
    assert count(store, outbox, outbox.c.status == "pending") == 2


def test_a_refused_transaction_is_a_dead_letter_and_can_be_retried(
    store_url: str, store: Store, fhir_url: str
) -> None:
    enrol_two(store)
    take_in(store, lab(1), lab(2))
    with FlakyProxy(fhir_url, []) as proxy, FhirClient(proxy.url, retries=0) as client:
        work = stages(store, client)
        work.process_inbox(10)
        with store.engine.begin() as conn:  # break the first transaction: the server refuses it
            first = conn.scalar(select(func.min(outbox.c.id)))
            bundle = json.loads(conn.scalar(select(outbox.c.bundle).where(outbox.c.id == first)))
            for entry in bundle["entry"]:
                if entry["resource"]["resourceType"] == "Observation":
                    entry["resource"]["status"] = "bogus"
            conn.execute(
                update(outbox).where(outbox.c.id == first).values(bundle=json.dumps(bundle))
            )
        summary = PushSummary()
        work.push_outbox(10, summary)
    assert summary.failed == 1 and summary.pushed == 1  # the next message did not wait
    cli = CliRunner()
    listed = cli.invoke(main, ["dead-letter", "list", "--json", "--store", store_url])
    [letter] = json.loads(listed.output)
    assert letter["http_status"] == 400 and "bogus" in letter["outcome"]
    shown = cli.invoke(main, ["dead-letter", "show", str(letter["id"]), "--store", store_url])
    assert json.loads(shown.output)["message"] == "M1-1"
    status = json.loads(cli.invoke(main, ["status", "--json", "--store", store_url]).output)
    assert status["queues"]["dead_letters"] == 1 and status["queues"]["outbox"] == 0
    retried = cli.invoke(main, ["dead-letter", "retry", str(letter["id"]), "--store", store_url])
    assert "1 transaction(s) back in the outbox" in retried.output
    assert count(store, outbox, outbox.c.status == "pending") == 1
    assert cli.invoke(main, ["dead-letter", "list", "--store", store_url]).output.startswith(
        "0 dead"
    )


def test_replay_queues_processed_messages_again_and_purge_keeps_what_is_to_process(
    store_url: str, store: Store, fhir_url: str, clock: Clock
) -> None:
    enrol_two(store)
    take_in(store, lab(1))
    clock.now += timedelta(days=10)
    take_in(store, lab(2))
    with FhirClient(fhir_url, retries=0) as client:
        work = stages(store, client)
        work.process_inbox(1)  # the second message stays to process
        assert work.purge_raw(timedelta(days=1)) == 1
        assert work.purge_raw(timedelta(days=0)) == 0  # never a message still to process
        work.process_inbox(10)
        work.push_outbox(10)
    replayed = CliRunner().invoke(main, ["replay", "--since", "2024-03-05", "--store", store_url])
    assert "1 message(s) queued again" in replayed.output
    assert count(store, messages, messages.c.status == "received") == 1
    nothing = CliRunner().invoke(main, ["replay", "--since", "2024-01-01", "--store", store_url])
    # the purged one cannot be replayed, the other is queued already
    assert "0 message(s) queued again" in nothing.output


def test_one_lease_holder_at_a_time_and_takeover_after_expiry(store: Store, clock: Clock) -> None:
    service = ServiceStore(store)
    ttl = timedelta(seconds=15)
    assert service.acquire_lease("scheduler", "a", ttl)
    assert not service.acquire_lease("scheduler", "b", ttl)
    clock.now += timedelta(seconds=10)
    assert service.acquire_lease("scheduler", "a", ttl)  # renewed
    clock.now += timedelta(seconds=10)
    assert not service.acquire_lease("scheduler", "b", ttl)
    clock.now += timedelta(seconds=6)
    assert service.acquire_lease("scheduler", "b", ttl)  # a stopped renewing
    assert service.lease_holder("scheduler") == ("b", clock.now + ttl)


def test_two_workers_never_push_the_same_row(store: Store, fhir_url: str) -> None:
    enrol_two(store)
    take_in(store, *[lab(n, mrn) for n in range(1, 4) for mrn in ("MRN001", "MRN002")])
    with FhirClient(fhir_url, retries=0) as client:
        first, second = stages(store, client), stages(store, client)
        first.process_inbox(100)
        claimed = first._claim(100, False, set())
        assert {r.subject_id for r in claimed} == {"DDSC-T01", "DDSC-T02"}
        assert second._claim(100, False, set()) == []  # every subject is held by the first
        first.store.release([r.row_id for r in claimed], first.holder)
        assert len(second._claim(100, False, set())) == 6


@pytest.mark.parametrize("command", ["run", "status", "replay", "dead-letter"])
def test_each_service_command_is_documented_with_an_example(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0 and "Example: trialbridge " + command in result.output


def test_wait_for_fails_with_what_it_waited_for() -> None:
    with pytest.raises(AssertionError, match="nothing"):
        wait_for(lambda: False, timeout=0.1, what="nothing")


_ = (Callable, Path)
