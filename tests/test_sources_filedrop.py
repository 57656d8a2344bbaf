"""The file drop over real files into a real SQLite store: completeness (marker, stable),
batches, the record that keeps a file from being read twice, and what happens to a file
once taken (deleted by default, archived when asked). Robustness (bad files, partial files,
blocked folders, limits) is in test_filedrop_robust.py."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from adapter.intake import Intake
from adapter.sources import FileDropSource, Recorder
from adapter.sources.config import FileDropConfig
from adapter.store import open_store
from adapter.store.schema import messages
from adapter.trial.enrolment import EnrolledSubject
from adapter.trial.registry import Registry
from adapter.trial.study import load_study
from tests.messages import ALT, obx, oru


def message(control_id: str, mrn: str = "MRN001") -> str:
    return oru(obx(1, ALT, "42", "U/L"), message_id=control_id, mrn=mrn)


@pytest.fixture
def intake(own_state_store: str, enrol: Callable[..., EnrolledSubject]) -> Iterator[Intake]:
    enrol()
    with open_store(own_state_store) as store:
        yield Intake(store, Registry(store, load_study()))


def rows(intake: Intake) -> int:
    with intake.store.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(messages)) or 0)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


ARCHIVED = {"archive_days": 30}


def drop(tmp_path: Path, **options: object) -> FileDropSource:
    config = FileDropConfig(enabled=True, directory=tmp_path / "drop", **options)  # type: ignore[arg-type]
    config.directory.mkdir(exist_ok=True)
    return FileDropSource(config, events=Recorder())


def test_only_files_of_stable_size_are_taken_then_moved(intake: Intake, tmp_path: Path) -> None:
    source = drop(tmp_path, settle_seconds=0, **ARCHIVED)
    folder = source.config.directory
    (folder / "a.hl7").write_text(message("A1"))
    assert source.poll(intake) == 0  # seen once: maybe still being written
    growing = folder / "b.hl7"
    growing.write_text(message("B1")[:40])
    assert source.poll(intake) == 1  # a.hl7 did not change: taken
    assert names(folder / "archive") == ["a.hl7"] and rows(intake) == 1
    with growing.open("a") as out:
        out.write(message("B1")[40:])
    assert source.poll(intake) == 0  # b.hl7 grew since the last poll
    assert source.poll(intake) == 1
    assert names(folder / "archive") == ["a.hl7", "b.hl7"] and rows(intake) == 2
    assert names(folder) == ["archive"]


def test_by_default_a_taken_file_is_deleted_and_nothing_is_archived(
    intake: Intake, tmp_path: Path
) -> None:
    source = drop(tmp_path, complete_when="marker")
    folder = source.config.directory
    (folder / "a.hl7").write_text(message("A1") + message("X1", mrn="X9"))  # X9: not enrolled
    (folder / "a.hl7.done").touch()
    assert source.poll(intake) == 2
    assert rows(intake) == 1 and names(folder) == []  # no archive/ either
    assert source.health()["archive_files"] == 0


def test_with_markers_only_marked_files_are_taken(intake: Intake, tmp_path: Path) -> None:
    source = drop(tmp_path, complete_when="marker", **ARCHIVED)
    folder = source.config.directory
    (folder / "a.hl7").write_text(message("A1"))
    (folder / "b.hl7").write_text(message("B1"))
    (folder / "b.hl7.done").write_text("")
    assert source.poll(intake) == 1
    assert names(folder / "archive") == ["b.hl7", "b.hl7.done"]
    assert names(folder) == ["a.hl7", "archive"]


def test_a_batch_file_is_split_and_unreadable_files_go_to_error(
    intake: Intake, tmp_path: Path
) -> None:
    source = drop(tmp_path, complete_when="marker", **ARCHIVED)
    folder = source.config.directory
    batch = "FHS|^~\\&\rBHS|^~\\&\r" + message("B1") + message("B2") + message("B3", "X9")
    (folder / "batch.hl7").write_text(batch + "BTS|3\rFTS|1\r")
    (folder / "junk.hl7").write_bytes(b"\x00\x01 this is not HL7")
    for name in ("batch.hl7", "junk.hl7"):
        (folder / f"{name}.done").touch()
    assert source.poll(intake) == 3
    assert rows(intake) == 2  # the third patient is not enrolled
    assert names(folder / "archive") == ["batch.hl7", "batch.hl7.done"]
    assert names(folder / "error") == ["junk.hl7", "junk.hl7.done", "junk.hl7.reason"]


def test_a_crash_between_commit_and_move_does_not_read_the_file_twice(
    intake: Intake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = drop(tmp_path, complete_when="marker", **ARCHIVED)
    folder = source.config.directory
    (folder / "a.hl7").write_text(message("A1"))
    (folder / "a.hl7.done").touch()

    def crash(path: Path, destination: str) -> None:
        raise SystemExit("killed after the commit, before the move")

    monkeypatch.setattr(source, "_dispose", crash)
    with pytest.raises(SystemExit):
        source.poll(intake)
    assert rows(intake) == 1 and "a.hl7" in names(folder)

    accepted: list[int] = []
    original = intake.accept
    monkeypatch.setattr(
        intake, "accept", lambda batch: accepted.append(len(batch)) or original(batch)
    )
    restarted = drop(tmp_path, complete_when="marker", **ARCHIVED)
    assert restarted.poll(intake) == 0
    assert accepted == []  # moved, not read into the inbox again
    assert names(folder / "archive") == ["a.hl7", "a.hl7.done"]
    assert rows(intake) == 1


def test_a_file_dropped_again_under_the_same_name_is_a_new_file(
    intake: Intake, tmp_path: Path
) -> None:
    source = drop(tmp_path, complete_when="marker", **ARCHIVED)
    folder = source.config.directory
    for control_id in ("A1", "A2"):
        (folder / "a.hl7").write_text(message(control_id))
        (folder / "a.hl7.done").touch()
        assert source.poll(intake) == 1
    assert names(folder / "archive") == ["a.hl7", "a.hl7.1", "a.hl7.done", "a.hl7.done.1"]
    assert rows(intake) == 2


def test_a_file_committed_but_not_recorded_lands_once(intake: Intake, tmp_path: Path) -> None:
    source = drop(tmp_path, complete_when="marker")
    folder = source.config.directory
    text = message("A1")
    (folder / "a.hl7").write_text(text)
    (folder / "a.hl7.done").touch()
    source.poll(intake)
    (folder / "a.hl7").write_text(text)  # as if the record had been lost: read again
    os.utime(folder / "a.hl7", ns=(1, 1))
    (folder / "a.hl7.done").touch()
    assert source.poll(intake) == 1
    assert rows(intake) == 1  # one inbox row (still to be processed, so handed on once more)
