"""The door of the inbox: enrolled subjects' messages committed, everyone else's forgotten."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import func, select

from adapter.intake import Intake
from adapter.store import incoming, open_store
from adapter.store.schema import messages
from adapter.trial.enrolment import EnrolledSubject
from adapter.trial.registry import Registry
from adapter.trial.study import load_study
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
