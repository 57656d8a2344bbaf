"""A file's messages, read in chunks: :func:`adapter.parse.decode.split_messages` for input
that does not fit in memory at once.

Pure: bytes in, messages out. The file drop reads a file a megabyte at a time and commits
its messages in batches, so a large file never sits in memory whole (a 512 MB file read
whole took the service to 660 MB). Each message comes out byte for byte as
``split_messages`` returns it for the whole input (a test holds the two to that), so a
message read here and the same message read whole share one deduplication key.

What ``split_messages`` does to the whole input, done here as the bytes arrive:
a UTF-16/32 byte-order mark turns the file into UTF-8 (an incremental decoder), a UTF-8 BOM
is dropped, CRLF and LF become CR, the input is stripped of ``\\r \\0 \\t \\v \\x1c`` at both
ends, a message (or batch envelope segment) starts at every ``MSH``/``FHS``/``BHS``/``BTS``/
``FTS`` at the start of a line with at least one byte after it, and envelope parts are
dropped. The one look-ahead: a start line is real only when some byte follows it in the
stripped input, so the message before it is held until that is known.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator

from adapter.errors import DecodeError, ParseError

_STRIP = b"\r\x00 \t\x0b\x1c"  # what split_messages strips from both ends of the input
_NAMES = frozenset({b"MSH", b"FHS", b"BHS", b"BTS", b"FTS"})
_ENVELOPE = frozenset({b"FHS", b"BHS", b"BTS", b"FTS"})
_WIDE_BOMS = (  # the order split_messages tries them in (UTF-32 LE starts like UTF-16 LE)
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def split_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Every message of the input given as ``chunks``, in order (FHS/BHS envelopes dropped).

    Raises :class:`ParseError` as ``split_messages`` does (empty input, no MSH first, no
    message in a batch) and :class:`DecodeError` when a UTF-16/32 file does not decode.
    """
    splitter = _Splitter()
    for chunk in _normalised(chunks):
        yield from splitter.feed(chunk)
    yield from splitter.finish()


def _normalised(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The input as UTF-8 with CR segment separators, chunk by chunk."""
    carry_cr = False
    for chunk in _utf8(chunks):
        if not chunk:
            continue
        if carry_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]  # the LF of a CRLF split between two chunks
        carry_cr = chunk.endswith(b"\r")
        yield chunk.replace(b"\r\n", b"\r").replace(b"\n", b"\r")


def _utf8(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The raw chunks, decoded to UTF-8 when the input starts with a wide BOM, a UTF-8 BOM
    dropped. The first four bytes are gathered before deciding."""
    stream = iter(chunks)
    head = b""
    for chunk in stream:
        head += chunk
        if len(head) >= 4:
            break
    codec = next((name for bom, name in _WIDE_BOMS if head.startswith(bom)), None)
    converted = _decoded(codec, head, stream) if codec else _chained(head, stream)
    first = b""
    for chunk in converted:  # the UTF-8 BOM check needs three bytes of the converted input
        first += chunk
        if len(first) >= 3:
            break
    yield first.removeprefix(codecs.BOM_UTF8)
    yield from converted


def _chained(head: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield head
    yield from rest


def _decoded(codec: str, head: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    decoder = codecs.getincrementaldecoder(codec)()
    offset = 0
    try:
        for chunk in _chained(head, rest):
            yield decoder.decode(chunk).encode("utf-8")
            offset += len(chunk)
        yield decoder.decode(b"", final=True).encode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(
            f"the file starts with a {codec.upper()} byte-order mark but byte "
            f"{offset + exc.start} does not decode as {codec.upper()} ({exc.reason})",
            location="file",
            hint="have the LIS write the file whole in one character set (UTF-8 is best)",
        ) from exc


class _Splitter:
    """Lines in, messages out, with the one-message look-ahead the module docstring names."""

    def __init__(self) -> None:
        self._leading = True  # still skipping the stripped bytes at the start
        self._partial = b""  # the bytes after the last CR seen
        self._held: list[bytes] | None = None  # the message before the current one
        self._current: list[bytes] | None = None  # the lines of the current message
        self._confirmed = False  # a byte follows the current message's start
        self._messages = 0

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        if self._leading:
            chunk = chunk.lstrip(_STRIP)
            if not chunk:
                return
            self._leading = False
        lines = (self._partial + chunk).split(b"\r")
        self._partial = lines.pop()
        for line in lines:
            yield from self._line(line)

    def finish(self) -> Iterator[bytes]:
        if self._partial or self._current is not None:
            yield from self._line(self._partial)
        self._partial = b""
        current = self._current
        if current is None:
            raise ParseError("the input is empty", hint="send at least one MSH segment")
        if not self._confirmed:  # "MSH" at the very end starts nothing: it is a line
            if self._held is None:
                raise _not_hl7()
            current = [*self._held, *current]
            self._held = None
        yield from self._release()
        yield from self._emit(b"\r".join(current).rstrip(_STRIP))
        if not self._messages:
            raise ParseError("the batch holds no MSH segment", hint="the batch envelope is empty")

    def _line(self, line: bytes) -> Iterator[bytes]:
        if line[:3] in _NAMES:
            if self._current is not None:
                self._confirmed = True  # this line's name follows the current start
                yield from self._release()
                self._held = self._current
            self._current = [line]
            self._confirmed = bool(line[3:].strip(_STRIP))
            return
        if self._current is None:
            raise _not_hl7()
        self._current.append(line)
        if not self._confirmed and line.strip(_STRIP):
            self._confirmed = True
            yield from self._release()

    def _release(self) -> Iterator[bytes]:
        """The held message, now that the one after it is known to start for real."""
        if self._confirmed and self._held is not None:
            held, self._held = self._held, None
            yield from self._emit(b"\r".join(held).rstrip(b"\r"))

    def _emit(self, message: bytes) -> Iterator[bytes]:
        if message[:3] not in _ENVELOPE:
            self._messages += 1
            yield message


def _not_hl7() -> ParseError:
    return ParseError(
        "the input does not start with an MSH (or FHS/BHS) segment",
        location="segment 1",
        hint="check that this is an HL7v2 message and that the file is not truncated",
    )
