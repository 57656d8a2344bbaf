"""The door of the inbox: enrolled subjects' messages committed, everyone else's forgotten."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime

from sqlalchemy import func, select

from adapter.intake import Intake
from adapter.store import incoming, open_store
from adapter.store.schema import messages
from adapter.trial.enrolment import EnrolledSubject, HospitalId
from adapter.trial.registry import NewSubject, Registry
from adapter.trial.study import load_study
from tests.conftest import TEST_DAY0
from tests.messages import ALT, obx, oru


def test_only_enrolled_subjects_messages_are_committed(
    own_state_store: str, enrol: Callable[..., EnrolledSubject]
) -> None:
    enrol()
    batch = [
        *incoming(oru(obx(1, ALT, "42", "U/L"), message_id="A").encode(), "a"),
        *incoming(oru(obx(1, ALT, "42", "U/L"), mrn="X9", message_id="B").encode(), "b"),
        *incoming(b"garbage", "c"),
        *incoming(oru(obx(1, ALT, "42", "U/L"), message_id="A").encode(), "a-again"),
    ]
    with open_store(own_state_store) as store:
        intake = Intake(store, Registry(store, load_study()), clock=lambda: datetime.now(UTC))
        accepted = intake.accept(batch)
        assert [a.verdict for a in accepted] == [
            "enrolled",
            "not-enrolled",
            "unattributable",
            "enrolled",
        ]
        assert [a.kept for a in accepted] == [True, False, False, True]
        assert intake.counts.kept == 1
        assert intake.counts.forgotten == {"not-enrolled": 1, "unattributable": 1}
        with store.engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(messages)) == 1
        assert intake.accept(batch[:1])[0].duplicate is False  # still to be processed


def test_a_registry_change_committed_elsewhere_decides_the_next_message(store_url: str) -> None:
    """The gate's index is kept between batches (the MLLP listener asks per message); an
    enrolment or withdrawal by another connection must still decide the next one. SQLite
    sees every commit at once; PostgreSQL is told by a notification sent at commit."""
    raw = oru(obx(1, ALT, "42", "U/L"), mrn="MRN777", message_id="N1").encode()
    new = NewSubject(
        "DDSC-T77", (HospitalId("MRN777", "NTCH"),), "low-dose", date(2024, 1, 2),
        (TEST_DAY0,), "F", 1961,
    )  # fmt: skip
    with open_store(store_url) as ours, open_store(store_url) as theirs:
        intake = Intake(ours, Registry(ours, load_study()))
        elsewhere = Registry(theirs, load_study())
        assert intake.triage([raw]) == ["not-enrolled"]
        unchanged = intake.registry.index()
        assert intake.registry.index() is unchanged  # nothing committed: not read again
        elsewhere.enrol(new)
        assert verdict_soon(intake, raw, "enrolled", postgres=store_url.startswith("postgres"))
        elsewhere.withdraw("DDSC-T77", datetime(2024, 1, 1, tzinfo=UTC))
        assert verdict_soon(intake, raw, "withdrawn", postgres=store_url.startswith("postgres"))


def verdict_soon(intake: Intake, raw: bytes, expected: str, *, postgres: bool) -> bool:
    """SQLite: the very next triage. PostgreSQL: once the commit's notification has arrived
    (asynchronous; it comes within milliseconds, 5 s is the test's limit)."""
    if not postgres:
        return intake.triage([raw]) == [expected]
    deadline = time.monotonic() + 5
    while intake.triage([raw]) != [expected]:
        if time.monotonic() > deadline:
            return False
    return True
