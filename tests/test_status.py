"""What hospital IT sees (issue 13): ``trialbridge status`` (and ``--json``) during a FHIR
outage, with a file in the drop's error folder; its exit status as a monitoring check;
per-source metrics; /readyz that does not ask the FHIR server on every call; a listener that
dies after start-up.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from adapter.config import DEFAULT_CONFIG, load_settings
from adapter.fhir_client import FhirClient
from adapter.intake import Intake
from adapter.mappings import load_mappings
from adapter.service import metrics
from adapter.service.config import service_config
from adapter.service.health import SourceHealth
from adapter.service.runner import current_status
from adapter.service.scheduler import Service, SourceSpec
from adapter.service.stages import Stages
from adapter.service.status import EXIT_ATTENTION, Limits, Status
from adapter.service.wiring import source_events
from adapter.store import open_store
from adapter.store.jobs import JobRun
from adapter.store.service import Depths, ServiceStore
from adapter.trial.registry import Registry
from adapter.trial.study import load_study
from tests.messages import ALT, obx, oru
from tests.test_service_run import TRIALBRIDGE, Run
from tests.test_service_support import wait_for

DOWN = "http://127.0.0.1:9/fhir"  # nothing listens on the discard port


def trialbridge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TRIALBRIDGE, *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def running(tmp_path: Path, enrol: Any) -> Iterator[tuple[Run, dict[str, str], Path]]:
    """The service with MLLP and a file drop, its FHIR server down, an enrolled subject."""
    enrol()
    drop = tmp_path / "drop"
    drop.mkdir()
    env = {
        "TRIALBRIDGE_SOURCES_MLLP_ENABLED": "true",
        "TRIALBRIDGE_SOURCES_MLLP_PORT": "0",
        "TRIALBRIDGE_SOURCES_FILE_DROP_ENABLED": "true",
        "TRIALBRIDGE_SOURCES_FILE_DROP_DIRECTORY": str(drop),
        "TRIALBRIDGE_SOURCES_FILE_DROP_POLL_SECONDS": "0.2",
        "TRIALBRIDGE_SERVICE_PUSH_BACKOFF_BASE_SECONDS": "0.2",
        "TRIALBRIDGE_SERVICE_PUSH_BACKOFF_MAX_SECONDS": "0.5",
    }
    run = Run(os.environ["TRIALBRIDGE_STORE_URL"], DOWN, tmp_path / "run.log", **env)
    try:
        yield run, env, drop
    finally:
        if run.process.poll() is None:
            run.kill()


def status_json(env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    done = trialbridge("status", "--json", env=env)
    return done.returncode, json.loads(done.stdout)


def test_status_during_a_fhir_outage_names_what_needs_a_person(
    running: tuple[Run, dict[str, str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, env, drop = running
    for name, value in env.items():  # the same configuration for the in-process reads
        monkeypatch.setenv(name, value)
    port = int(run.log.read_text().split("mllp on 127.0.0.1:")[1].split()[0].rstrip(","))
    message = tmp_path / "alt.hl7"
    message.write_text(oru(obx(1, ALT, "42", "U/L")))
    sent = trialbridge("mllp-send", str(message), "--port", str(port))
    assert " AA " in sent.stdout, sent.stdout + sent.stderr
    (drop / "broken.hl7").write_bytes(b"this is not HL7\n")

    def seen() -> dict[str, Any] | None:
        with open_store(os.environ["TRIALBRIDGE_STORE_URL"]) as store:
            data = current_status(ServiceStore(store), DEFAULT_CONFIG).as_dict()
        push, mllp = data["jobs"].get("push", {}), data["sources"].get("mllp", {})
        drop_errors = data["sources"].get("file_drop", {}).get("error_files")
        return data if push.get("failing") and mllp.get("received") and drop_errors else None

    wait_for(seen, 60, "status to show the push failing, the message and the refused file")
    code, data = status_json(env)
    assert code == EXIT_ATTENTION
    push = data["jobs"]["push"]
    assert push["last_error_at"] and "cannot reach the FHIR server" in push["last_error"]
    assert data["queues"]["outbox"] == 1
    mllp = data["sources"]["mllp"]
    assert mllp["up"] is True and mllp["last_message_at"] and mllp["received"] == 1
    assert data["sources"]["file_drop"]["error_files"] == 1
    assert any("job push is failing" in item for item in data["attention"])
    assert any("file_drop: 1 file(s) in its error folder" in i for i in data["attention"])

    text = trialbridge("status", env=env)
    assert text.returncode == EXIT_ATTENTION
    assert "FAILING" in text.stdout and "Needs attention:" in text.stdout
    assert f"mllp                     up, on 127.0.0.1:{port}" in text.stdout

    ready = run.get("/readyz")
    assert ready.status_code == 503 and ready.json()["fhir"].startswith("unreachable")
    scraped = run.get("/metrics").text
    assert 'trialbridge_messages_received_total{source="mllp"} 1.0' in scraped
    assert 'trialbridge_source_up{source="mllp"} 1.0' in scraped
    assert 'trialbridge_oldest_pending_age_seconds{queue="outbox"}' in scraped
    assert 'trialbridge_job_last_error_timestamp_seconds{job="push"}' in scraped
    assert run.stop() == 0  # SIGTERM, with the FHIR server down and the listener up

    stopped = trialbridge("status", env=env)
    assert stopped.returncode == EXIT_ATTENTION and "the service is not running" in stopped.stdout


def test_file_drop_messages_are_counted_per_source(
    running: tuple[Run, dict[str, str], Path],
) -> None:
    run, _env, drop = running
    (drop / "one.hl7").write_text(oru(obx(1, ALT, "42", "U/L"), message_id="F1"))
    (drop / "other.hl7").write_text(oru(obx(1, ALT, "40", "U/L"), message_id="F2", mrn="X9"))

    def counted() -> str | None:
        text = run.get("/metrics").text
        line = 'trialbridge_messages_received_total{source="file_drop"} 2.0'
        return text if line in text else None

    scraped = wait_for(counted, 30, "the file drop's messages in the metrics")
    assert 'trialbridge_messages_filtered_total{source="file_drop"} 1.0' in scraped
    assert 'source="all"' not in scraped.split("trialbridge_messages_received_total")[1][:200]


def test_status_exits_0_when_nothing_needs_a_person() -> None:
    now = datetime(2024, 6, 1, 8, tzinfo=UTC)
    depths = Depths(0, 0, 0, 0, 3, None, None)
    runs = [JobRun("push", "w", now, now - timedelta(hours=1), "old error", 4, 9)]
    status = Status(now, depths, runs, ("w", now + timedelta(seconds=10)))
    assert status.exit_code() == 0 and status.as_dict()["attention"] == []
    assert status.as_dict()["jobs"]["push"]["failing"] is False


def test_a_silent_source_and_an_old_outbox_need_a_person() -> None:
    now = datetime(2024, 6, 1, 8, tzinfo=UTC)
    depths = Depths(0, 2, 2, 1, 0, None, now - timedelta(minutes=45))
    health = {
        "mllp": {
            "up": True,
            "checked_at": now.timestamp() - 5,
            "last_message_at": (now - timedelta(hours=3)).timestamp(),
        }
    }
    limits = Limits(pending_seconds=1800, silent_seconds={"mllp": 7200})
    status = Status(now, depths, [], ("w", now + timedelta(seconds=10)), health=health,
                    limits=limits)  # fmt: skip
    attention = status.as_dict()["attention"]
    assert status.exit_code() == EXIT_ATTENTION
    assert "source mllp has sent nothing for 3.0 h (limit 2.0 h)" in attention
    assert "the oldest outbox item waits for 45 min (limit 30 min)" in attention
    assert any("1 dead letter(s)" in item for item in attention)


class CountingFhir:
    """A FHIR server stand-in that answers /metadata and counts how often it was asked."""

    def __init__(self) -> None:
        self.asked = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.asked += 1
                body = b'{"resourceType": "CapabilityStatement"}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/fhir"


class DiesLater:
    """A listening source that listens, then fails (as a listener whose socket broke)."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.fail = threading.Event()

    async def serve(self, intake: Intake, stop: asyncio.Event) -> None:
        self.ready.set()
        while not stop.is_set():
            if self.fail.is_set():
                raise OSError("the listening socket broke")
            await asyncio.sleep(0.02)


@pytest.fixture
def service(own_state_store: str) -> Iterator[tuple[Service, DiesLater, CountingFhir]]:
    settings = load_settings()
    fhir = CountingFhir()
    config = service_config({"lease_seconds": 1})
    source = DiesLater()
    with open_store(own_state_store) as store, FhirClient(fhir.url, retries=0) as client:
        registry = Registry(store, load_study())
        stages = Stages(
            ServiceStore(store), client, settings, load_mappings(settings.mappings_dir),
            registry, config,
        )  # fmt: skip
        spec = SourceSpec("lis", source, key="sources.lis", address="127.0.0.1:1")
        svc = Service(stages, Intake(store, registry), config, sources=[spec])
        runner = threading.Thread(target=svc.run, daemon=True)
        runner.start()
        try:
            yield svc, source, fhir
        finally:
            svc.stop.set()
            runner.join(30)
        assert not runner.is_alive()
    fhir.server.shutdown()
    fhir.server.server_close()


def test_a_listener_that_dies_turns_readyz_not_ready_naming_it(
    service: tuple[Service, DiesLater, CountingFhir], own_state_store: str
) -> None:
    svc, source, _fhir = service
    wait_for(lambda: svc.ready()[0], 10, "ready")
    source.fail.set()

    def not_ready() -> dict[str, Any] | None:
        ready, checks = svc.ready()
        return None if ready else checks

    checks = wait_for(not_ready, 10, "not ready")
    assert checks["not_ready"] == ["lis"]
    assert checks["sources"]["lis"] == "down: OSError: the listening socket broke"
    gauge = metrics.SOURCE_UP.labels(source="lis")._value.get()
    assert gauge == 0

    def shown() -> dict[str, Any] | None:
        with open_store(own_state_store) as store:
            found = current_status(ServiceStore(store)).as_dict()
        return found if found["sources"].get("lis", {}).get("up") is False else None

    found = wait_for(shown, 10, "status to show the listener down")
    assert "source lis is down: OSError: the listening socket broke" in found["attention"]


def test_readyz_asks_the_fhir_server_at_most_every_few_seconds(
    service: tuple[Service, DiesLater, CountingFhir],
) -> None:
    svc, _source, fhir = service
    for _ in range(50):
        assert svc.ready()[1]["fhir"] == "ok"
    assert fhir.asked == 1


def test_a_source_reaching_a_limit_is_counted_per_source_and_limit() -> None:
    health = SourceHealth("mllp")
    events = source_events("mllp", health)
    before = metrics.LIMITS_HIT.labels(source="mllp", limit="connections")._value.get()
    events.emit("mllp.limit", limit="connections", open=64)
    after = metrics.LIMITS_HIT.labels(source="mllp", limit="connections")._value.get()
    assert after == before + 1
    events.emit("mllp.accepted", messages=3, kept=1)
    assert health.received == 3 and health.kept == 1 and health.last_message_at
