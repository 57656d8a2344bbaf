"""The state store on SQLite and PostgreSQL: migrations, the inbox's deduplication (also
under concurrent writers), conflicting content, and the held results queue."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select

from adapter.store import (
    PROCESSED,
    RECEIVED,
    REFUSED,
    HeldRow,
    Incoming,
    Outcome,
    Store,
    StoreError,
    incoming,
    open_store,
)
from adapter.store.schema import held_results, messages, metadata
from tests.messages import ALT, obx, oru

# A frozen clock at a non-UTC offset that moves one minute per reading.
START = datetime(2024, 1, 15, 9, 30, tzinfo=timezone(timedelta(hours=8)))


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url, clock=Clock()) as opened:
        yield opened


def message(message_id: str = "M1", value: str = "42") -> Incoming:
    [one] = incoming(oru(obx(1, ALT, value, "U/L"), message_id=message_id).encode(), "test")
    return one


def held(location: str = "OBX[2]", code: str = "GGT", value: str = "45") -> HeldRow:
    return HeldRow(
        location, code, "L", "Gamma GT", "U/L", "NM", value, "unmapped_code", f"code {code} ..."
    )


def _head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from adapter.store.engine import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


HEAD = _head()


def rows(store: Store) -> list[dict[str, object]]:
    with store.engine.connect() as conn:
        query = select(messages).order_by(messages.c.id)
        return [dict(r._mapping) for r in conn.execute(query)]


def test_migrations_apply_on_a_fresh_database_and_match_the_tables(store: Store) -> None:
    tables = set(inspect(store.engine).get_table_names())
    assert {"messages", "held_results", "alembic_version", "subjects"} <= tables
    with store.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == HEAD
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []


def test_reopening_is_idempotent_and_keeps_the_data(store_url: str, store: Store) -> None:
    store.receive([message()])
    store.close()
    with open_store(store_url) as again, again.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == HEAD
        assert conn.scalar(select(func.count()).select_from(messages)) == 1


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    with (
        open_store(f"sqlite:///{tmp_path / 'var' / 'store.sqlite'}") as store,
        store.engine.connect() as conn,
    ):
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000


def test_a_message_is_stored_with_its_key_and_bytes(store: Store) -> None:
    incoming_message = message()
    [received] = store.receive([incoming_message])
    assert (received.new, received.duplicate) == (True, False)
    [row] = rows(store)
    assert row["sender"] == "NTC-LIS@NTCH" and row["control_id"] == "M1"
    assert row["content_hash"] == hashlib.sha256(incoming_message.raw).hexdigest()
    assert row["raw"] == incoming_message.raw and row["status"] == RECEIVED
    assert row["received_at"] == START + timedelta(minutes=1)
    assert isinstance(row["received_at"], datetime) and row["received_at"].tzinfo is UTC


def test_a_finished_message_sent_again_is_a_duplicate(store: Store) -> None:
    [first] = store.receive([message()])
    [unfinished] = store.receive([message()])  # never processed: handed back to finish it
    assert (unfinished.new, unfinished.duplicate, unfinished.row_id) == (False, False, first.row_id)
    store.record([Outcome(first.row_id, PROCESSED, None, ())])
    [again] = store.receive([message()])
    assert (again.new, again.duplicate) == (False, True)
    assert len(rows(store)) == 1


def test_the_same_message_twice_in_one_batch_is_one_row(store: Store) -> None:
    first, second = store.receive([message(), message()])
    assert (first.new, first.duplicate) == (True, False)
    assert (second.new, second.duplicate, second.row_id) == (False, True, first.row_id)
    assert len(rows(store)) == 1


def test_concurrent_writers_of_one_message_store_exactly_one_row(store_url: str) -> None:
    writers = 8
    barrier = threading.Barrier(writers)
    results: list[bool] = []
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with open_store(store_url) as own:  # each writer its own engine, as a process
                barrier.wait()
                [received] = own.receive([message()])
                results.append(received.new)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results) == [False] * (writers - 1) + [True]
    with open_store(store_url) as check:
        assert len(rows(check)) == 1


def test_the_same_control_id_with_other_content_is_kept_and_flagged(store: Store) -> None:
    store.receive([message("M1", "42"), message("M2", "50")])
    store.receive([message("M1", "43")])  # a different result under a reused MSH-10
    flagged = {(r["control_id"], r["content_conflict"]) for r in rows(store)}
    assert flagged == {("M1", True), ("M2", False)}
    assert len(rows(store)) == 3


def test_held_results_are_grouped_with_counts_first_last_and_an_example(store: Store) -> None:
    one, two = store.receive([message("M1"), message("M2")])
    store.record([Outcome(one.row_id, PROCESSED, None, (held(value="45"),))])
    store.record([Outcome(two.row_id, PROCESSED, None, (held(value="51"),))])
    [group] = store.held_groups()
    assert (group.code, group.code_system, group.code_text, group.units) == (
        "GGT",
        "L",
        "Gamma GT",
        ("U/L",),
    )
    assert group.count == 2
    assert group.first_seen == START + timedelta(minutes=2)
    assert group.last_seen == START + timedelta(minutes=3)
    assert (group.example_value, group.example_message) == ("51", "M2")


def test_a_processed_message_resolves_what_is_no_longer_held(store: Store) -> None:
    [entry] = store.receive([message()])
    store.record([Outcome(entry.row_id, PROCESSED, None, (held("OBX[2]"), held("OBX[3]", "NH3")))])
    resolved = store.record([Outcome(entry.row_id, PROCESSED, None, (held("OBX[3]", "NH3"),))])
    assert resolved == 1
    assert [g.code for g in store.held_groups()] == ["NH3"]
    with store.engine.connect() as conn:
        states = dict(conn.execute(select(held_results.c.code, held_results.c.resolved_at)).all())
    assert states["GGT"] is not None and states["NH3"] is None


def test_a_refused_message_keeps_its_reason(store: Store) -> None:
    [entry] = store.receive(incoming(b"not hl7", "bad.hl7"))
    store.record([Outcome(entry.row_id, REFUSED, "the input does not start with an MSH", ())])
    [row] = rows(store)
    assert (row["status"], row["sender"], row["control_id"]) == (REFUSED, "", "")
    assert "MSH" in str(row["reason"])


def test_a_store_that_cannot_be_reached_is_named_without_a_password() -> None:
    url = "postgresql+psycopg://someone:secret@127.0.0.1:9/nothing?connect_timeout=2"
    with pytest.raises(StoreError) as failed:
        open_store(url)
    assert "127.0.0.1:9" in str(failed.value) and "secret" not in str(failed.value)


def test_source_state_is_durable_per_source_and_key(store_url: str, store: Store) -> None:
    assert store.get_state("file-drop", "taken:a.hl7") is None
    store.set_state("file-drop", "taken:a.hl7", "2024-01-01")
    store.set_state("file-drop", "taken:a.hl7", "2024-01-02")
    store.set_state("lis-query", "watermark:DDSC-001", "20240115")
    store.close()
    with open_store(store_url) as again:
        assert again.get_state("file-drop", "taken:a.hl7") == "2024-01-02"
        assert again.states("lis-query") == {"watermark:DDSC-001": "20240115"}
