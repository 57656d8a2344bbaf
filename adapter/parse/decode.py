"""Bytes -> text for HL7v2: byte-order marks, MSH-18 character sets, segment separators,
and batch envelopes.

python-hl7 parses text only and does not read MSH-18, so this module does the byte-level
work the library leaves to its caller (DESIGN.md, "python-hl7 gaps").

MSH-18 is read through an allow-list: the character sets of HL7 table 0211
(http://terminology.hl7.org/CodeSystem/v2-0211) that have a Python *text* codec. A name is
never handed to :func:`codecs.lookup` as it stands: Python also registers byte-to-byte
codecs (``quopri``, ``base64``, ``zlib``, ``rot13``, ``punycode``, ...) that either fail with
errors of their own or turn a message into something else. Anything decoded is checked for
what no HL7 text field can hold (C0 control characters, NUL, U+FFFD): such a message is
refused with the segment and field where it sits, never passed on or "repaired".
"""

from __future__ import annotations

import codecs
import itertools
import re

from adapter.errors import DecodeError, ParseError

# HL7 table 0211 (alternate character sets) -> Python text codecs. CNS 11643-1992 and
# ISO IR14 (JIS X 0201 katakana as a G1 set) have no Python codec: they are refused.
_HL7_CHARSETS: dict[str, str] = {
    "ASCII": "ascii",
    "ISO IR6": "ascii",
    "8859/1": "iso8859-1",
    "ISO IR100": "iso8859-1",  # the DICOM term for Latin-1, seen in MSH-18 in the field
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
    "UNICODE UTF-16": "utf-16",
    "UNICODE UTF-32": "utf-32",
    "GB 18030-2000": "gb18030",
    "BIG-5": "big5",
    "KS X 1001": "euc-kr",
    "ISO IR87": "iso2022_jp",
    "ISO IR159": "iso2022_jp_1",
}
# Python's own names of the same codecs are accepted too ("UTF-8", "latin-1"): nothing else.
_ALLOWED_CODECS = frozenset(codecs.lookup(c).name for c in _HL7_CHARSETS.values())
# A message declared UTF-16/32 reaches decode_message as UTF-8: the splitting works on bytes
# in which "MSH" and CR are single bytes, so a wide message can only get that far when its
# byte-order mark had it transcoded by normalise() (store and MLLP keep those bytes).
_WIDE = frozenset({codecs.lookup("utf-16").name, codecs.lookup("utf-32").name})

# With no MSH-18 the standard says ASCII; UTF-8 is a superset that real feeds rely on.
DEFAULT_CHARSET = "utf-8"

_BOMS = (codecs.BOM_UTF8,)
_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# A message (or batch envelope) starts at the input's start or after a CR. Two patterns, so
# the one run over the whole input starts with a literal CR (the regex engine then skips
# ahead by a fast search: "(?:^|\r)" tried the alternation at every byte, 0.4 s on 9 MB).
_FIRST_SEGMENT = re.compile(rb"(MSH|FHS|BHS|BTS|FTS)(?=.)", re.DOTALL)
_SEGMENT_START = re.compile(rb"\r(MSH|FHS|BHS|BTS|FTS)(?=.)", re.DOTALL)
_ENVELOPE = {b"FHS", b"BHS", b"BTS", b"FTS"}
# What no HL7 text field may hold: C0 controls other than TAB and CR (the segment
# separator), and U+FFFD, which means a character was already lost before it reached us.
_FORBIDDEN = re.compile("[\x00-\x08\x0a-\x0c\x0e-\x1f\ufffd]")
_FIX_SENDER = "fix the message at the sender and send it again"


def codec_for(charset: str) -> str:
    """The Python text codec for an HL7 table 0211 name (or Python's name of one of them)."""
    name = " ".join(charset.split()).upper()
    if name in _HL7_CHARSETS:
        return _HL7_CHARSETS[name]
    try:
        codec = codecs.lookup(charset.strip()).name
    except (LookupError, ValueError):  # ValueError: a name with a NUL in it
        codec = ""
    if codec in _ALLOWED_CODECS:
        return codec
    raise DecodeError(
        f"character set {charset[:40]!a} is not one of HL7 table 0211's text character sets",
        location="MSH.18",
        hint="use an HL7 table 0211 name (e.g. 'UNICODE UTF-8', '8859/1'), "
        "or force the source's charset in config",
    )


def normalise(data: bytes) -> bytes:
    """Strip a UTF-8 BOM, transcode UTF-16/32 (recognised by their BOM) to UTF-8, and turn
    CRLF / LF segment separators into CR.

    A wide input that does not decode (an odd length, a lone surrogate) raises
    :class:`DecodeError` with the byte offset.
    """
    for wide_bom, codec in _WIDE_BOMS:
        if data.startswith(wide_bom):
            # Wide encodings cannot be split on bytes: decode to UTF-8 first.
            data = _transcoded(data, codec)
            break
    for bom in _BOMS:
        if data.startswith(bom):
            data = data[len(bom) :]
    return data.replace(b"\r\n", b"\r").replace(b"\n", b"\r").strip(b"\r\x00 \t\x0b\x1c")


def _transcoded(data: bytes, codec: str) -> bytes:
    try:
        return data.decode(codec).encode("utf-8")
    except UnicodeError as exc:
        start = getattr(exc, "start", 0)
        raise DecodeError(
            f"the input starts with a {codec.upper()} byte-order mark, but byte {start} on "
            f"does not decode as {codec.upper()} ({getattr(exc, 'reason', 'invalid data')})",
            location=f"byte {start}",
            hint="send complete UTF-16/32 text (an even number of bytes), or UTF-8",
        ) from None


def split_messages(data: bytes) -> list[bytes]:
    """Split a file or stream into single messages, unwrapping FHS/BHS batches.

    Returns each message as CR-separated bytes, in order. Envelope segments are dropped.
    """
    data = normalise(data)
    if not data:
        raise ParseError("the input is empty", hint="send at least one MSH segment")
    if not _FIRST_SEGMENT.match(data):
        raise ParseError(
            "the input does not start with an MSH (or FHS/BHS) segment",
            location="segment 1",
            hint="check that this is an HL7v2 message and that the file is not truncated",
        )
    starts = [0, *(m.start(1) for m in _SEGMENT_START.finditer(data))]
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
    # Latin-1 maps every byte to one character: a non-ASCII name is then refused by name.
    return first_repetition.decode("latin-1").strip()


def decode_message(message: bytes, forced_charset: str | None = None) -> tuple[str, str]:
    """Decode one message's bytes; return ``(text, codec)``.

    ``forced_charset`` (from the source's configuration) wins over MSH-18, which real feeds
    often get wrong. Bytes that do not decode are refused, never replaced with U+FFFD; so is
    text holding a control character, a NUL or U+FFFD itself.
    """
    declared = declared_charset(message)
    charset = forced_charset or declared or DEFAULT_CHARSET
    codec = codec_for(charset)
    if codec in _WIDE:
        codec = "utf-8"  # transcoded from UTF-16/32 by normalise() (see _WIDE)
    try:
        text = message.decode(codec)
    except UnicodeError as exc:
        start = getattr(exc, "start", 0)
        origin = "forced in config" if forced_charset else ("MSH-18" if declared else "default")
        shown = f" (0x{message[start]:02x})" if start < len(message) else ""
        raise DecodeError(
            f"byte {start}{shown} of the message is not valid {codec} "
            f"(character set {charset[:40]!a}, {origin})",
            location=byte_location(message, start),
            hint="fix MSH-18 at the sender, or force the source's charset in config",
        ) from None
    _check_characters(text)
    return text, codec


def _check_characters(text: str) -> None:
    found = _FORBIDDEN.search(text)
    if found is None:
        return
    char = found.group()
    where = text_location(text, found.start())
    what = (
        "U+FFFD (the replacement character: a character was lost before the message "
        "reached TrialBridge)"
        if char == "\ufffd"
        else f"the control character U+{ord(char):04X}, which no HL7 text field may hold"
    )
    raise DecodeError(f"the field holds {what}", location=where, hint=_FIX_SENDER)


def byte_location(message: bytes, offset: int) -> str:
    """Where byte ``offset`` of a CR-separated message sits: ``OBX[2].5`` (MSH numbering
    counts MSH-1, the field separator itself)."""
    return text_location(message[: offset + 1].decode("latin-1"), offset)


def text_location(text: str, index: int) -> str:
    """Where character ``index`` of a CR-separated message sits, e.g. ``OBX[2].5``."""
    before = text[:index]
    segments = before.split("\r")
    line = segments[-1]
    name = line[:3]
    field_sep = text[3:4] or "|"
    if not name.isalnum():
        return f"segment {len(segments)}"
    if name == "MSH":
        return f"MSH.{line.count(field_sep) + 1}"
    segment = f"{name}[{sum(1 for s in segments if s[:3] == name)}]"
    field = line.count(field_sep)
    return f"{segment}.{field}" if field else segment
