"""Structured logs: JSON lines, redaction of patient data and secrets, and the CLI's
``--log-level`` over a real push of a message that carries a name and an MRN."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapter.cli import main
from adapter.logs import HL7_REDACTED, configure_logging, get_logger
from tests.messages import ALT, obx, oru

PANEL = oru(obx(1, ALT, "42", "U/L"), notes=("Haemolysed, see Dr Zhang",))


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_one_json_event_per_line_with_time_level_logger_event_and_fields() -> None:
    stream = io.StringIO()
    configure_logging("debug", stream)
    log = get_logger("adapter.test")
    log.info("outbox.pushed", subject="DDSC-001", control_id="MSG0001", observations=7)
    logging.getLogger("adapter.other").warning("inbox.full", extra={"depth": 12})
    first, second = lines(stream.getvalue())
    assert set(first) == {
        "time",
        "level",
        "logger",
        "event",
        "subject",
        "control_id",
        "observations",
    }
    assert (first["level"], first["logger"], first["event"]) == (
        "info",
        "adapter.test",
        "outbox.pushed",
    )
    assert str(first["time"]).endswith("Z")
    assert (second["event"], second["depth"]) == ("inbox.full", 12)


def test_dangerous_fields_and_hl7_content_never_reach_the_log() -> None:
    stream = io.StringIO()
    configure_logging("info", stream)
    log = get_logger("adapter.test")
    log.info(
        "message.received", raw=PANEL, mrn="MRN001", patient_name="Patient^Test",
        pid="PID|1||MRN001", text="Haemolysed", access_token="s3cret", count=1,
    )  # fmt: skip
    log.info("oops", detail=PANEL)
    logging.getLogger("adapter.x").info("stdlib %s", PANEL)
    output = stream.getvalue()
    for leaked in ("MRN001", "Patient^Test", "Haemolysed", "s3cret", "PID|"):
        assert leaked not in output
    event, detail, stdlib = lines(output)
    assert event["count"] == 1
    assert event["redacted"] == ["access_token", "mrn", "patient_name", "pid", "raw", "text"]
    assert detail["detail"] == HL7_REDACTED and stdlib["event"] == HL7_REDACTED


def test_an_exception_is_logged_as_its_type_and_place_never_its_text() -> None:
    stream = io.StringIO()
    configure_logging("info", stream)
    try:
        raise ValueError("PID-5 was Patient^Test")
    except ValueError:
        get_logger("adapter.test").exception("message.failed", control_id="MSG0001")
    [event] = lines(stream.getvalue())
    assert event["error"] == "ValueError" and str(event["error_at"]).startswith("test_logs.py:")
    assert "Patient" not in stream.getvalue()


def test_third_party_loggers_are_quiet_and_configuring_twice_does_not_double() -> None:
    stream = io.StringIO()
    configure_logging("debug", stream)
    configure_logging("debug", stream)
    logging.getLogger("urllib3.connectionpool").debug("Starting new HTTP connection")
    logging.getLogger("sqlalchemy.engine").info("SELECT ...")
    get_logger("adapter.test").debug("kept")
    assert [e["event"] for e in lines(stream.getvalue())] == ["kept"]


def test_push_logs_json_without_names_mrns_or_message_text(
    fhir_url: str, tmp_path: Path, enrol: Callable[..., object]
) -> None:
    enrol()  # MRN001, the patient of tests/messages.py
    (tmp_path / "1.hl7").write_text(PANEL)
    other = PANEL.replace("MRN001", "MRN999").replace("MSG0001", "MSG0002")
    (tmp_path / "2.hl7").write_text(other)
    args = ["--log-level", "debug", "push", str(tmp_path), "--fhir-url", fhir_url]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    events = lines(result.stderr)
    assert {"command.start", "fhir.request"} <= {e["event"] for e in events}
    assert all({"time", "level", "logger", "event"} <= set(e) for e in events)
    for leaked in ("MRN001", "MRN999", "Patient^Test", "Haemolysed", "19600101", "PID|"):
        assert leaked not in result.stderr


def test_log_level_is_an_option_of_every_command() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert "--log-level" in result.output
    bad = CliRunner().invoke(main, ["--log-level", "loud", "score", "--help"])
    assert bad.exit_code == 2
