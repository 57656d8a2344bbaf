"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest
from pytest import MonkeyPatch

from adapter.config import load_settings
from adapter.dev_fhir import DevFhirServer
from adapter.fhir_client import FhirClient
from adapter.mappings import load_mappings
from adapter.pipeline import push_messages
from adapter.service.summary import PushSummary
from adapter.store import incoming, open_store
from adapter.store.scratch import scratch_schema
from adapter.trial.enrolment import EnrolledSubject, HospitalId
from adapter.trial.registry import NewSubject, Registry
from adapter.trial.study import load_study
from tests.postgres import postgres_for_tests


@pytest.fixture(scope="session")
def dev_fhir_server() -> Iterator[DevFhirServer]:
    """The local FHIR R4 server, started once per test session on a free port."""
    with DevFhirServer(port=0) as server:
        yield server


@pytest.fixture
def fhir_url(dev_fhir_server: DevFhirServer) -> str:
    """The FHIR base URL of the dev server, with an empty store for this test."""
    dev_fhir_server.reset()
    return dev_fhir_server.base_url


# The state store ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The PostgreSQL server of this test session (tests/postgres.py: the one named by
    TRIALBRIDGE_TEST_POSTGRES_URL, else a throwaway cluster)."""
    with postgres_for_tests() as url:
        yield url


@pytest.fixture(autouse=True)
def own_state_store(tmp_path_factory: pytest.TempPathFactory, monkeypatch: MonkeyPatch) -> str:
    """Every test gets an empty SQLite state store of its own (``store.url`` overridden),
    so no test writes into the repository's var/ or sees another test's inbox."""
    url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'trialbridge.sqlite'}"
    monkeypatch.setenv("TRIALBRIDGE_STORE_URL", url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty store URL on SQLite (a file in tmp_path) and on this machine's PostgreSQL
    (a schema of its own in database ``test``, dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite'}"
        return
    server = request.getfixturevalue("postgres_server")
    with scratch_schema(server) as url:
        yield url


TEST_DAY0 = date(2024, 1, 15)  # tests/messages.py dates its results 2024-01-15


@pytest.fixture
def enrol(own_state_store: str) -> Callable[..., EnrolledSubject]:
    """Enrol a test patient (by MRN, authority NTCH) in the store the CLI will use."""

    def enrol_mrn(mrn: str = "MRN001", subject_id: str = "DDSC-T01") -> EnrolledSubject:
        with open_store(own_state_store) as store:
            registry = Registry(store, load_study())
            new = NewSubject(
                subject_id,
                (HospitalId(mrn, "NTCH"),),
                "low-dose",
                date(2024, 1, 2),
                (TEST_DAY0,),
                "F",
                1961,
            )
            return registry.enrol(new)

    return enrol_mrn


def push_texts(client: FhirClient, *texts: str, store_url: str | None = None) -> PushSummary:
    """Push written messages the way ``trialbridge push`` does (inbox, outbox, the service's
    stages), without an enrolment registry: placeholder Patients keyed by the LIS id.
    ``store_url`` defaults to the test's own store; a fresh one replays what another had."""
    settings = load_settings()
    messages = [m for i, text in enumerate(texts) for m in incoming(text.encode(), f"msg{i}")]
    with open_store(store_url or settings.store_url) as store:
        return push_messages(
            messages, client, settings, load_mappings(settings.mappings_dir), store
        )
