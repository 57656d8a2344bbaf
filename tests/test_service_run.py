"""``trialbridge run`` as a real process: killed with SIGKILL at several points while it
ingests a file-drop folder and pushes the simulated feed, then restarted, it leaves exactly
the resources an uninterrupted push leaves; two instances on one PostgreSQL store never both
run the jobs, and the standby takes over when the active one dies; SIGTERM exits 0."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from adapter.config import load_settings
from adapter.dev_fhir import DevFhirServer
from adapter.fhir_client import FhirClient
from adapter.intake import Intake
from adapter.mappings import load_mappings
from adapter.pipeline import push_messages
from adapter.store import Store, open_store
from adapter.store.schema import messages, outbox
from adapter.store.scratch import scratch_schema
from tests.test_service_support import (
    enrol_feed,
    feed_messages,
    registry_of,
    simulated_feed,
    snapshot,
    wait_for,
)

TRIALBRIDGE = str(Path(sys.executable).with_name("trialbridge"))
FAST = {
    "TRIALBRIDGE_SERVICE_JOBS_PROCESS_INTERVAL_SECONDS": "0.2",
    "TRIALBRIDGE_SERVICE_JOBS_PUSH_INTERVAL_SECONDS": "0.2",
    "TRIALBRIDGE_SERVICE_JOBS_PROCESS_BATCH_SIZE": "50",
    "TRIALBRIDGE_SERVICE_JOBS_PUSH_BATCH_SIZE": "20",
    "TRIALBRIDGE_SERVICE_LEASE_SECONDS": "2",
    "TRIALBRIDGE_SERVICE_PUSH_CLAIM_SECONDS": "2",  # a killed worker's rows come back soon
}


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulated_feed(tmp_path_factory.mktemp("feed") / "feed")


@pytest.fixture(scope="module")
def expected(
    feed: Path, dev_fhir_server: DevFhirServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[str, str]]:
    """What one uninterrupted ``push`` of the whole feed leaves on the server."""
    dev_fhir_server.reset()
    url = f"sqlite:///{tmp_path_factory.mktemp('oracle') / 'store.sqlite'}"
    enrol_feed(url, feed, dev_fhir_server.base_url)
    settings = load_settings()
    with open_store(url) as store, FhirClient(dev_fhir_server.base_url, retries=0) as client:
        push_messages(
            feed_messages(feed), client, settings, load_mappings(settings.mappings_dir), store,
            registry=registry_of(store),
        )  # fmt: skip
    shot = snapshot(dev_fhir_server.base_url)
    dev_fhir_server.reset()
    return shot


class Run:
    """One ``trialbridge run`` process, its stderr in a file."""

    def __init__(self, store_url: str, fhir_url: str, log: Path, **env: str) -> None:
        self.log = log
        environ = {**os.environ, **FAST, **env, "TRIALBRIDGE_STORE_URL": store_url}
        with log.open("ab") as err:
            self.process = subprocess.Popen(
                [TRIALBRIDGE, "--log-level", "info", "run", "--fhir-url", fhir_url,
                 "--http-port", "0"],
                env=environ, stdout=subprocess.DEVNULL, stderr=err,
            )  # fmt: skip
        self.offset = log.stat().st_size if log.exists() else 0
        self.port = int(wait_for(self._port, 30, "the ready line"))

    def _port(self) -> str | None:
        assert self.process.poll() is None, self.log.read_text()[-2000:]
        found = re.findall(r"http on 127\.0\.0\.1:(\d+)", self.log.read_text())
        return found[-1] if found else None

    def get(self, path: str) -> Any:
        return requests.get(f"http://127.0.0.1:{self.port}{path}", timeout=10)

    def role(self) -> str:
        return str(self.get("/readyz").json()["role"])

    def job_runs(self) -> float:
        lines = self.get("/metrics").text.splitlines()
        return sum(
            float(line.split()[-1])
            for line in lines
            if line.startswith("trialbridge_job_runs_total")
        )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)


@pytest.fixture
def launch() -> Iterator[Any]:
    """Start ``trialbridge run`` processes; any still running at the end is killed."""
    started: list[Run] = []

    def start(store_url: str, fhir_url: str, log: Path, **env: str) -> Run:
        run = Run(store_url, fhir_url, log, **env)
        started.append(run)
        return run

    yield start
    for run in started:
        if run.process.poll() is None:
            run.kill()


def count(store: Store, table: Any, *where: Any) -> int:
    with store.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table).where(*where)) or 0)


def drained(store: Store, drop: Path) -> bool:
    return (
        not list(drop.glob("*.hl7"))
        and count(store, messages, messages.c.status == "received") == 0
        and count(store, outbox, outbox.c.status == "pending") == 0
    )


def test_killed_at_several_points_it_leaves_exactly_the_expected_resources(
    feed: Path,
    expected: dict[str, tuple[str, str]],
    fhir_url: str,
    tmp_path: Path,
    launch: Any,
) -> None:
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    enrol_feed(store_url, feed, fhir_url)
    drop = tmp_path / "drop"
    drop.mkdir()
    for path in sorted(feed.glob("*.hl7")):
        shutil.copy(path, drop / path.name)
    env = {
        "TRIALBRIDGE_SOURCES_FILE_DROP_ENABLED": "true",
        "TRIALBRIDGE_SOURCES_FILE_DROP_DIRECTORY": str(drop),
        "TRIALBRIDGE_SOURCES_FILE_DROP_POLL_SECONDS": "0.2",
        "TRIALBRIDGE_SOURCES_FILE_DROP_MAX_FILES_PER_POLL": "100",
        "TRIALBRIDGE_SOURCES_FILE_DROP_SETTLE_SECONDS": "0",  # drained: the folder is empty
    }
    log = tmp_path / "run.log"
    sent = outbox.c.status == "sent"
    with open_store(store_url) as store:
        kill_points = [
            ("while ingesting", lambda: count(store, messages) >= 60),
            ("while pushing", lambda: count(store, outbox, sent) >= 40),
            ("later while pushing", lambda: count(store, outbox, sent) >= 120),
        ]
        for what, reached in kill_points:
            run = launch(store_url, fhir_url, log, **env)
            wait_for(reached, 90, what)
            run.kill()
        run = launch(store_url, fhir_url, log, **env)
        wait_for(lambda: drained(store, drop), 120, "the feed to be ingested and pushed")
        assert run.stop() == 0
        assert count(store, outbox, outbox.c.status == "dead") == 0
    assert snapshot(fhir_url) == expected
    assert "trialbridge run: stopped" in log.read_text()


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    with scratch_schema(postgres_server) as url:
        yield url


def test_two_instances_on_postgresql_one_active_and_the_standby_takes_over(
    feed: Path, fhir_url: str, postgres_url: str, tmp_path: Path, launch: Any
) -> None:
    enrol_feed(postgres_url, feed, fhir_url)
    with open_store(postgres_url) as store:
        Intake(store, registry_of(store)).accept(feed_messages(feed)[:500])
        first = launch(postgres_url, fhir_url, tmp_path / "first.log")
        wait_for(lambda: first.role() == "active", 30, "the first instance to take the lease")
        second = launch(postgres_url, fhir_url, tmp_path / "second.log")
        wait_for(lambda: count(store, outbox, outbox.c.status == "sent") >= 20, 60, "pushes")
        assert second.role() == "standby" and second.job_runs() == 0
        assert first.job_runs() > 0
        first.kill()
        wait_for(lambda: second.role() == "active", 30, "the standby to take over")
        wait_for(
            lambda: (
                count(store, outbox, outbox.c.status == "pending") == 0
                and count(store, messages, messages.c.status == "received") == 0
            ),
            120,
            "the backlog to drain",
        )
        assert second.job_runs() > 0
        assert second.stop() == 0
        assert count(store, outbox, outbox.c.status == "dead") == 0
    assert snapshot(fhir_url)  # every lab Observation once (snapshot fails on a duplicate)


# Honest start-up and stop (issue 13) ----------------------------------------------------


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port some other program listens on."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        yield int(holder.getsockname()[1])
    finally:
        holder.close()


def run_to_exit(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TRIALBRIDGE, "run", "--fhir-url", "http://127.0.0.1:9/fhir", *args],
        env={**os.environ, **FAST, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_taken_mllp_port_stops_start_up_with_the_key_and_the_port(taken_port: int) -> None:
    env = {
        "TRIALBRIDGE_SOURCES_MLLP_ENABLED": "true",
        "TRIALBRIDGE_SOURCES_MLLP_PORT": str(taken_port),
    }
    done = run_to_exit(env, "--http-port", "0")
    assert done.returncode != 0
    assert "trialbridge run: ready" not in done.stderr
    assert f"sources.mllp: the mllp listener cannot listen on 127.0.0.1:{taken_port}" in (
        done.stderr
    )
    assert "address already in use" in done.stderr.lower()
    assert "Traceback" not in done.stderr


def test_a_taken_http_port_stops_start_up_with_the_key_and_the_port(taken_port: int) -> None:
    done = run_to_exit({}, "--http-port", str(taken_port))
    assert done.returncode != 0
    assert f"service.http: cannot listen on 127.0.0.1:{taken_port}" in done.stderr
    assert "service.http.port" in done.stderr and "Traceback" not in done.stderr


def test_sigterm_exits_0_with_the_fhir_server_down_and_a_listener_up(
    tmp_path: Path, launch: Any, enrol: Any
) -> None:
    """The service runs with MLLP and a FHIR server that does not answer; what came in
    waits in the outbox, /readyz says why it is not ready, and SIGTERM still exits 0."""
    enrol()
    env = {"TRIALBRIDGE_SOURCES_MLLP_ENABLED": "true", "TRIALBRIDGE_SOURCES_MLLP_PORT": "0"}
    store_url = os.environ["TRIALBRIDGE_STORE_URL"]
    run = launch(store_url, "http://127.0.0.1:9/fhir", tmp_path / "run.log", **env)
    ready = re.search(
        r"1 source\(s\): mllp on 127\.0\.0\.1:(\d+)", (tmp_path / "run.log").read_text()
    )
    assert ready and int(ready[1]) > 0  # the port it got, not the 0 it was given
    sources = wait_for(lambda: run.get("/readyz").json().get("sources"), 30, "/readyz")
    assert sources == {"mllp": "ok"}
    answer = run.get("/readyz")
    assert answer.status_code == 503 and answer.json()["fhir"].startswith("unreachable")
    assert run.stop() == 0
    assert "Traceback" not in (tmp_path / "run.log").read_text()
