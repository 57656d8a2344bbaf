"""The file drop when things go wrong, over real files and a real SQLite store: a poison
file among good ones, a partial file from a stalled writer, symlinks, a folder that cannot
be written, a file over the size limit, the archive's retention, and the feed's patients
who are not enrolled (nothing of them left under the drop folder)."""

from __future__ import annotations

import codecs
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from adapter.config import load_settings
from adapter.dev_fhir import DevFhirServer
from adapter.errors import ConfigError, MessageError
from adapter.fhir_client import FhirClient
from adapter.intake import Intake
from adapter.mappings import load_mappings
from adapter.parse.decode import split_messages
from adapter.pipeline import push_messages
from adapter.sources import FileDropSource, Recorder
from adapter.sources.config import FileDropConfig, sources_config
from adapter.sources.filesplit import split_chunks
from adapter.store import incoming, open_store
from adapter.store.schema import messages, outbox
from adapter.trial.enrolment import EnrolledSubject
from adapter.trial.registry import Registry
from adapter.trial.study import load_study
from tests.messages import ALB, ALP, ALT, CORPUS, INR, TBIL, obx, oru
from tests.test_service_run import count, launch
from tests.test_service_support import (
    enrol_feed,
    feed_messages,
    registry_of,
    simulated_feed,
    snapshot,
    wait_for,
)

__all__ = ["launch"]

DAY = 86400.0


class Clock:
    """The source's clock, moved by hand (settling, back-off and retention are timed)."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def intake(own_state_store: str, enrol: Callable[..., EnrolledSubject]) -> Iterator[Intake]:
    enrol()
    with open_store(own_state_store) as store:
        yield Intake(store, Registry(store, load_study()))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulated LIS feed (985 files, 1,100 messages; 22 trial subjects among 500)."""
    return simulated_feed(tmp_path_factory.mktemp("feed") / "feed")


def drop(tmp_path: Path, clock: Clock, **options: object) -> FileDropSource:
    config = FileDropConfig(enabled=True, directory=tmp_path / "drop", **options)  # type: ignore[arg-type]
    config.directory.mkdir(exist_ok=True)
    return FileDropSource(config, events=Recorder(), clock=clock)


def stored(intake: Intake) -> list[bytes]:
    with intake.store.engine.connect() as conn:
        return [bytes(raw) for raw in conn.scalars(select(messages.c.raw).order_by(messages.c.id))]


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def events(source: FileDropSource, name: str) -> list[dict[str, str | int | float]]:
    assert isinstance(source.events, Recorder)
    return source.events.named(name)


def message(control_id: str, mrn: str = "MRN001", results: int = 1, charset: str = "") -> str:
    codes = [ALT, TBIL, ALB, INR, ALP, ALT, TBIL, ALB][:results]
    lines = [obx(i, code, str(40 + i), "U/L") for i, code in enumerate(codes, start=1)]
    return oru(*lines, message_id=control_id, mrn=mrn, charset=charset)


def marked(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    (folder / f"{name}.done").touch()
    return path


# One bad file among good ones --------------------------------------------------------------


def test_a_file_whose_msh18_names_a_non_text_codec_goes_to_error_and_the_others_are_taken(
    intake: Intake, tmp_path: Path, clock: Clock
) -> None:
    source = drop(tmp_path, clock, complete_when="marker")
    folder = source.config.directory
    poison = message("Q1", charset="quopri")  # MSH-18
    marked(folder, "a.hl7", message("A1"))
    marked(folder, "b.hl7", poison)
    marked(folder, "c.hl7", message("C1"))
    assert source.poll(intake) == 2
    assert names(folder / "error") == ["b.hl7", "b.hl7.done", "b.hl7.reason"]
    assert names(folder) == ["error"]
    reason = (folder / "error" / "b.hl7.reason").read_text()
    assert "MSH.18" in reason and "message 1 (MSH-10 Q1)" in reason and "To do:" in reason
    assert "MRN001" not in reason and "Patient" not in reason
    marked(folder, "d.hl7", message("D1"))
    assert source.poll(intake) == 1  # later polls go on
    assert len(stored(intake)) == 3
    assert source.health()["refused_files"] == 1 and source.health()["ok"]


def test_a_message_the_door_fails_on_is_named_and_the_rest_of_its_file_goes_in(
    intake: Intake, tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = drop(tmp_path, clock, complete_when="marker")
    folder = source.config.directory
    triage = intake.triage

    def failing(raws: list[bytes]) -> list[str]:  # a gate that crashes on one message
        if any(b"|BAD1|" in raw for raw in raws):
            raise IndexError("list index out of range")
        return triage(raws)

    monkeypatch.setattr(intake, "triage", failing)
    marked(folder, "a.hl7", message("A1") + message("BAD1") + message("A2"))
    marked(folder, "b.hl7", message("B1"))
    source.poll(intake)
    assert len(stored(intake)) == 3  # A1, A2, B1
    reason = (folder / "error" / "a.hl7.reason").read_text()
    assert "message(s) 2 (MSH-10 BAD1)" in reason and "IndexError" in reason


def test_a_file_that_is_not_hl7_names_what_is_wrong_in_its_reason(
    intake: Intake, tmp_path: Path, clock: Clock
) -> None:
    source = drop(tmp_path, clock, complete_when="marker")
    folder = source.config.directory
    marked(folder, "notes.hl7", "Dear colleague, the results follow.\r")
    marked(folder, "wide.hl7", codecs.BOM_UTF16_LE + message("W1").encode("utf-16-le")[:-1])
    source.poll(intake)
    assert stored(intake) == []
    notes = (folder / "error" / "notes.hl7.reason").read_text()
    assert "does not start with an MSH" in notes and "segment 1" in notes
    wide = (folder / "error" / "wide.hl7.reason").read_text()
    assert "UTF-16 byte-order mark" in wide


# Partial files -----------------------------------------------------------------------------


def test_a_partial_file_taken_in_stable_mode_is_taken_again_when_it_grows(
    intake: Intake, tmp_path: Path, clock: Clock
) -> None:
    source = drop(tmp_path, clock, poll_seconds=10, settle_seconds=300)
    folder = source.config.directory
    first, second = message("P1", results=8), message("P2", results=8)
    whole = first + second
    cut = len(first) + second.index("OBX|2|")  # the writer stalls inside P2, after 1 result
    path = folder / "lab.hl7"
    path.write_text(whole[:cut])
    assert source.poll(intake) == 0  # seen once
    clock.now += 10
    assert source.poll(intake) == 2  # looks complete: P1 and a truncated P2 go in
    assert path.exists()  # kept while it settles
    with path.open("a") as out:  # the writer resumes
        out.write(whole[cut:])
    clock.now += 10
    assert source.poll(intake) == 0  # changed: taken again once stable
    assert events(source, "file_drop.changed_after_taken")
    clock.now += 10
    assert source.poll(intake) == 2
    raws = stored(intake)
    assert len(raws) == 3  # P1 once, the truncated P2, the whole P2
    assert raws[0].count(b"|P1|") == 1 and raws[2].count(b"\rOBX|") == 8
    clock.now += 300
    source.poll(intake)
    assert names(folder) == []  # settled unchanged: deleted


def test_in_marker_mode_a_file_without_its_marker_is_never_taken(
    intake: Intake, tmp_path: Path, clock: Clock
) -> None:
    source = drop(tmp_path, clock, complete_when="marker")
    folder = source.config.directory
    (folder / "lab.hl7").write_text(message("P1", results=8)[:200])
    for _ in range(3):
        clock.now += 10
        assert source.poll(intake) == 0
    with (folder / "lab.hl7").open("a") as out:
        out.write(message("P1", results=8)[200:])
    (folder / "lab.hl7.done").touch()
    assert source.poll(intake) == 1
    assert stored(intake)[0].count(b"\rOBX|") == 8


def test_the_service_delivers_every_result_of_a_file_whose_writer_stalled(
    feed: Path, tmp_path: Path, dev_fhir_server: DevFhirServer, fhir_url: str, launch: Any
) -> None:
    """``trialbridge run`` in stable mode: the LIS writes a file up to its first result,
    stalls past two polls (the file is taken and that result sent), then writes the rest;
    the server ends with exactly what the whole message gives when pushed at once."""
    # the feed's last such message: its results are past the subject's baseline
    whole = [m for m in feed_messages(feed) if enrolled_with_results(feed, m.raw, 8)][-1].raw
    expected = oracle(feed, whole, fhir_url, tmp_path / "oracle.sqlite")
    assert len(expected) >= 8
    dev_fhir_server.reset()
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    enrol_feed(store_url, feed, fhir_url)
    folder = tmp_path / "drop"
    folder.mkdir()
    env = {
        "TRIALBRIDGE_SOURCES_FILE_DROP_ENABLED": "true",
        "TRIALBRIDGE_SOURCES_FILE_DROP_DIRECTORY": str(folder),
        "TRIALBRIDGE_SOURCES_FILE_DROP_POLL_SECONDS": "0.3",
        "TRIALBRIDGE_SOURCES_FILE_DROP_SETTLE_SECONDS": "3",
    }
    cut = whole.index(b"\rOBX|2|")
    with open_store(store_url) as store, (folder / "lab.hl7").open("wb") as writer:
        run = launch(store_url, fhir_url, tmp_path / "run.log", **env)
        writer.write(whole[:cut])
        writer.flush()
        wait_for(lambda: count(store, outbox, outbox.c.status == "sent") >= 1, 60, "a push")
        partial = snapshot(fhir_url)
        writer.write(whole[cut:])  # the writer comes back
        writer.flush()
        wait_for(lambda: count(store, messages) == 2, 60, "the file to be taken again")
        wait_for(lambda: not (folder / "lab.hl7").exists(), 60, "the file to settle")
        wait_for(lambda: snapshot(fhir_url) == expected, 60, "every result")
        assert run.stop() == 0
    assert len(partial) < len(expected)  # the first read alone fell short


def enrolled_with_results(feed: Path, raw: bytes, results: int) -> bool:
    enrolled = (feed / "enrolment.csv").read_text()
    mrn = re.search(rb"\rPID\|[^|]*\|[^|]*\|([^^|]+)", raw)
    return (
        mrn is not None
        and f",{mrn.group(1).decode()}," in enrolled
        and raw.count(b"\rOBX|") >= results
    )


def oracle(feed: Path, whole: bytes, fhir_url: str, store_path: Path) -> dict[str, tuple[str, str]]:
    """What pushing the whole message at once leaves on the (then emptied) server."""
    url = f"sqlite:///{store_path}"
    enrol_feed(url, feed, fhir_url)
    settings = load_settings()
    with open_store(url) as store, FhirClient(fhir_url, retries=0) as client:
        push_messages(
            incoming(whole, "whole"), client, settings, load_mappings(settings.mappings_dir), store,
            registry=registry_of(store),
        )  # fmt: skip
    return snapshot(fhir_url)


# Symlinks and the folders -------------------------------------------------------------------


def test_symlinks_in_the_drop_folder_are_not_followed(
    intake: Intake, tmp_path: Path, clock: Clock
) -> None:
    source = drop(tmp_path, clock, complete_when="marker")
    folder = source.config.directory
    outside = tmp_path / "elsewhere.hl7"
    outside.write_bytes(message("S1").encode())
    (folder / "link.hl7").symlink_to(outside)
    (folder / "link.hl7.done").touch()
    assert source.poll(intake) == 0
    assert outside.read_bytes() == message("S1").encode() and (folder / "link.hl7").is_symlink()
    assert stored(intake) == [] and source.health()["symlinks_skipped"] == 1


@pytest.mark.parametrize("key", ["archive", "error"])
def test_archive_and_error_must_be_real_folders_inside_the_drop(tmp_path: Path, key: str) -> None:
    directory = tmp_path / "drop"
    directory.mkdir()
    with pytest.raises(ConfigError, match=rf"sources\.file_drop\.{key} .* inside the drop"):
        sources_config({"file_drop": {"directory": str(directory), key: str(tmp_path / "x")}})
    (tmp_path / "real").mkdir()
    (directory / key).symlink_to(tmp_path / "real")
    with pytest.raises(ConfigError, match=rf"sources\.file_drop\.{key} .* not a symbolic link"):
        sources_config({"file_drop": {"directory": str(directory)}})


@contextmanager
def unwritable(folder: Path) -> Iterator[None]:
    """``folder`` made unwritable for real: immutable when running as root (root ignores
    permission bits), else without write permission."""
    root = os.geteuid() == 0
    if root:
        subprocess.run(["chattr", "+i", str(folder)], check=True)
    else:
        folder.chmod(0o555)
    try:
        yield
    finally:
        if root:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        else:
            folder.chmod(0o755)


def test_a_folder_that_cannot_be_written_is_reported_and_retried_after_a_back_off(
    intake: Intake, tmp_path: Path, clock: Clock
) -> None:
    source = drop(tmp_path, clock, complete_when="marker", poll_seconds=10)
    folder = source.config.directory
    marked(folder, "a.hl7", message("A1"))
    with unwritable(folder):
        assert source.poll(intake) == 0
        health = source.health()
        assert health["ok"] is False
        assert "sources.file_drop.directory" in health["problem"]
        assert str(folder) in health["problem"] and "write" in health["problem"]
        assert stored(intake) == []  # nothing read from a folder it cannot empty
        for _ in range(3):  # backs off: 10, 20, 40 s
            clock.now += 10
            source.poll(intake)
        assert len(events(source, "file_drop.blocked")) == 1  # reported once, not every poll
        assert source.health()["retry_in_seconds"] > 0
    assert source.poll(intake) == 0  # writable again, but the back-off is not over
    clock.now += 300
    assert source.poll(intake) == 1
    assert source.health()["ok"] is True and names(folder) == []


def test_the_service_reports_a_folder_it_cannot_write_and_takes_its_files_once_it_can(
    tmp_path: Path, own_state_store: str, enrol: Callable[..., EnrolledSubject], launch: Any
) -> None:
    """``trialbridge run``: an immutable drop folder turns /readyz 503 and ``status`` (exit
    3) names the key, the folder and what to do; once writable, its file is taken."""
    enrol()
    folder = tmp_path / "drop"
    folder.mkdir()
    env = {
        "TRIALBRIDGE_SOURCES_FILE_DROP_ENABLED": "true",
        "TRIALBRIDGE_SOURCES_FILE_DROP_DIRECTORY": str(folder),
        "TRIALBRIDGE_SOURCES_FILE_DROP_POLL_SECONDS": "0.3",
        "TRIALBRIDGE_SOURCES_FILE_DROP_COMPLETE_WHEN": "marker",
    }
    marked(folder, "a.hl7", message("A1"))
    with unwritable(folder):
        run = launch(own_state_store, "http://127.0.0.1:9/fhir", tmp_path / "run.log", **env)
        answer = wait_for(lambda: not_ready(run), 60, "/readyz to say not ready")
        assert "sources.file_drop.directory" in answer["sources"]["file_drop"]
        done = subprocess.run(
            [str(Path(sys.executable).with_name("trialbridge")), "status", "--json"],
            env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 3
        shown = json.loads(done.stdout)["sources"]["file_drop"]
        assert shown["up"] is False and str(folder) in shown["problem"]
        assert "give that user" in shown["problem"]
    with open_store(own_state_store) as store:
        wait_for(lambda: count(store, messages) == 1, 120, "the file to be taken")
    wait_for(lambda: run.get("/readyz").json()["sources"]["file_drop"] == "ok", 60, "up")
    assert names(folder) == []
    assert run.stop() == 0


def not_ready(run: Any) -> dict[str, Any] | None:
    answer = run.get("/readyz")
    body: dict[str, Any] = answer.json()
    return body if answer.status_code == 503 and "file_drop" in body.get("not_ready", []) else None


def test_a_missing_drop_folder_is_reported_naming_the_key(
    intake: Intake, tmp_path: Path, clock: Clock
) -> None:
    source = drop(tmp_path, clock)
    source.config.directory.rmdir()
    source.poll(intake)
    problem = str(source.health()["problem"])
    assert "sources.file_drop.directory" in problem and "does not exist" in problem


# Limits --------------------------------------------------------------------------------------


def test_a_file_over_the_size_limit_is_refused_unread_and_the_limit_reported(
    intake: Intake, tmp_path: Path, clock: Clock
) -> None:
    source = drop(tmp_path, clock, complete_when="marker", max_file_bytes=4096)
    folder = source.config.directory
    big = "".join(message(f"B{i}") for i in range(40))
    assert len(big) > 4096
    marked(folder, "big.hl7", big)
    marked(folder, "small.hl7", message("S1"))
    assert source.poll(intake) == 1
    assert len(stored(intake)) == 1
    reason = (folder / "error" / "big.hl7.reason").read_text()
    assert "sources.file_drop.max_file_bytes" in reason and "4,096 allowed" in reason
    assert events(source, "file_drop.limit") == [
        {"limit": "max_file_bytes", "bytes": len(big.encode())}
    ]
    assert source.health()["too_large_files"] == 1


def test_a_large_file_is_committed_in_batches(intake: Intake, tmp_path: Path, clock: Clock) -> None:
    source = drop(tmp_path, clock, complete_when="marker")
    folder = source.config.directory
    marked(folder, "day.hl7", "".join(message(f"D{i}") for i in range(450)))
    assert source.poll(intake) == 450
    batches = events(source, "file_drop.accepted")
    assert [b["messages"] for b in batches] == [200, 200, 50]
    assert len(stored(intake)) == 450


# The archive -----------------------------------------------------------------------------------


def test_archived_files_are_deleted_after_archive_days_and_counted_in_health(
    intake: Intake, tmp_path: Path, clock: Clock
) -> None:
    source = drop(tmp_path, clock, complete_when="marker", archive_days=2)
    folder = source.config.directory
    marked(folder, "a.hl7", message("A1"))
    source.poll(intake)
    assert names(folder / "archive") == ["a.hl7", "a.hl7.done"]
    health = source.health()
    assert health["archive_files"] == 1 and health["archive_bytes"] == len(message("A1"))
    clock.now += 3 * DAY
    source.poll(intake)
    assert names(folder / "archive") == []
    assert source.health()["archive_files"] == 0


def test_after_the_simulated_feed_no_patient_who_is_not_enrolled_is_left_under_the_drop(
    feed: Path, tmp_path: Path, own_state_store: str, fhir_url: str
) -> None:
    enrol_feed(own_state_store, feed, fhir_url)
    source = drop(tmp_path, Clock(), complete_when="marker")
    folder = source.config.directory
    for path in sorted(feed.glob("*.hl7")):
        marked(folder, path.name, path.read_bytes())
    enrolled = set(re.findall(r"^[^,]*,([^,]+)", (feed / "enrolment.csv").read_text(), re.M))
    others = patients(feed) - {(mrn, name) for mrn, name in patients(feed) if mrn in enrolled}
    assert len(others) > 100
    with open_store(own_state_store) as store:
        intake = Intake(store, Registry(store, load_study()))
        while source.poll(intake):
            pass
    left = b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())
    assert not [mrn for mrn, _ in others if mrn.encode() in left]
    assert not [name for _, name in others if name.encode() in left]
    assert names(folder) == []


def patients(feed: Path) -> set[tuple[str, str]]:
    """(MRN, family name) of every PID in the feed."""
    found = set()
    for path in feed.glob("*.hl7"):
        for pid in re.findall(rb"(?:^|[\r\n])PID\|[^\r\n]*", path.read_bytes()):
            fields = pid.decode().lstrip("\r\n").split("|")
            found.add((fields[3].split("^")[0], fields[5].split("^")[0]))
    return found


# The splitter reads as split_messages does --------------------------------------------------

_TOKENS = [b"MSH", b"FHS", b"BHS", b"BTS", b"FTS", b"PID", b"|a", b"x", b"M"]
_TOKENS += [b"\r", b"\n", b"\r\n", b" ", b"\x00", b"\t", b"\x1c", codecs.BOM_UTF8, b"\xff\xfe"]


def whole_and_chunked(data: bytes, size: int) -> tuple[object, object]:
    try:
        whole: object = split_messages(data)
    except (MessageError, UnicodeError):
        whole = "refused"
    try:
        chunked: object = list(split_chunks(data[i : i + size] for i in range(0, len(data), size)))
    except MessageError:
        chunked = "refused"
    return whole, chunked


@settings(max_examples=400, derandomize=True)
@given(
    st.lists(st.sampled_from(_TOKENS), max_size=16).map(b"".join),
    st.integers(1, 9),
    st.booleans(),
)
def test_messages_read_in_chunks_are_the_messages_read_whole(
    data: bytes, size: int, wide: bool
) -> None:
    if wide:
        data = codecs.BOM_UTF16_LE + data.decode("latin-1").encode("utf-16-le")
    whole, chunked = whole_and_chunked(data, size)
    assert chunked == whole


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.hl7")), ids=lambda p: p.name)
def test_the_corpus_read_in_chunks_is_the_corpus_read_whole(path: Path) -> None:
    data = path.read_bytes()
    for size in (1, 7, 4096):
        whole, chunked = whole_and_chunked(data, size)
        assert chunked == whole


# Any bytes ------------------------------------------------------------------------------------

_SEEDS = [p.read_bytes() for p in sorted(CORPUS.glob("*.hl7"))] + [message("Z1").encode()]


@st.composite
def mutant(draw: st.DrawFn) -> bytes:
    """A corpus message with bytes flipped, cut, NULs, a wide BOM or an MSH-18 codec."""
    data = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "nul", "bom", "charset", "dup"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[at:]
        elif kind == "nul":
            data[at:at] = b"\x00"
        elif kind == "bom":
            data[0:0] = draw(st.sampled_from([codecs.BOM_UTF16_LE, codecs.BOM_UTF8]))
        elif kind == "charset":
            codec = draw(st.sampled_from([b"quopri", b"punycode", b"UNICODE UTF-16", b"rot13"]))
            data = bytearray(bytes(data).replace(b"|2.5.1", b"|2.5.1||||||" + codec, 1))
        elif kind == "dup":
            data += data[: at + 1]
    return bytes(data)


@settings(
    max_examples=100,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(mutant(), min_size=1, max_size=4))
def test_whatever_the_bytes_every_file_is_taken_or_set_aside_with_its_reason(
    intake: Intake, tmp_path_factory: pytest.TempPathFactory, files: list[bytes]
) -> None:
    source = drop(tmp_path_factory.mktemp("fuzz"), Clock(), complete_when="marker")
    folder = source.config.directory
    for number, data in enumerate(files):
        marked(folder, f"{number}.hl7", data)
    source.poll(intake)  # raises nothing
    assert sorted(p.name for p in folder.glob("*.hl7")) == []
    refused = sorted(p.name for p in (folder / "error").glob("*.hl7"))
    assert [f"{name}.reason" for name in refused] == sorted(
        p.name for p in (folder / "error").glob("*.reason")
    )
    for reason in (folder / "error").glob("*.reason"):  # text a person can open
        assert all(c.isprintable() or c == "\n" for c in reason.read_text(encoding="utf-8"))
    assert source.health()["ok"]
