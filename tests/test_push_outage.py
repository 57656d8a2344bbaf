"""After a FHIR server outage the backlog goes as soon as the server answers again (issue 16):
the service probes it with ``GET metadata`` instead of waiting out each row's backoff; a
transaction the server refuses while answering the probe still backs off alone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from adapter.fhir_client import FhirClient
from adapter.store import Store, open_store
from adapter.store.schema import outbox
from tests.test_service import Clock, count, enrol_two, lab, stages, take_in
from tests.test_service_support import FlakyProxy

_BACKOFF = {"backoff_base_seconds": 60, "backoff_max_seconds": 300, "probe_seconds": 2}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(store_url: str, clock: Clock) -> Iterator[Store]:
    with open_store(store_url, clock=clock) as opened:
        yield opened


def _pending(store: Store) -> int:
    return count(store, outbox, outbox.c.status == "pending")


def test_the_backlog_goes_when_a_probe_finds_the_server_back(
    store: Store, fhir_url: str, clock: Clock
) -> None:
    enrol_two(store)
    take_in(store, lab(1), lab(2), lab(3, "MRN002"), lab(4, "MRN002"))
    # The push's 503, then the probe's (down), then one more probe's: three refusals.
    with (
        FlakyProxy(fhir_url, [503, 503, 503]) as proxy,
        FhirClient(proxy.url, retries=0) as client,
    ):
        work = stages(store, client, push=_BACKOFF)
        work.process_inbox(10)
        work.push_outbox(50)
        assert proxy.refused == 2 and proxy.forwarded == []  # down: the rest not tried
        assert work.push_outbox(50) == 0 and proxy.refused == 2  # no probe before it is due
        clock.now += timedelta(seconds=2)
        assert work.push_outbox(50) == 0 and proxy.refused == 3  # probed: still down
        clock.now += timedelta(seconds=2)  # far less than the failed row's 30-60 s backoff
        assert work.push_outbox(50) == 4
    assert _pending(store) == 0 and len(proxy.forwarded) == 4


def test_a_transaction_refused_by_a_server_that_answers_backs_off_alone(
    store: Store, fhir_url: str, clock: Clock
) -> None:
    enrol_two(store)
    take_in(store, lab(1), lab(3, "MRN002"))
    with (
        FlakyProxy(fhir_url, [500]) as proxy,
        FhirClient(proxy.url, retries=0) as client,
    ):
        work = stages(store, client, push=_BACKOFF)
        work.process_inbox(10)
        assert work.push_outbox(50) == 2
        assert len(proxy.forwarded) == 1  # the other subject went in the same run
        clock.now += timedelta(seconds=10)
        assert work.push_outbox(50) == 0  # the refused one waits for its backoff
        clock.now += timedelta(seconds=60)
        assert work.push_outbox(50) == 1
    assert _pending(store) == 0
