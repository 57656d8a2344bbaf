"""What goes into the inbox: each message of a file or stream with its deduplication key.

Pure: bytes in, :class:`Incoming` out. A message is stored as the parser will see it:
split out of its file or batch (FHS/BHS envelopes dropped), segment separators normalised
to CR. So a sender that resends the same message with CRLF instead of CR is still
recognised as a duplicate. Bytes that are not HL7 at all are kept whole as one message, so
that the refusal (and its reason) is recorded rather than lost.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from adapter.errors import MessageError
from adapter.parse.decode import split_messages
from adapter.store.schema import CONTROL_ID_LENGTH, SENDER_LENGTH


@dataclass(frozen=True, slots=True)
class Incoming:
    """One message on its way into the inbox."""

    source: str  # file name (#position); shown to the user, never stored (names can identify)
    raw: bytes
    sender: str  # MSH-3@MSH-4 (first components), "" when there is no MSH
    control_id: str  # MSH-10, "" when there is none
    content_hash: str  # sha256 of raw, hex

    @property
    def key(self) -> tuple[str, str, str]:
        """The deduplication key: sender, MSH-10 and content hash."""
        return (self.sender, self.control_id, self.content_hash)


def incoming(data: bytes, source: str) -> list[Incoming]:
    """Every message in ``data`` (a file's bytes), in order."""
    try:
        chunks = split_messages(data)
    except (MessageError, UnicodeError):
        chunks = [data]  # stored whole; translate() refuses it with the reason
    if len(chunks) == 1:
        return [one_message(chunks[0], source)]
    return [one_message(raw, f"{source}#{i}") for i, raw in enumerate(chunks, start=1)]


def one_message(raw: bytes, source: str) -> Incoming:
    """``raw`` as one inbox message, when it is known to be one already normalised message
    (an MLLP frame after its checks): :func:`incoming` without the search for others."""
    sender, control_id = header(raw)
    return Incoming(source, raw, sender, control_id, hashlib.sha256(raw).hexdigest())


def header(raw: bytes) -> tuple[str, str]:
    """``(MSH-3@MSH-4, MSH-10)`` read from the raw bytes; empty strings when absent."""
    if not raw.startswith(b"MSH") or len(raw) < 8:
        return "", ""
    msh = raw.split(b"\r", 1)[0]
    fields = msh.split(msh[3:4])
    component = fields[1][:1] or b"^"

    def field(number: int) -> str:  # MSH-1 is the separator itself: MSH-n is fields[n - 1]
        if len(fields) < number:
            return ""
        first = fields[number - 1].split(component, 1)[0]
        return first.decode("utf-8", errors="backslashreplace").strip()

    sender = f"{field(3)}@{field(4)}"
    return sender[:SENDER_LENGTH], field(10)[:CONTROL_ID_LENGTH]
