"""The MLLP listener's limits over real sockets: a frame that stalls is closed, connections
beyond the maximum are closed, the bytes held for unfinished frames stay under the cap, and
an oversized frame is answered. Each limit hit is an ``mllp.limit`` event (no content)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from adapter.intake import Intake
from adapter.sources import Background, MllpSource
from adapter.sources.client import MllpClient
from adapter.sources.config import MllpConfig
from adapter.sources.events import Field, Recorder
from adapter.sources.framing import END, START, frame
from adapter.store import open_store
from adapter.trial.enrolment import EnrolledSubject
from adapter.trial.registry import Registry
from adapter.trial.study import load_study
from tests.test_sources_mllp import message, msa, read_frames, stored

LIMITS = MllpConfig(
    port=0,
    half_frame_timeout_seconds=1.0,
    max_connections=3,
    max_message_bytes=64 * 1024,
    max_buffered_bytes=96 * 1024,
)


@pytest.fixture
def intake(own_state_store: str, enrol: Callable[..., EnrolledSubject]) -> Iterator[Intake]:
    enrol()
    with open_store(own_state_store) as store:
        yield Intake(store, Registry(store, load_study()))


class Listener:
    def __init__(self, source: MllpSource, events: Recorder) -> None:
        self.source = source
        self.events = events
        self.port = source.wait_ready()

    def connect(self, timeout: float = 10.0) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def limits(self, name: str) -> list[dict[str, Field]]:
        return [e for e in self.events.named("mllp.limit") if e["limit"] == name]


@pytest.fixture
def listener(intake: Intake, request: pytest.FixtureRequest) -> Iterator[Listener]:
    config = replace(LIMITS, **getattr(request, "param", {}))
    events = Recorder()
    source = MllpSource(config, events=events)
    with Background(lambda stop: source.serve(intake, stop)):
        yield Listener(source, events)


def closed_by_peer(sock: socket.socket) -> bool:
    """True once the listener closed ``sock`` (reads to the end; fails on a timeout)."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_frame_that_stalls_is_closed_and_an_idle_connection_is_not(
    intake: Intake, listener: Listener
) -> None:
    idle = listener.connect()  # connected, sends nothing: a quiet LIS keeps its connection
    with listener.connect() as stalled:
        stalled.sendall(START + message("STALL1")[:200])  # a start block, then nothing
        started = time.monotonic()
        assert closed_by_peer(stalled)
    assert time.monotonic() - started >= 0.9  # not before half_frame_timeout_seconds
    [hit] = listener.limits("half_frame_timeout")
    assert hit["pending_bytes"] == 201 and "STALL1" not in str(hit)
    with idle:  # it outlived the stalled one's timeout and still works
        idle.sendall(frame(message("IDLE1")))
        assert msa(read_frames(idle, 1)[0])[1:3] == ["AA", "IDLE1"]
    assert stored(intake.store) == 1


def test_a_frame_dripped_byte_by_byte_cannot_outlast_the_timeout(listener: Listener) -> None:
    """The deadline runs from the frame's start block, not from the last byte."""
    with listener.connect() as drip:
        drip.sendall(START)
        started = time.monotonic()
        with pytest.raises(OSError):  # broken pipe or reset once the listener closed it
            for _ in range(100):  # 10 s of drips if nothing stopped them
                drip.sendall(b"x")
                time.sleep(0.1)
        assert time.monotonic() - started < 5
    assert len(listener.limits("half_frame_timeout")) == 1


def test_connections_over_the_maximum_are_closed(listener: Listener) -> None:
    clients = [MllpClient("127.0.0.1", listener.port, timeout=10) for _ in range(3)]
    for number, client in enumerate(clients):  # each registered before the next one
        assert msa(client.request(message(f"CONN{number}")))[1] == "AA"
    with listener.connect() as fourth:
        fourth.sendall(frame(message("CONN3")))
        assert closed_by_peer(fourth)  # closed without a reply: nothing was read
    assert listener.limits("max_connections") == [{"limit": "max_connections", "limit_value": 3}]
    clients.pop().close()
    wait_until(lambda: len(listener.source._connections) == 2, 10, "the freed connection")
    with MllpClient("127.0.0.1", listener.port, timeout=10) as again:
        assert msa(again.request(message("CONN3")))[1:3] == ["AA", "CONN3"]
    for client in clients:
        client.close()


def test_bytes_held_for_unfinished_frames_stay_under_the_total(
    intake: Intake, listener: Listener
) -> None:
    """Two half frames of 60 KB would hold 120 KB (cap 96 KB): the second connection is
    closed, the first finishes its frame and gets its AA."""
    big = message("BIG1").replace(b"|42|", b"|42|" + b"0" * 60_000 + b"|", 1)
    first, second = listener.connect(), listener.connect()
    with first, second:
        first.sendall(START + big[:60_000])
        wait_until(lambda: listener.source.buffered >= 60_000, 10, "the first half frame")
        second.sendall(START + b"MSH|^~\\&|" + b"x" * 60_000)
        assert closed_by_peer(second)
        first.sendall(big[60_000:] + END)
        assert msa(read_frames(first, 1)[0])[1:3] == ["AA", "BIG1"]  # not dropped
    [hit] = listener.limits("max_buffered_bytes")
    assert hit["limit_value"] == 96 * 1024
    wait_until(lambda: listener.source.buffered == 0, 10, "the held bytes to be released")


@pytest.mark.parametrize("listener", [{"max_message_bytes": 4096}], indirect=True)
def test_an_oversized_frame_is_answered_ae_and_counted(intake: Intake, listener: Listener) -> None:
    huge = message("HUGE1").replace(b"|42|", b"|" + b"9" * 10_000 + b"|", 1)
    with MllpClient("127.0.0.1", listener.port, timeout=10) as client:
        nak = client.request(huge).decode("latin-1").split("\r")
        assert nak[1].startswith("MSA|AE|HUGE1|a frame is over 4096 bytes")
        assert nak[2].split("|")[3].startswith("100^")
        assert msa(client.request(message("SMALL1")))[1:3] == ["AA", "SMALL1"]
    assert listener.limits("max_message_bytes") == [
        {"limit": "max_message_bytes", "limit_value": 4096}
    ]
    assert stored(intake.store) == 1
