"""``trialbridge run`` with its MLLP listener, as a real process on a real socket: bad input
gets the right NAK and the service keeps running; a message whose ACK never came because the
service was killed is resent and lands once."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from adapter.errors import SourceError
from adapter.sources.client import MllpClient
from adapter.store import open_store
from adapter.store.schema import messages, outbox
from adapter.trial.enrolment import EnrolledSubject
from tests.messages import ALT, TBIL, obx, oru
from tests.test_service_run import count, launch
from tests.test_service_support import snapshot, wait_for

__all__ = ["launch"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listening(port: int) -> MllpClient:
    """A connection once the listener is up (a restarted service waits for the dead one's
    lease to expire before it runs its sources)."""

    def attempt() -> MllpClient | None:
        try:
            return MllpClient("127.0.0.1", port, timeout=30)
        except SourceError:
            return None

    client: MllpClient = wait_for(attempt, 60, f"the MLLP listener on port {port}")
    return client


def msa(ack: bytes) -> list[str]:
    segment = next(s for s in ack.decode().split("\r") if s.startswith("MSA|"))
    return segment.split("|")


def lab(message_id: str, order: str, value: str) -> bytes:
    return oru(obx(1, ALT, value, "U/L"), obx(2, TBIL, "1.1", "mg/dL"),
               message_id=message_id, order=order).encode()  # fmt: skip


def test_naks_keep_the_service_running_and_an_unacked_message_lands_once_after_a_kill(
    fhir_url: str,
    tmp_path: Path,
    own_state_store: str,
    enrol: Callable[..., EnrolledSubject],
    launch: Any,
) -> None:
    enrol()  # MRN001^NTCH, the patient of tests/messages.py
    port = free_port()
    env = {
        "TRIALBRIDGE_SOURCES_MLLP_ENABLED": "true",
        "TRIALBRIDGE_SOURCES_MLLP_PORT": str(port),
    }
    log = tmp_path / "run.log"
    run = launch(own_state_store, fhir_url, log, **env)
    with listening(port) as lis:
        assert msa(lis.request(b"not hl7 at all"))[1] == "AE"  # content: not to be resent
        lis.send_raw(b"garbage outside any frame\x1c\x0d")  # a bad frame: refused, not fatal
        assert msa(lis.receive())[1] == "AE"
        order = oru(obx(1, ALT, "1", "U/L"), message_id="ORM1").replace(
            "ORU^R01^ORU_R01", "ORM^O01"
        )
        assert msa(lis.request(order.encode()))[1:3] == ["AR", "ORM1"]
        latin1 = oru(obx(1, ALT, "1", "U/L"), message_id="BAD1", charset="UNICODE UTF-8",
                     notes=("Hämolyse",)).encode("latin-1")  # fmt: skip
        assert msa(lis.request(latin1))[1:3] == ["AE", "BAD1"]
        ack = lis.request(lab("GOOD1", "A1", "42"))
        assert msa(ack)[1:3] == ["AA", "GOOD1"]
        assert run.process.poll() is None
        lis.send(lab("LATE1", "A2", "44"))  # the service dies before it can answer
        run.kill()
    run = launch(own_state_store, fhir_url, log, **env)
    with listening(port) as lis:
        assert msa(lis.request(lab("LATE1", "A2", "44")))[1:3] == ["AA", "LATE1"]
    with open_store(own_state_store) as store:

        def pushed() -> bool:
            return (
                count(store, outbox, outbox.c.status == "pending") == 0
                and len(snapshot(fhir_url)) == 4
            )

        wait_for(pushed, 60, "both messages on the FHIR server")
        late = messages.c.control_id == "LATE1"
        assert count(store, messages, late) == 1
    shot = snapshot(fhir_url)  # fails on a duplicated Observation
    assert sorted(v for _, v in shot.values()) == ["1.1", "1.1", "42", "44"]
    assert run.stop() == 0


@pytest.fixture(autouse=True)
def _quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIALBRIDGE_SERVICE_JOBS_SCORES_INTERVAL_SECONDS", "3600")
