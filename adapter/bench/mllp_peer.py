"""The other ends of the MLLP scenarios.

``python -m adapter.bench.mllp_peer PORT CONNECTIONS COUNT [RATE] [ACKS_FILE]`` is the LIS:
a separate process that sends the seeded feed over ``CONNECTIONS`` persistent connections,
each in lock-step (one frame, then its ACK, as HL7 senders do), at most ``RATE`` messages/s
in all (0: as fast as the peer answers), and prints one JSON line: seconds, sent, AA count.
With ``ACKS_FILE``, it writes ``control_id ack_time`` lines (wall clock) for the latency
scenario. Enrolled messages are 1% unless ``TRIALBRIDGE_BENCH_ENROLLED`` says otherwise; the
first message's number is ``TRIALBRIDGE_BENCH_FIRST`` (default 0), so rounds do not repeat.

:class:`BareServer` is the baseline listener: it cuts frames and answers each with a fixed AA,
without looking at the message (the transport's ceiling). :class:`FsyncServer` also appends
each message to a file and fsyncs it before the ACK (the durable transport's ceiling).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from adapter.bench.feed import FeedSpec, messages
from adapter.intake import Intake
from adapter.sources.ack import build_ack, read_frame
from adapter.sources.framing import END, Frame, FrameDecoder, frame
from adapter.sources.mllp import control_ids

_ACK = frame(b"MSH|^~\\&|BARE|BENCH|||20240101000000||ACK|1|P|2.5.1\rMSA|AA|1\r")
_TIMEOUT = 60.0


class BareServer:
    """Frames and fixed ACKs on a loopback port, in a thread with its own event loop."""

    def __init__(self) -> None:
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> BareServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise TimeoutError("the bare MLLP server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        server = await asyncio.start_server(_answer, "127.0.0.1", 0)
        self.port = int(server.sockets[0].getsockname()[1])
        self._ready.set()
        async with server:
            await self._stop.wait()


class FsyncServer(BareServer):
    """The bare server, but each message is appended to ``path`` and fsynced before its ACK
    (one write and one fsync per message, on the event loop: the durable ceiling)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    async def _main(self) -> None:
        with self.path.open("ab") as log:

            async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                await _answer(reader, writer, log)

            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            server = await asyncio.start_server(answer, "127.0.0.1", 0)
            self.port = int(server.sockets[0].getsockname()[1])
            self._ready.set()
            async with server:
                await self._stop.wait()


class WorkServer(BareServer):
    """The bare server doing TrialBridge's per-message work in pure Python, inline: each
    frame's MSH read and checked (``read_frame``), the enrolment gate asked
    (``Intake.triage``), the ACK built (``build_ack``); no commit, no counting, no logging.
    What any listener doing that work gets from these cores (scenario 1's third baseline)."""

    def __init__(self, intake: Intake) -> None:
        super().__init__()
        self.intake = intake
        self.ids = control_ids("WK")

    async def _main(self) -> None:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _answer(reader, writer, work=self._work)

        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        self.port = int(server.sockets[0].getsockname()[1])
        self._ready.set()
        async with server:
            await self._stop.wait()

    def _work(self, item: Frame) -> bytes:
        header, checked = read_frame(item)
        if isinstance(checked, bytes):
            self.intake.triage([checked])
        return frame(build_ack(header, self.ids(), datetime.now(UTC)))


async def _answer(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    log: BinaryIO | None = None,
    work: Callable[[Frame], bytes] | None = None,
) -> None:
    decoder = FrameDecoder()
    try:
        while data := await reader.read(256 * 1024):
            frames = decoder.feed(data)
            if frames and log is not None:
                for item in frames:
                    log.write(item if isinstance(item, bytes) else b"")
                    log.flush()
                    os.fsync(log.fileno())
            if frames and work is not None:
                writer.write(b"".join(work(item) for item in frames))
                await writer.drain()
            elif frames:
                writer.write(_ACK * len(frames))
                await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _connection(
    port: int, payloads: list[bytes], pace: _Pace, acks: list[tuple[str, float]]
) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    accepted = 0
    try:
        for payload in payloads:
            await pace.wait()
            writer.write(frame(payload))
            reply = await asyncio.wait_for(reader.readuntil(END), _TIMEOUT)
            accepted += b"MSA|AA" in reply
            acks.append((_control_id(payload), time.time()))
    finally:
        writer.close()
    return accepted


class _Pace:
    """At most ``rate`` sends per second over all connections (0: no limit)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1 / rate if rate else 0.0
        self.next = time.perf_counter()

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.perf_counter()
        self.next = max(self.next + self.interval, now)
        if self.next > now:
            await asyncio.sleep(self.next - now)


def _control_id(payload: bytes) -> str:
    return payload.split(b"\r", 1)[0].split(b"|")[9].decode()


async def send(
    port: int, connections: int, count: int, rate: float
) -> tuple[dict[str, float], list[tuple[str, float]]]:
    share = float(os.environ.get("TRIALBRIDGE_BENCH_ENROLLED", "0.01"))
    first = int(os.environ.get("TRIALBRIDGE_BENCH_FIRST", "0"))
    feed = list(messages(FeedSpec(count, enrolled_share=share, first=first)))
    pace = _Pace(rate)
    acks: list[tuple[str, float]] = []
    started = time.perf_counter()
    counts = await asyncio.gather(
        *(_connection(port, feed[i::connections], pace, acks) for i in range(connections))
    )
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "sent": len(feed), "accepted": sum(counts)}, acks


def main(argv: list[str]) -> None:
    port, connections, count = (int(a) for a in argv[:3])
    rate = float(argv[3]) if len(argv) > 3 else 0.0
    summary, acks = asyncio.run(send(port, connections, count, rate))
    if len(argv) > 4:
        Path(argv[4]).write_text("".join(f"{c} {t:.6f}\n" for c, t in acks), encoding="utf-8")
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
