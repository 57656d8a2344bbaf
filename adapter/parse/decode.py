"""Bytes -> text for HL7v2: byte-order marks, MSH-18 character sets, segment separators,
and batch envelopes.

python-hl7 parses text only and does not read MSH-18, so this module does the byte-level
work the library leaves to its caller (DESIGN.md, "python-hl7 gaps").
"""

from __future__ import annotations

import codecs
import itertools
import re

from adapter.errors import DecodeError, ParseError

# HL7 table 0211 (alternate character sets) -> Python codec names.
_HL7_CHARSETS: dict[str, str] = {
    "ASCII": "ascii",
    "ISO IR6": "ascii",
    "8859/1": "iso8859-1",
    "ISO IR100": "iso8859-1",
    "8859/2": "iso8859-2",
    "8859/3": "iso8859-3",
    "8859/4": "iso8859-4",
    "8859/5": "iso8859-5",
    "8859/6": "iso8859-6",
    "8859/7": "iso8859-7",
    "8859/8": "iso8859-8",
    "8859/9": "iso8859-9",
    "8859/15": "iso8859-15",
    "UNICODE": "utf-8",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "UNICODE UTF-16": "utf-16",
    "UNICODE UTF-32": "utf-32",
    "GB 18030-2000": "gb18030",
    "BIG-5": "big5",
    "KS X 1001": "euc-kr",
    "ISO IR87": "iso2022_jp",
    "ISO IR159": "iso2022_jp_1",
}

# With no MSH-18 the standard says ASCII; UTF-8 is a superset that real feeds rely on.
DEFAULT_CHARSET = "utf-8"

_BOMS = (codecs.BOM_UTF8,)
_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_SEGMENT_START = re.compile(rb"(?:^|\r)(MSH|FHS|BHS|BTS|FTS)(?=.)", re.DOTALL)
_ENVELOPE = {b"FHS", b"BHS", b"BTS", b"FTS"}


def codec_for(charset: str) -> str:
    """The Python codec for an HL7 table 0211 name (or a Python codec name)."""
    name = charset.strip().upper()
    if name in _HL7_CHARSETS:
        return _HL7_CHARSETS[name]
    try:
        return codecs.lookup(charset.strip()).name
    except LookupError:
        raise DecodeError(
            f"unknown character set {charset!r}",
            location="MSH.18",
            hint="use an HL7 table 0211 name (e.g. 'UNICODE UTF-8', '8859/1') "
            "or force the source's charset in config",
        ) from None


def normalise(data: bytes) -> bytes:
    """Strip a UTF-8 BOM and turn CRLF / LF segment separators into CR."""
    for wide_bom, codec in _WIDE_BOMS:
        if data.startswith(wide_bom):
            # Wide encodings cannot be split on bytes: decode to UTF-8 first.
            data = data.decode(codec).encode("utf-8")
            break
    for bom in _BOMS:
        if data.startswith(bom):
            data = data[len(bom) :]
    return data.replace(b"\r\n", b"\r").replace(b"\n", b"\r").strip(b"\r\x00 \t\x0b\x1c")


def split_messages(data: bytes) -> list[bytes]:
    """Split a file or stream into single messages, unwrapping FHS/BHS batches.

    Returns each message as CR-separated bytes, in order. Envelope segments are dropped.
    """
    data = normalise(data)
    if not data:
        raise ParseError("the input is empty", hint="send at least one MSH segment")
    starts = [m.start(1) for m in _SEGMENT_START.finditer(data)]
    if not starts or starts[0] != 0:
        raise ParseError(
            "the input does not start with an MSH (or FHS/BHS) segment",
            location="segment 1",
            hint="check that this is an HL7v2 message and that the file is not truncated",
        )
    messages: list[bytes] = []
    bounds = [*starts, len(data)]
    for begin, end in itertools.pairwise(bounds):
        chunk = data[begin:end].strip(b"\r")
        if chunk[:3] in _ENVELOPE:
            continue
        messages.append(chunk)
    if not messages:
        raise ParseError("the batch holds no MSH segment", hint="the batch envelope is empty")
    return messages


def declared_charset(message: bytes) -> str:
    """MSH-18 read from the raw bytes (it is ASCII in every encoding HL7 allows here)."""
    msh = message.split(b"\r", 1)[0]
    if len(msh) < 4:
        return ""
    fields = msh.split(msh[3:4])
    if len(fields) <= 17:
        return ""
    first_repetition = fields[17].split(b"~", 1)[0]
    return first_repetition.decode("ascii", errors="replace").strip()


def decode_message(message: bytes, forced_charset: str | None = None) -> tuple[str, str]:
    """Decode one message's bytes; return ``(text, codec)``.

    ``forced_charset`` (from the source's configuration) wins over MSH-18, which real feeds
    often get wrong. Bytes that do not decode are refused, never replaced with U+FFFD.
    """
    declared = declared_charset(message)
    charset = forced_charset or declared or DEFAULT_CHARSET
    codec = codec_for(charset)
    try:
        return message.decode(codec), codec
    except UnicodeDecodeError as exc:
        origin = "forced in config" if forced_charset else ("MSH-18" if declared else "default")
        raise DecodeError(
            f"byte {exc.start} (0x{message[exc.start]:02x}) is not valid {codec} "
            f"(character set {charset!r}, {origin})",
            location="MSH.18",
            hint="fix MSH-18 at the sender, or force the source's charset in config",
        ) from exc
