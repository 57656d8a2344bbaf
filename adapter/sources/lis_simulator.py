"""A small LIS that answers result queries over MLLP, for tests and demos.

It holds ORU^R01 messages (read from a folder such as a ``simulate-lis`` feed, rescanned for
new files on each query, or added with :meth:`LisSimulator.add`) and answers ``QRY^R02`` with
``ORF^R04`` and ``QBP`` with ``RSP``: every held message of the asked patient whose report
time (OBR-22, else OBR-7, else MSH-7) is in ``[since, until)``, ``page_size`` messages per
answer with a DSC continuation pointer. Anything else gets an AR acknowledgement.
:meth:`LisSimulator.answer` is the pure core; :meth:`LisSimulator.serve` the asyncio server.

It is as strict as a strict LIS where TrialBridge could go wrong: a query whose MSH-10 it has
seen before is refused (AR: a LIS that discards duplicate control ids), and so is a QRY^R02
without QRF-1 (required in v2.4). Every query's MSH-10 is kept in :attr:`control_ids`.
A result :meth:`LisSimulator.add`-ed later than its report time is a result the lab released
late (or back-dated): it is answered from then on, to any query whose window holds its
report time.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from adapter.errors import MessageError
from adapter.parse.decode import normalise, split_messages
from adapter.sources.ack import Problem, build_ack
from adapter.sources.framing import BadFrame, FrameDecoder, frame
from adapter.sources.hl7v2 import Header, format_ts, parse_ts, read_header
from adapter.sources.mllp import control_ids

LIS_TZ = timezone(timedelta(hours=8))
_KEPT = 10_000  # queries remembered in LisSimulator.requests / control_ids


@dataclass(frozen=True, slots=True)
class _Held:
    patients: frozenset[tuple[str, str]]  # (PID-3 value, authority upper case)
    reported: datetime
    body: tuple[str, ...]  # the segments from PID on


@dataclass(frozen=True, slots=True)
class _Ask:
    patient: tuple[str, str]
    since: datetime
    until: datetime
    offset: int


class LisSimulator:
    """Answers result queries from the messages it holds."""

    def __init__(
        self,
        feed: Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        page_size: int = 0,
        application: str = "NTC-LIS",
        facility: str = "NTCH",
        tz: timezone = LIS_TZ,
    ) -> None:
        self.feed = feed
        self.host, self.requested_port = host, port
        self.page_size = page_size
        self.application, self.facility = application, facility
        self.tz = tz
        self.queries = 0
        # The last queries received (as received, and their MSH-10), for tests and demos;
        # bounded so that a simulator left running for days does not grow without end.
        self.control_ids: deque[str] = deque(maxlen=_KEPT)
        self.requests: deque[bytes] = deque(maxlen=_KEPT)
        self._seen: set[str] = set()  # every MSH-10 ever received (a reused one is refused)
        # A LIS killed mid-pull: after this many queries answered, connections are dropped
        # without an answer (None: never).
        self.drop_after: int | None = None
        self.port: int | None = None
        self.ready = threading.Event()
        self._held: list[_Held] = []
        self._loaded: set[str] = set()
        self._lock = threading.Lock()
        self._ids = control_ids("LS")

    # The messages held ---------------------------------------------------------------------

    def add(self, data: bytes) -> int:
        """Hold the ORU^R01 messages in ``data`` (a file's bytes); return how many."""
        try:
            messages = split_messages(data)
        except MessageError:
            return 0
        held = [h for h in (self._hold(m) for m in messages) if h is not None]
        with self._lock:
            self._held.extend(held)
        return len(held)

    def rescan(self) -> None:
        """Read the feed folder's files not read yet."""
        if self.feed is None:
            return
        for path in sorted(self.feed.glob("*.hl7")):
            if path.name not in self._loaded:
                self._loaded.add(path.name)
                self.add(path.read_bytes())

    def _hold(self, message: bytes) -> _Held | None:
        header = read_header(message)
        if header is None or header.message_type != "ORU":
            return None
        segments = message.decode("latin-1").split("\r")
        start = next((i for i, s in enumerate(segments) if s.startswith("PID")), None)
        if start is None:
            return None
        sep, component = header.separator, header.encoding[0]
        pid3 = _fields(segments[start], sep, 3).split(header.encoding[1])
        patients = frozenset(
            (_nth(c, 0).strip(), _nth(c, 3).split("&")[0].strip().upper())
            for c in (rep.split(component) for rep in pid3)
        )
        reported = _report_time(segments, header, self.tz)
        return _Held(patients, reported, tuple(s for s in segments[start:] if s))

    # The pure core -------------------------------------------------------------------------

    def answer(self, request: bytes, now: datetime | None = None) -> bytes:
        """The response to one query message."""
        moment = now or datetime.now(self.tz)
        header = read_header(request)
        if header is None or header.message_type not in ("QRY", "QBP"):
            problem = Problem("AR", "200", "MSH^1^9", "only QRY^R02 and QBP queries are answered")
            return build_ack(header, self._ids(), moment, problem)
        self.requests.append(request)
        seen = header.control_id in self._seen
        self._seen.add(header.control_id)
        self.control_ids.append(header.control_id)
        if seen or not header.control_id:
            problem = Problem("AR", "207", "MSH^1^10", "MSH-10 is empty or was used before")
            return build_ack(header, self._ids(), moment, problem)
        text = normalise(request).decode("latin-1")
        if header.message_type == "QRY" and not _qrf_where(text, header.separator):
            problem = Problem("AR", "101", "QRF^1^1", "QRF-1 (where subject filter) is required")
            return build_ack(header, self._ids(), moment, problem)
        ask = _read_ask(text, header, self.tz)
        if ask is None:
            problem = Problem("AE", "101", "", "the query names no patient or no time window")
            return build_ack(header, self._ids(), moment, problem)
        self.queries += 1
        return self._respond(header, request, ask, moment)

    def _respond(self, header: Header, request: bytes, ask: _Ask, now: datetime) -> bytes:
        with self._lock:
            found = [
                h
                for h in self._held
                if ask.patient in h.patients and ask.since <= h.reported < ask.until
            ]
        found.sort(key=lambda h: h.reported)
        end = len(found) if self.page_size <= 0 else ask.offset + self.page_size
        page = found[ask.offset : end]
        qry = header.message_type == "QRY"
        echoed = [
            s
            for s in normalise(request).decode("latin-1").split("\r")
            if s[:3] in (("QRD", "QRF") if qry else ("QPD",))
        ]
        msh = "|".join(
            [
                "MSH",
                header.encoding,
                self.application,
                self.facility,
                header.field(3),
                header.field(4),
                format_ts(now),
                "",
                "ORF^R04^ORF_R04" if qry else "RSP^Z02^RSP_K11",
                self._ids(),
                "P",
                header.version or "2.5.1",
            ]
        )
        segments = [msh, f"MSA|AA|{header.control_id}"]
        if not qry:
            query_tag = _fields(echoed[0], "|", 2) if echoed else ""
            segments.append(f"QAK|{query_tag}|{'OK' if found else 'NF'}")
        segments += echoed
        for held in page:
            segments += held.body
        if end < len(found):
            segments.append(f"DSC|{end}|I")
        return ("\r".join(segments) + "\r").encode("latin-1")

    # The server ----------------------------------------------------------------------------

    def wait_ready(self, timeout: float = 10.0) -> int:
        if not self.ready.wait(timeout) or self.port is None:
            raise TimeoutError(f"the LIS simulator did not start within {timeout:g} s")
        return self.port

    async def serve(self, stop: asyncio.Event) -> None:
        self.rescan()
        server = await asyncio.start_server(self._connected, self.host, self.requested_port)
        self.port = int(server.sockets[0].getsockname()[1])
        self.ready.set()
        async with server:
            await stop.wait()
        self.ready.clear()

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder()
        try:
            while data := await reader.read(65536):
                for item in decoder.feed(data):
                    if isinstance(item, BadFrame):
                        continue
                    if self.drop_after is not None and self.queries >= self.drop_after:
                        return  # killed: the connection closes with the query unanswered
                    await asyncio.to_thread(self.rescan)
                    writer.write(frame(self.answer(item)))
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


def _nth(items: list[str], index: int) -> str:
    return items[index] if len(items) > index else ""


def _fields(segment: str, separator: str, number: int) -> str:
    parts = segment.split(separator)
    return parts[number] if len(parts) > number else ""


def _report_time(segments: list[str], header: Header, tz: timezone) -> datetime:
    for segment in segments:
        if segment.startswith("OBR"):
            for number in (22, 7):
                found = parse_ts(_fields(segment, header.separator, number), tz)
                if found is not None:
                    return found
    return parse_ts(header.field(7), tz) or datetime.now(UTC)


def _qrf_where(text: str, separator: str) -> str:
    qrf = next((s for s in text.split("\r") if s.startswith("QRF")), "")
    return _fields(qrf, separator, 1).strip()


def _read_ask(text: str, header: Header, tz: timezone) -> _Ask | None:
    segments = {s[:3]: s.split(header.separator) for s in text.split("\r") if s}
    component = header.encoding[0]
    if header.message_type == "QRY":
        qrd, qrf = segments.get("QRD", []), segments.get("QRF", [])
        who = _nth(qrd, 8).split(component)
        authority = _nth(who, 8) or _nth(who, 3)  # XCN-9, or where a CX has it
        since, until = parse_ts(_nth(qrf, 2), tz), parse_ts(_nth(qrf, 3), tz)
    else:
        qpd = segments.get("QPD", [])
        who = _nth(qpd, 3).split(component)
        authority = _nth(who, 3)
        since, until = parse_ts(_nth(qpd, 4), tz), parse_ts(_nth(qpd, 5), tz)
    offset = _nth(segments.get("DSC", []), 1).strip()
    if not _nth(who, 0).strip() or since is None or until is None:
        return None
    patient = (_nth(who, 0).strip(), authority.split("&")[0].strip().upper())
    return _Ask(patient, since, until, int(offset) if offset.isdigit() else 0)
