"""The MLLP listener: MLLP's third layer (handling) and its asyncio server.

Each connection is persistent and read in chunks; the framing layer cuts frames, the
parsing layer (:mod:`adapter.sources.ack`) checks them, and the enrolment gate
(:meth:`Intake.triage`) decides on the event loop: most of a hospital's feed is for patients
not in the trial, and those messages are forgotten and acknowledged at once, with no thread
hand-off and no write. The messages to keep go to one committer task, which commits what
every connection has waiting in one :meth:`Intake.commit` call (in a worker thread, so the
event loop keeps reading). A connection's ACKs go out in the order of its frames, each kept
message's only after it was committed. Nothing a peer sends can stop the listener: every
failure becomes an AE/AR.

On ``stop`` the listener stops accepting connections and reading; each connection still
commits and acknowledges the complete frames it had read, then closes.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from adapter.intake import Accepted, Intake, forgotten
from adapter.sources.ack import Problem, Responder, build_ack, check_frame, internal_problem
from adapter.sources.config import MllpConfig
from adapter.sources.events import Events
from adapter.sources.framing import BadFrame, Frame, FrameDecoder, frame
from adapter.sources.hl7v2 import Header, read_header
from adapter.store.inbox import Incoming, one_message

SOURCE = "mllp"
_READ_BYTES = 256 * 1024
Clock = Callable[[], datetime]


def control_ids(prefix: str = "TB") -> Callable[[], str]:
    """Our own MSH-10 for ACKs: a per-process random stem and a counter (20 characters)."""
    stem = uuid.uuid4().hex[:8].upper()
    counter = itertools.count(1)
    return lambda: f"{prefix}{stem}{next(counter):010d}"


@dataclass
class _Pending:
    """One message waiting for the committer, with the gate's verdict on it."""

    message: Incoming
    verdict: str
    done: asyncio.Future[Accepted]


# What a frame is waiting for: its commit, its problem, or nothing (acknowledged at once).
_Outcome = asyncio.Future[Accepted] | Problem | None


class _Committer:
    """Commits what all connections have waiting, in batches, one batch at a time."""

    def __init__(self, intake: Intake, batch_size: int, events: Events) -> None:
        self.intake = intake
        self.batch_size = batch_size
        self.events = events
        self.queue: asyncio.Queue[_Pending] = asyncio.Queue()

    def submit(self, message: Incoming, verdict: str) -> asyncio.Future[Accepted]:
        done: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait(_Pending(message, verdict, done))
        return done

    async def run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < self.batch_size and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            await self._commit(batch)

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            messages, verdicts = [p.message for p in batch], [p.verdict for p in batch]
            accepted = await asyncio.to_thread(self.intake.commit, messages, verdicts)
        except Exception as exc:  # any failure: each message gets AE, the sender resends
            self.events.emit("mllp.commit_failed", level=logging.ERROR, error=type(exc).__name__)
            for pending in batch:
                if not pending.done.done():
                    pending.done.set_exception(exc)
            return
        kept = sum(a.kept for a in accepted)
        self.events.emit("mllp.accepted", level=logging.DEBUG, messages=len(batch), kept=kept)
        for pending, result in zip(batch, accepted, strict=True):
            if not pending.done.done():
                pending.done.set_result(result)


class MllpSource:
    """An MLLP listener feeding the inbox. ``serve`` runs until ``stop`` is set."""

    def __init__(
        self,
        config: MllpConfig,
        *,
        forced_charset: str | None = None,
        events: Events | None = None,
        clock: Clock | None = None,
        ids: Callable[[], str] | None = None,
    ) -> None:
        self.config = config
        self.forced_charset = config.forced_charset or forced_charset
        self.events = events or Events()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.ids = ids or control_ids()
        self.responder = Responder(config.application, config.facility)
        self.port: int | None = None  # the bound port, once ready
        self.ready = threading.Event()  # set once listening (thread-safe, for other threads)
        self._connections: dict[
            asyncio.Task[None], tuple[asyncio.StreamReader, asyncio.StreamWriter]
        ] = {}
        self._committer: _Committer | None = None
        self._intake: Intake | None = None
        self._peers = itertools.count(1)

    def wait_ready(self, timeout: float = 10.0) -> int:
        """Block (from another thread) until listening; return the bound port."""
        if not self.ready.wait(timeout) or self.port is None:
            raise TimeoutError(f"the MLLP listener did not start within {timeout:g} s")
        return self.port

    async def serve(self, intake: Intake, stop: asyncio.Event) -> None:
        """Listen until ``stop`` is set; then finish what was read, ACK it and close."""
        self._intake = intake
        self._committer = _Committer(intake, self.config.batch_size, self.events)
        committing = asyncio.create_task(self._committer.run())
        tls = self.config.tls.server_context() if self.config.tls else None
        server = await asyncio.start_server(
            self._connected, self.config.host, self.config.port, ssl=tls, limit=_READ_BYTES
        )
        self.port = int(server.sockets[0].getsockname()[1])
        self.events.emit("mllp.listening", port=self.port, tls=int(tls is not None))
        self.ready.set()
        try:
            await stop.wait()
        finally:
            await self._shut_down(server)
            committing.cancel()
            self.ready.clear()
        self.events.emit("mllp.stopped", port=self.port)

    async def _shut_down(self, server: asyncio.Server) -> None:
        server.close()
        for reader, writer in list(self._connections.values()):
            transport = writer.transport
            if isinstance(transport, asyncio.ReadTransport) and not transport.is_closing():
                transport.pause_reading()
            if not reader.at_eof():
                reader.feed_eof()  # the connection finishes what it read, then closes
        if self._connections:
            await asyncio.wait(list(self._connections))
        await server.wait_closed()

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = (reader, writer)
        peer = next(self._peers)
        self.events.emit("mllp.connected", connection=peer)
        acked = 0
        try:
            acked = await self._converse(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            self.events.emit("mllp.dropped", connection=peer, error=type(exc).__name__)
        except Exception as exc:  # never let one connection take the listener down
            self.events.emit(
                "mllp.failed", level=logging.ERROR, connection=peer, error=type(exc).__name__
            )
        finally:
            del self._connections[task]
            writer.close()
            self.events.emit("mllp.closed", connection=peer, acks=acked)

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
        decoder = FrameDecoder(self.config.max_message_bytes)
        sent = 0
        while data := await reader.read(_READ_BYTES):
            replies = await self.handle(decoder.feed(data))
            if replies:
                writer.write(b"".join(frame(reply) for reply in replies))
                await writer.drain()
                sent += len(replies)
        return sent

    async def handle(self, frames: list[Frame]) -> list[bytes]:
        """The replies to ``frames``, in order, each kept message's after its commit."""
        read = [self._read(item) for item in frames]
        outcomes = self._admit([checked for _, checked in read])
        replies = []
        for (header, _), outcome in zip(read, outcomes, strict=True):
            problem = await _settled(outcome) if isinstance(outcome, asyncio.Future) else outcome
            replies.append(self._reply(header, problem))
        return replies

    def _read(self, item: Frame) -> tuple[Header | None, bytes | Problem]:
        """A frame's MSH (for its reply) and its message, or what is wrong with it."""
        if isinstance(item, BadFrame):
            return read_header(item.data), Problem("AR", "100", "", item.reason)
        header = None
        try:
            header = read_header(item)
            return header, check_frame(header, item, self.forced_charset)
        except Exception as exc:  # a bug in checking must still answer the sender
            problem = internal_problem(f"the message could not be read ({type(exc).__name__})")
            return header, problem

    def _admit(self, checked: list[bytes | Problem]) -> list[_Outcome]:
        """The enrolment gate on this chunk's messages, here on the event loop: the forgotten
        are counted and need no commit; the rest go to the committer."""
        raws = [c for c in checked if isinstance(c, bytes)]
        assert self._intake is not None and self._committer is not None
        try:
            verdicts = iter(self._intake.triage(raws))
        except Exception as exc:  # the registry could not be read: the sender resends
            self.events.emit("mllp.gate_failed", level=logging.ERROR, error=type(exc).__name__)
            problem = internal_problem(f"the enrolment gate failed ({type(exc).__name__})")
            return [problem if isinstance(c, bytes) else c for c in checked]
        outcomes: list[_Outcome] = []
        dropped: list[str] = []
        for item in checked:
            if isinstance(item, Problem):
                outcomes.append(item)
            elif forgotten(verdict := next(verdicts)):
                dropped.append(verdict)
                outcomes.append(None)
            else:
                outcomes.append(self._committer.submit(one_message(item, SOURCE), verdict))
        self._forget(dropped)
        return outcomes

    def _forget(self, verdicts: list[str]) -> None:
        """Count the messages the gate dropped (nothing of them is written)."""
        if not verdicts:
            return
        assert self._intake is not None
        self._intake.forget(verdicts)
        self.events.emit("mllp.accepted", level=logging.DEBUG, messages=len(verdicts), kept=0)

    def _reply(self, header: Header | None, problem: Problem | None) -> bytes:
        control_id = header.control_id if header else ""
        code = "AA" if problem is None else problem.code
        level = logging.DEBUG if problem is None else logging.WARNING
        fields = {"code": code, "control_id": control_id}
        if problem is not None:
            fields["error"] = problem.error
        self.events.emit("mllp.ack", level=level, **fields)
        return build_ack(header, self.ids(), self.clock(), problem, self.responder)


async def _settled(done: asyncio.Future[Accepted]) -> Problem | None:
    """None when the message was committed (or forgotten by the enrolment gate), else the
    AE that makes the sender resend it."""
    try:
        await done
    except Exception as exc:
        return internal_problem(f"the inbox could not store it ({type(exc).__name__})")
    return None
