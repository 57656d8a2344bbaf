"""Small pure HL7 v2 helpers the sources share: the MSH read from raw bytes, escaping, and
timestamps. Raw bytes are read as Latin-1, which maps every byte to one character, so a
field echoed back (MSH-10, the applications) is byte-for-byte what the sender sent, whatever
its character set.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from adapter.parse.decode import normalise

DEFAULT_ENCODING = "^~\\&"
_LINE_END = re.compile(rb"[\r\n]")
_TS = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d+)?([+-]\d{4})?$")


@dataclass(frozen=True, slots=True)
class Header:
    """The MSH segment of one message; ``field(n)`` is MSH-n, as sent."""

    separator: str  # MSH-1
    encoding: str  # MSH-2: component, repetition, escape, subcomponent
    fields: tuple[str, ...]  # fields[0] is "MSH"
    # Read once from the fields (each is asked for several times per message):
    message_type: str = dataclasses.field(init=False)  # MSH-9.1, upper case
    trigger: str = dataclasses.field(init=False)  # MSH-9.2, upper case
    control_id: str = dataclasses.field(init=False)  # MSH-10
    version: str = dataclasses.field(init=False)  # MSH-12.1

    def __post_init__(self) -> None:
        message_type = self.field(9).split(self.encoding[0])
        object.__setattr__(self, "message_type", message_type[0].strip().upper())
        trigger = message_type[1].strip().upper() if len(message_type) > 1 else ""
        object.__setattr__(self, "trigger", trigger)
        object.__setattr__(self, "control_id", self.field(10).strip())
        object.__setattr__(self, "version", self.component(12, 1))

    def field(self, number: int) -> str:
        if number == 1:
            return self.separator
        index = number - 1
        return self.fields[index] if index < len(self.fields) else ""

    def component(self, number: int, position: int = 1) -> str:
        parts = self.field(number).split(self.encoding[0])
        return parts[position - 1].strip() if position <= len(parts) else ""


def read_header(raw: bytes) -> Header | None:
    """The MSH of ``raw`` (CR, LF or CRLF separated), or None when it does not start with
    one (or its first bytes are a UTF-16/32 byte-order mark on bytes that do not decode)."""
    try:
        first = _first_line(raw)
    except Exception:  # normalise() could not decode a wide encoding: no MSH to read
        return None
    text = first.decode("latin-1")
    if not text.startswith("MSH") or len(text) < 4:
        return None
    separator = text[3]
    fields = tuple(text.split(separator))
    encoding = fields[1] if len(fields) > 1 else ""
    if len(encoding) < 4 or separator in encoding:
        encoding = (encoding + DEFAULT_ENCODING[len(encoding) :])[:4]
    return Header(separator, encoding, fields)


def _first_line(raw: bytes) -> bytes:
    """The first segment of ``raw``: cut directly when it starts with MSH (every message
    read per frame does), else after normalising (BOMs, leading blanks)."""
    if raw.startswith(b"MSH"):
        found = _LINE_END.search(raw, 0, 8192)
        return raw[: found.start()] if found else normalise(raw[:8192])
    return normalise(raw[:8192]).split(b"\r", 1)[0]


def escape(text: str, separator: str = "|", encoding: str = DEFAULT_ENCODING) -> str:
    """``text`` as an HL7 field value: delimiters escaped, non-ASCII replaced by ``?``."""
    escape_char = encoding[2]
    codes = {
        escape_char: "E",
        separator: "F",
        encoding[0]: "S",
        encoding[1]: "R",
        encoding[3]: "T",
    }
    out = []
    for char in text.encode("ascii", errors="replace").decode("ascii"):
        code = codes.get(char)
        out.append(f"{escape_char}{code}{escape_char}" if code else char)
    return "".join(out).replace("\r", " ").replace("\n", " ")


def format_ts(moment: datetime) -> str:
    """An HL7 DTM with seconds and the offset: ``20240115093000+0800``."""
    if moment.tzinfo is None:
        raise ValueError("an HL7 timestamp needs an aware datetime")
    return moment.strftime("%Y%m%d%H%M%S%z")


def parse_ts(text: str, default: timezone) -> datetime | None:
    """An HL7 DTM (any precision) as an aware datetime, ``default`` offset when it has none;
    None when it is empty or not a DTM."""
    found = _TS.match(text.strip())
    if not found:
        return None
    year, month, day, hour, minute, second, offset = found.groups()
    tz = default
    if offset:
        sign = -1 if offset[0] == "-" else 1
        tz = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
    try:
        return datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=tz,
        )
    except ValueError:
        return None
