"""The MLLP listener: MLLP's third layer (handling) and its asyncio server.

Each connection is persistent and read in chunks; the framing layer cuts frames, the
parsing layer (:mod:`adapter.sources.ack`) checks them, and the enrolment gate
(:meth:`Intake.triage`) decides on the event loop: most of a hospital's feed is for patients
not in the trial, and those messages are forgotten and acknowledged at once, with no thread
hand-off and no write. The messages to keep go to one committer task, which commits what
every connection has waiting in one :meth:`Intake.commit` call (in a worker thread, so the
event loop keeps reading). A connection's ACKs go out in the order of its frames, each kept
message's only after it was committed. Nothing a peer sends can stop the listener: every
complete frame gets an AA, AE or AR (:mod:`adapter.sources.ack` says which and why).

The door is guarded before anything is read: a peer outside ``allowed_peers`` is closed at
once, TLS (when configured) is negotiated by this module so a refused client certificate is
seen and counted, and beyond ``max_connections`` a new connection is closed. While a frame
is being received its bytes are held: a frame must end within ``half_frame_timeout_seconds``
of its start, and the bytes held by all connections together stay under
``max_buffered_bytes`` (the connection that would pass it is closed). Each limit hit is an
``mllp.limit`` event (no message content), each refused peer an ``mllp.refused`` event.

On ``stop`` the listener stops accepting connections and reading; each connection still
commits and acknowledges the complete frames it had read, then closes.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError

from adapter.errors import ConfigError, StoreError
from adapter.intake import Accepted, Intake, forgotten
from adapter.sources.ack import (
    Problem,
    Responder,
    build_ack,
    read_frame,
    transient_problem,
    unreadable_problem,
)
from adapter.sources.config import MllpConfig, is_loopback
from adapter.sources.events import Events
from adapter.sources.framing import BadFrame, Frame, FrameDecoder, frame
from adapter.sources.hl7v2 import Header
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
        self._tls: ssl.SSLContext | None = None
        self._handshaking: set[asyncio.Task[None]] = set()  # connections in TLS handshake
        self.buffered = 0  # bytes of unfinished frames held by all connections

    def wait_ready(self, timeout: float = 10.0) -> int:
        """Block (from another thread) until listening; return the bound port."""
        if not self.ready.wait(timeout) or self.port is None:
            raise TimeoutError(f"the MLLP listener did not start within {timeout:g} s")
        return self.port

    async def serve(self, intake: Intake, stop: asyncio.Event) -> None:
        """Listen until ``stop`` is set; then finish what was read, ACK it and close."""
        self._intake = intake
        self._committer = _Committer(intake, self.config.batch_size, self.events)
        if (exposed := self.config.exposure()) is not None:
            raise ConfigError(exposed)
        self._tls = self.config.tls.server_context() if self.config.tls else None
        committing = asyncio.create_task(self._committer.run())
        try:
            server = await asyncio.start_server(
                self._connected, self.config.host, self.config.port, limit=_READ_BYTES
            )
        except BaseException:
            committing.cancel()
            raise
        self.port = int(server.sockets[0].getsockname()[1])
        self._announce()
        self.ready.set()
        try:
            await stop.wait()
        finally:
            await self._shut_down(server)
            committing.cancel()
            self.ready.clear()
        self.events.emit("mllp.stopped", port=self.port)

    def _announce(self) -> None:
        """The listening event, saying how the door is guarded (a warning for allow_any)."""
        config = self.config
        guard = "loopback" if is_loopback(config.host) else "allow_any"
        if config.allowed_peers:
            guard = "allowed_peers"
        if config.mutual_tls:
            guard = "mutual_tls" if not config.allowed_peers else "mutual_tls+allowed_peers"
        level = logging.WARNING if guard == "allow_any" else logging.INFO
        tls = int(self._tls is not None)
        self.events.emit(
            "mllp.listening", level=level, host=config.host, port=self.port or 0, tls=tls,
            guard=guard,
        )  # fmt: skip

    async def _shut_down(self, server: asyncio.Server) -> None:
        server.close()
        for task in list(self._handshaking):  # nothing read from these yet: just close
            task.cancel()
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
        address = _address(writer)
        if not self._admitted(address):
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = (reader, writer)  # counted from here, handshake included
        peer = next(self._peers)
        acked = 0
        try:
            if not await self._secured(writer, address):
                return
            self.events.emit("mllp.connected", connection=peer)
            acked = await self._converse(reader, writer, peer)
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

    def _admitted(self, address: str) -> bool:
        """Whether a new connection from ``address`` may go on: the peer is allowed and
        there is room for it. Decided before a byte is read."""
        if not self.config.allows(address):
            self.events.emit(
                "mllp.refused", level=logging.WARNING, reason="peer_not_allowed", peer=address
            )
            return False
        if len(self._connections) >= self.config.max_connections:
            self._limit("max_connections", limit_value=self.config.max_connections)
            return False
        return True

    async def _secured(self, writer: asyncio.StreamWriter, address: str) -> bool:
        """The TLS handshake, when TLS is on (with tls_ca, the client's certificate must be
        signed by it); False when it failed. Plain connections pass."""
        if self._tls is None:
            return True
        task = asyncio.current_task()
        assert task is not None
        self._handshaking.add(task)
        try:
            await writer.start_tls(
                self._tls, ssl_handshake_timeout=self.config.half_frame_timeout_seconds
            )
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            self.events.emit(
                "mllp.refused", level=logging.WARNING, reason="tls_handshake", peer=address,
                error=type(exc).__name__,
            )  # fmt: skip
            return False
        finally:
            self._handshaking.discard(task)
        return True

    def _limit(self, limit: str, level: int = logging.WARNING, **fields: int) -> None:
        self.events.emit("mllp.limit", level=level, limit=limit, **fields)

    async def _converse(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: int
    ) -> int:
        decoder = FrameDecoder(self.config.max_message_bytes)
        hold = _Hold(self, peer)
        sent = 0
        try:
            while data := await self._next_chunk(reader, decoder, hold):
                frames = decoder.feed(data)
                over = hold.update(decoder.pending, completed=bool(frames))
                replies = await self.handle(frames)
                if replies:
                    writer.write(b"".join(frame(reply) for reply in replies))
                    await writer.drain()
                    sent += len(replies)
                if over:  # the complete frames were answered; the half frame is dropped
                    break
        finally:
            hold.update(0, completed=True)
        return sent

    async def _next_chunk(
        self, reader: asyncio.StreamReader, decoder: FrameDecoder, hold: _Hold
    ) -> bytes:
        """The next bytes from the peer; empty at its end, or when a frame it started did
        not end in time (the connection is then closed)."""
        remaining = hold.time_left()
        if remaining is None:
            return await reader.read(_READ_BYTES)
        try:
            return await asyncio.wait_for(reader.read(_READ_BYTES), max(remaining, 0.0))
        except TimeoutError:
            self._limit("half_frame_timeout", connection=hold.peer, pending_bytes=decoder.pending)
            return b""

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
        if isinstance(item, BadFrame) and item.too_large:
            self._limit("max_message_bytes", limit_value=self.config.max_message_bytes)
        header, checked = read_frame(item, self.forced_charset)
        if isinstance(checked, Problem) and checked.error == "207":  # a bug, not the sender's
            self.events.emit("mllp.check_failed", level=logging.ERROR, text=checked.text[:80])
        return header, checked

    def _admit(self, checked: list[bytes | Problem]) -> list[_Outcome]:
        """The enrolment gate on this chunk's messages, here on the event loop: the forgotten
        are counted and need no commit; the rest go to the committer."""
        raws = [c for c in checked if isinstance(c, bytes)]
        assert self._intake is not None and self._committer is not None
        verdicts: Iterator[str | Problem]
        try:
            verdicts = iter(self._intake.triage(raws))
        except Exception:  # the registry, or one message: ask for each message alone
            verdicts = iter([self._triage_one(raw) for raw in raws])
        outcomes: list[_Outcome] = []
        dropped: list[str] = []
        for item in checked:
            if isinstance(item, Problem):
                outcomes.append(item)
            elif isinstance(verdict := next(verdicts), Problem):
                outcomes.append(verdict)
            elif forgotten(verdict):
                dropped.append(verdict)
                outcomes.append(None)
            else:
                outcomes.append(self._committer.submit(one_message(item, SOURCE), verdict))
        self._forget(dropped)
        return outcomes

    def _triage_one(self, raw: bytes) -> str | Problem:
        """The gate's verdict on one message, or the problem to answer: a failure to read
        the store is transient (AR, resend later); any other failure comes from this
        message's bytes and would come again (AE, do not resend it unchanged)."""
        assert self._intake is not None
        try:
            return self._intake.triage([raw])[0]
        except Exception as exc:
            name = type(exc).__name__
            self.events.emit("mllp.gate_failed", level=logging.ERROR, error=name)
            if isinstance(exc, StoreError | SQLAlchemyError | OSError):
                return transient_problem(f"the enrolment registry could not be read ({name})")
            return unreadable_problem(name)

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


def _address(writer: asyncio.StreamWriter) -> str:
    """The peer's IP address ("" when the socket has none)."""
    peer = writer.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else ""


async def _settled(done: asyncio.Future[Accepted]) -> Problem | None:
    """None when the message was committed (or forgotten by the enrolment gate), else the
    AR that makes the sender resend it later."""
    try:
        await done
    except Exception as exc:
        return transient_problem(f"the inbox could not store it ({type(exc).__name__})")
    return None


class _Hold:
    """What one connection holds of a frame it has not finished: its share of the
    listener's buffered bytes, and when that frame started (for the half-frame timeout)."""

    def __init__(self, source: MllpSource, peer: int) -> None:
        self.source = source
        self.peer = peer
        self.held = 0
        self.started: float | None = None

    def update(self, pending: int, *, completed: bool) -> bool:
        """Record ``pending`` bytes held after a chunk; True when the listener's total is
        now over ``max_buffered_bytes`` (the connection must close)."""
        source = self.source
        source.buffered += pending - self.held
        self.held = pending
        if not pending:
            self.started = None
        elif completed or self.started is None:
            self.started = time.monotonic()  # a frame (re)started in this chunk
        limit = source.config.max_buffered_bytes
        if pending and source.buffered > limit:
            source._limit("max_buffered_bytes", connection=self.peer, limit_value=limit)
            return True
        return False

    def time_left(self) -> float | None:
        """Seconds until the frame being received must have ended; None when none is."""
        if self.started is None:
            return None
        timeout = self.source.config.half_frame_timeout_seconds
        return self.started + timeout - time.monotonic()
