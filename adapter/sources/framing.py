"""MLLP framing, the first of the three MLLP layers: ``<VT> payload <FS><CR>``. Pure.

:class:`FrameDecoder` is fed whatever bytes the socket produced and hands back, in order,
each complete payload and each :class:`BadFrame` (bytes outside a frame, a frame cut short by
a new start block, a frame over the size limit). A bad frame costs only its own bytes: the
decoder resynchronises on the next start block, so the connection's later messages go on.
Blank bytes between frames (some senders add a newline after ``<FS><CR>``) are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

START = b"\x0b"
END = b"\x1c\x0d"
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
_BLANK = b" \t\r\n\x00"


def frame(payload: bytes) -> bytes:
    """``payload`` wrapped for MLLP."""
    return START + payload + END


@dataclass(frozen=True, slots=True)
class BadFrame:
    """Bytes that were not a well-formed frame, with what was wrong (never the bytes' text)."""

    reason: str
    data: bytes  # what was discarded, kept for the reply's MSH (if it has one), not logged
    too_large: bool = False  # over the decoder's max_bytes (a limit hit, worth counting)


Frame = bytes | BadFrame


class FrameDecoder:
    """Incremental decoder: ``feed(chunk)`` returns the frames completed by ``chunk``."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._buffer = bytearray()
        self._oversized = False  # inside a frame already reported as too large

    @property
    def pending(self) -> int:
        """Bytes held while waiting for the rest of a frame."""
        return len(self._buffer)

    def feed(self, chunk: bytes) -> list[Frame]:
        self._buffer += chunk
        frames: list[Frame] = []
        while (found := self._next()) is not None:
            frames.append(found)
        return frames

    def _next(self) -> Frame | None:
        if self._oversized:
            return self._skip_oversized()
        buffer = self._buffer
        start = buffer.find(START)
        if start != 0:
            return self._before_start(start)
        end = buffer.find(END, 1)
        restart = buffer.find(START, 1)
        if restart > 0 and (end < 0 or restart < end):
            return self._cut(restart, restart, "a frame was cut short by a new start block")
        if end < 0:
            return self._too_large() if len(buffer) - 1 > self.max_bytes else None
        if end - 1 > self.max_bytes:
            cut = self._cut(end, end + len(END), f"a frame is over {self.max_bytes} bytes")
            return BadFrame(cut.reason, cut.data, too_large=True)
        payload = bytes(buffer[1:end])
        del buffer[: end + len(END)]
        return payload

    def _before_start(self, start: int) -> Frame | None:
        """Bytes before any start block: a frame missing its start block (when <FS><CR>
        ends them), or noise. Blanks are dropped silently."""
        buffer = self._buffer
        limit = start if start > 0 else len(buffer)
        end = buffer.find(END, 0, limit)
        if end >= 0:
            cut = end + len(END)
        elif start > 0 or len(buffer) > self.max_bytes:
            cut = limit
        elif not buffer.strip(_BLANK):
            buffer.clear()
            return None
        else:
            return None  # wait: the rest of a frame missing its start block may come
        junk = bytes(buffer[:cut])
        del buffer[:cut]
        if not junk.strip(_BLANK):
            return self._next()
        return BadFrame("bytes outside an MLLP frame (no start block 0x0b)", junk)

    def _cut(self, data_end: int, drop_to: int, reason: str) -> BadFrame:
        data = bytes(self._buffer[1:data_end])
        del self._buffer[:drop_to]
        return BadFrame(reason, data)

    def _too_large(self) -> BadFrame:
        self._oversized = True
        data = bytes(self._buffer[1:4097])  # enough for its MSH
        self._buffer.clear()
        return BadFrame(f"a frame is over {self.max_bytes} bytes", data, too_large=True)

    def _skip_oversized(self) -> Frame | None:
        """Drop the rest of an oversized frame, up to its end or the next start block."""
        buffer = self._buffer
        end, restart = buffer.find(END), buffer.find(START)
        stops = [p for p in (end + len(END) if end >= 0 else -1, restart) if p >= 0]
        if not stops:
            keep = 1 if buffer.endswith(END[:1]) else 0  # half an end marker
            del buffer[: len(buffer) - keep]
            return None
        del buffer[: min(stops)]
        self._oversized = False
        return self._next()
