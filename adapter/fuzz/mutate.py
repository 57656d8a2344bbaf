"""Mutations of HL7 v2 messages: each takes the bytes and a seeded ``random.Random`` and
returns new bytes. Pure and deterministic for a given generator state, so a failing mutant
is reproduced from its seed.

Some mutations are blind (flip a byte, cut the message short), most know enough of HL7 to get
past the first check (a bad date goes where a date goes, a bad charset into MSH-18).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

Mutator = Callable[[bytes, random.Random], bytes]

_TIMESTAMP = re.compile(rb"(?<![0-9])(?:19|20)[0-9]{6,12}(?:[+-][0-9]{4})?(?![0-9])")
BAD_TIMES = (
    b"2024", b"202401", b"20241315", b"20240132", b"20240230", b"20230229", b"0000",
    b"2024011524", b"202401152400", b"20240115236000", b"20240115083060",
    b"20240115083000+4800", b"20240115083000-4800", b"20240115083000+1460",
    b"20240115083000+9999", b"2024011508", b"20240115083000.12345", b"20240115083000.",
    b"2024-01-15", b"20240115T083000", b"99999999999999", b"2024\x0001", b"+0800", b"Z",
)  # fmt: skip
BAD_CHARSETS = (
    b"quopri", b"punycode", b"UNICODE UTF-16", b"UNICODE UTF-32", b"base64", b"rot13",
    b"hex", b"zlib", b"bz2", b"uu", b"idna", b"utf-7", b"utf-16-le", b"cp037",
    b"CNS 11643-1992", b"ISO IR14", b"ISO IR87", b"GB 18030-2000", b"BIG-5", b"KS X 1001",
    b"8859/1", b"8859/15", b"ASCII", b"UNICODE", b"\xff\xfe", b"utf-8\x00", b"UTF8~quopri",
    b"mbcs", b"undefined", b"unicode_escape", b"raw_unicode_escape", b"string_escape",
)  # fmt: skip
BAD_ESCAPES = (
    b"\\.brX\\", b"\\.br\\", b"\\.sp99\\", b"\\.sp999999999\\", b"\\.in-99\\", b"\\.ti+5\\",
    b"\\.skX\\", b"\\X00\\", b"\\X0D0A\\", b"\\XFFFE\\", b"\\XC3\\", b"\\X\\", b"\\XZZ\\",
    b"\\\\", b"\\\\\\\\\\\\", b"\\Zabc\\", b"\\C2842\\", b"\\M2442\\", b"\\E\\", b"\\F\\",
    b"\\", b"\\H\\x\\N\\", b"\\.fi\\", b"\\.ce\\", b"\\S\\T\\R\\",
)  # fmt: skip
BAD_NUMBERS = (
    b"1" * 40, b"9" * 400, b"0." + b"0" * 40 + b"1", b"1." + b"0" * 30, b"-0", b"NaN",
    b"Infinity", b"-inf", b"1e999", b"1E5", b"<^1", b">=^" + b"9" * 30, b"^^1", b"<>^5",
    b"=^3", b"1,5", b"0x1F", b"\xd9\xa3", b"\xef\xbc\x91", b".", b"-", b"+.5", b"5.",
    b"12345678901234567890.5",
)  # fmt: skip
SEPARATORS = b"|^~\\&"


def flip_byte(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return data
    at = rng.randrange(len(data))
    return (
        data[:at]
        + bytes([data[at] ^ rng.choice((1, 0x20, 0x80, 0xFF, rng.randrange(256)))])
        + data[at + 1 :]
    )


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def drop_segment(data: bytes, rng: random.Random) -> bytes:
    segments = data.split(b"\r")
    del segments[rng.randrange(len(segments))]
    return b"\r".join(segments)


def duplicate_segment(data: bytes, rng: random.Random) -> bytes:
    segments = data.split(b"\r")
    at = rng.randrange(len(segments))
    copies = rng.choice((1, 1, 2, 50))
    segments[at:at] = [segments[at]] * copies
    return b"\r".join(segments)


def swap_separators(data: bytes, rng: random.Random) -> bytes:
    """Two separators swapped everywhere, or only in MSH-1/MSH-2 (the rest unchanged)."""
    a, b = rng.sample(range(len(SEPARATORS)), 2)
    table = bytes.maketrans(
        SEPARATORS[a : a + 1] + SEPARATORS[b : b + 1], SEPARATORS[b : b + 1] + SEPARATORS[a : a + 1]
    )
    if rng.random() < 0.5:
        return data.translate(table)
    return data[:3] + data[3:9].translate(table) + data[9:]


def huge_field(data: bytes, rng: random.Random) -> bytes:
    """A field of 20-200 KB (text, escapes, digits or empty escape sequences) put in a
    random field, as a runaway LIS export would."""
    unit = rng.choice((b"A", b"\\\\", b"\\.br\\", b"9", b"note text ", b"^", b"~", b"&"))
    field = unit * (rng.randrange(20_000, 200_000) // len(unit))
    return _replace_field(data, rng, field)


def invalid_utf8(data: bytes, rng: random.Random) -> bytes:
    junk = rng.choice(
        (
            b"\xff",
            b"\xc3",
            b"\xe4",
            b"\xed\xa0\x80",
            b"\xf4\x90\x80\x80",
            b"\xc0\xaf",
            b"\x80\x80",
            b"\xef\xbf\xbd",
        )
    )
    at = rng.randrange(len(data) + 1)
    return data[:at] + junk + data[at:]


def nul(data: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(data) + 1)
    return (
        data[:at]
        + rng.choice((b"\x00", b"\x00" * 8, b"\x01", b"\x1b", b"\x0b", b"\x1c", b"\x7f"))
        + data[at:]
    )


def bad_time(data: bytes, rng: random.Random) -> bytes:
    found = list(_TIMESTAMP.finditer(data))
    if not found:
        return _replace_field(data, rng, rng.choice(BAD_TIMES))
    match = rng.choice(found)
    return data[: match.start()] + rng.choice(BAD_TIMES) + data[match.end() :]


def bad_charset(data: bytes, rng: random.Random) -> bytes:
    """MSH-18 set to a name that is not a text character set, or a real one that lies."""
    return _set_field(data, 0, 17, rng.choice(BAD_CHARSETS))


def bad_escape(data: bytes, rng: random.Random) -> bytes:
    return _replace_field(data, rng, b"a" + rng.choice(BAD_ESCAPES) + b"b", keep=True)


def bad_number(data: bytes, rng: random.Random) -> bytes:
    """OBX-5 (or OBX-7, the range) replaced by a number no lab sends."""
    obx = [i for i, s in enumerate(data.split(b"\r")) if s.startswith(b"OBX")]
    if not obx:
        return data
    value = rng.choice(BAD_NUMBERS)
    if rng.random() < 0.3:
        value = b"1-" + value if rng.random() < 0.5 else b"<" + value
        return _set_field(data, rng.choice(obx), 7, value)
    return _set_field(data, rng.choice(obx), 5, value)


def wide(data: bytes, rng: random.Random) -> bytes:
    """The message as UTF-16/32 with a byte-order mark, sometimes cut to an odd length."""
    codec = rng.choice(("utf-16", "utf-16-be", "utf-32", "utf-32-le"))
    text = data.decode("latin-1")
    encoded = text.encode(codec)
    if codec.endswith(("-be", "-le")):
        bom = {"utf-16-be": b"\xfe\xff", "utf-32-le": b"\xff\xfe\x00\x00"}[codec]
        encoded = bom + encoded
    if rng.random() < 0.3:
        encoded = encoded[: rng.randrange(len(encoded) + 1)]
    return encoded


def line_ends(data: bytes, rng: random.Random) -> bytes:
    return data.replace(b"\r", rng.choice((b"\n", b"\r\n", b"\n\r", b"\r\r", b"")))


def splice(data: bytes, rng: random.Random) -> bytes:
    """A second MSH (the message's own) put inside the message, or a bare segment name."""
    segments = data.split(b"\r")
    at = rng.randrange(len(segments) + 1)
    segments.insert(
        at, rng.choice((segments[0], b"MSH", b"MSH|", b"OBX|", b"PID|||", b"FHS|^~\\&", b"BTS|1"))
    )
    return b"\r".join(segments)


def random_field(data: bytes, rng: random.Random) -> bytes:
    size = rng.choice((0, 1, 3, 10, 100))
    return _replace_field(data, rng, bytes(rng.randrange(32, 127) for _ in range(size)))


MUTATORS: tuple[Mutator, ...] = (
    flip_byte, truncate, drop_segment, duplicate_segment, swap_separators, huge_field,
    invalid_utf8, nul, bad_time, bad_charset, bad_escape, bad_number, wide, line_ends,
    splice, random_field,
)  # fmt: skip


def mutant(seed: bytes, rng: random.Random, mutators: Sequence[Mutator] | None = None) -> bytes:
    """``seed`` after 1-4 mutations chosen by ``rng`` (or the ``mutators`` given, in order)."""
    chosen = (
        mutators
        if mutators is not None
        else [rng.choice(MUTATORS) for _ in range(rng.randint(1, 4))]
    )
    data = seed
    for mutate in chosen:
        data = mutate(data, rng) if data else data
    return data


def _set_field(data: bytes, segment: int, number: int, value: bytes) -> bytes:
    """Field ``number`` of segment ``segment`` (split by the message's separator; for MSH the
    split index is one less than MSH-n) set to ``value``, padding with empty fields."""
    segments = data.split(b"\r")
    if segment >= len(segments) or len(segments[segment]) < 4:
        return data
    line = segments[segment]
    separator = data[3:4] or b"|"
    fields = line.split(separator)
    fields += [b""] * (number + 1 - len(fields))
    fields[number] = value
    segments[segment] = separator.join(fields)
    return b"\r".join(segments)


def _replace_field(data: bytes, rng: random.Random, value: bytes, *, keep: bool = False) -> bytes:
    segments = data.split(b"\r")
    segment = rng.randrange(len(segments))
    fields = segments[segment].split(data[3:4] or b"|")
    number = rng.randrange(1, max(len(fields), 2) + 1)
    if keep and number < len(fields):
        value = fields[number] + value
    return _set_field(data, segment, number, value)
