"""Each poison message of issue 12, as the interface engineer meets it in ``trialbridge map``
for an enrolled subject (the service's path: enrolment gate, study links, visit windows).

Before the fix each of these raised something that was not a TrialBridgeError (and halted
the service's processing job); now each result is held with the reason, or the message is
refused with a MessageError naming the message (MSH-10), the segment and the field.
"""

from __future__ import annotations

import codecs
import io
import json
import logging
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hl7.util
import pytest
from click.testing import CliRunner, Result

from adapter.cli import main
from adapter.errors import DecodeError
from adapter.logs import configure_logging
from adapter.parse import parse_bytes
from adapter.parse.decode import codec_for
from tests.messages import ALT, obx, oru

BILIRUBIN = "1975-2^Bilirubin total^LN"
REPORTED = "|||20240115093000+0800|||F"  # OBR-22 (results reported) and OBR-25 of oru()


@pytest.fixture
def mapped(enrol: Callable[..., Any], tmp_path: Path) -> Callable[[bytes], Result]:
    """``trialbridge map FILE`` on a message of the enrolled subject MRN001."""
    enrol()

    def run(data: bytes) -> Result:
        path = tmp_path / "message.hl7"
        path.write_bytes(data)
        return CliRunner().invoke(main, ["map", str(path)])

    return run


def held(result: Result) -> str:
    """The held lines map printed, after checking the message still mapped."""
    assert result.exit_code == 0, result.output
    assert "would pass, as DDSC-T01" in result.stderr
    return "\n".join(line for line in result.stderr.splitlines() if ": held — " in line)


def refused(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    [line] = [line for line in result.stderr.splitlines() if ": refused: " in line]
    return line


def one_result(**kwargs: str) -> bytes:
    """A message with the result under test and a normal one that must still be mapped."""
    return oru(obx(1, ALT, "35", "U/L", **kwargs), obx(2, ALT, "36", "U/L", sub_id="2")).encode()


# Times ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("observed", "says"),
    [
        ("2024", "OBX-14 (observation time) '2024' gives no day"),
        ("202401", "OBX-14 (observation time) '202401' gives no day"),
        ("20240115240000+0800", "'20240115240000+0800' is not a valid date/time: hour 24"),
        ("20240132083000+0800", "day 32 (the month has 31)"),
        ("20240230", "day 30 (the month has 29)"),
        ("20240115083000+4800", "offset +4800 (from -1400 to +1400)"),
        ("20240115083000-4800", "offset -4800"),
        ("20240115083060+0800", "second 60"),
    ],
    ids=[
        "year-only", "month-only", "hour-24", "day-32", "feb-30", "offset+48", "offset-48",
        "second-60",
    ],
)  # fmt: skip
def test_a_bad_observation_time_holds_that_result_only(
    mapped: Callable[[bytes], Result], observed: str, says: str
) -> None:
    result = mapped(one_result(observed=observed))
    lines = held(result)
    assert "message MSG0001, OBX[1]: held — OBX-14 (observation time)" in lines and says in lines
    assert "OBX[2]" not in lines  # the message's other result is mapped and linked
    bundle = json.loads(result.stdout)
    assert sum(e["resource"]["resourceType"] == "Observation" for e in bundle["entry"]) == 1


def test_a_bad_results_reported_time_in_obr22_is_named(mapped: Callable[[bytes], Result]) -> None:
    data = one_result().replace(REPORTED.encode(), b"|||20241315093000+0800|||F")
    lines = held(mapped(data))
    assert "message MSG0001, OBX[1]: held — OBR-22 (results reported): " in lines
    assert "'20241315093000+0800' is not a valid date/time: month 13" in lines


def test_a_bad_msh7_used_for_issued_is_named(mapped: Callable[[bytes], Result]) -> None:
    """The TimestampError that escaped: OBR-22 empty, so MSH-7 gives Observation.issued."""
    data = one_result().replace(REPORTED.encode(), b"||||||F")
    data = data.replace(b"20240115093000+0800||ORU", b"99999999999999||ORU")
    assert (
        "held — MSH-7 (results reported): '99999999999999' is not a valid date/time: month 99"
        in held(mapped(data))
    )


# Values and text -------------------------------------------------------------------------


def test_a_40_digit_value_that_needs_a_unit_conversion_is_held(
    mapped: Callable[[bytes], Result],
) -> None:
    """umol/L -> mg/dL divides by 17.1: a 40-digit value overflowed the decimal context."""
    data = oru(
        obx(1, BILIRUBIN, "1" * 40, "umol/L"), obx(2, BILIRUBIN, "17.1", "umol/L", sub_id="2")
    )
    lines = held(mapped(data.encode()))
    assert (
        f"message MSG0001, OBX[1]: held — OBX-5 {'1' * 40} has more digits than a measurement"
        in lines
    )
    assert "OBX[2]" not in lines


def test_a_reference_range_of_40_digits_stays_text(mapped: Callable[[bytes], Result]) -> None:
    data = oru(obx(1, BILIRUBIN, "20", "umol/L", ref="1-" + "9" * 40)).encode()
    result = mapped(data)
    assert result.exit_code == 0, result.output
    [observation] = [
        e["resource"]
        for e in json.loads(result.stdout)["entry"]
        if e["resource"]["resourceType"] == "Observation"
    ]
    assert observation["referenceRange"] == [{"text": "1-" + "9" * 40}]


@pytest.mark.parametrize(
    ("note", "kept"),
    [
        ("line\\.brX\\two", "line\\.brX\\two"),  # raised ValueError: int('X')
        ("a\\.sp99999999\\b", "a\\.sp99999999\\b"),  # was ~100 MB of line breaks
        ("a\\.sp2\\b\\.br\\c", "a\n\nb\nc"),
        ("a\\X00\\b", "a\\X00\\b"),  # hex for NUL: kept as sent, no NUL in the output
        ("a\\XC3A9\\b\\Zlocal\\", "aéb\\Zlocal\\"),
        ("\\\\\\\\a\\", "a\\"),  # empty sequences stand for nothing; a lone escape stays
    ],
    ids=["brX", "sp-huge", "sp-br", "hex-nul", "hex-utf8", "empty"],
)  # fmt: skip
def test_escape_sequences_in_a_note_never_raise(
    mapped: Callable[[bytes], Result], note: str, kept: str
) -> None:
    result = mapped(oru(obx(1, ALT, "35", "U/L"), f"NTE|1||{note}").encode())
    assert result.exit_code == 0, result.output
    [observation] = [
        e["resource"]
        for e in json.loads(result.stdout)["entry"]
        if e["resource"]["resourceType"] == "Observation"
    ]
    assert observation["note"] == [{"text": kept}]


# Bytes and character sets ------------------------------------------------------------------


@pytest.mark.parametrize(
    "charset", ["quopri", "punycode", "base64", "rot13", "zlib", "idna", "CNS 11643-1992"]
)
def test_msh18_naming_no_text_character_set_is_refused(
    mapped: Callable[[bytes], Result], charset: str
) -> None:
    line = refused(mapped(oru(obx(1, ALT, "35", "U/L"), charset=charset).encode()))
    assert f"refused: [message MSG0001, MSH.18] character set '{charset}' is not one" in line


def test_msh18_is_read_through_the_table_0211_allow_list() -> None:
    assert codec_for("UNICODE UTF-8") == "utf-8" and codec_for("8859/15") == "iso8859-15"
    assert codec_for("unicode  utf-8") == "utf-8" and codec_for("latin-1") == "iso8859-1"
    for name in (
        "quopri",
        "hex",
        "unicode_escape",
        "utf-7",
        "cp037",
        "mbcs",
        "undefined",
        "utf-8\x00",
    ):
        with pytest.raises(DecodeError, match="HL7 table 0211"):
            codec_for(name)


@pytest.mark.parametrize(
    ("charset", "codec"), [("UNICODE UTF-16", "utf-16"), ("UNICODE UTF-32", "utf-32")]
)
def test_a_wide_message_with_its_byte_order_mark_maps(
    mapped: Callable[[bytes], Result], charset: str, codec: str
) -> None:
    text = oru(obx(1, ALT, "35", "U/L"), charset=charset, notes=("Hämolyse",))
    result = mapped(text.encode(codec))  # Python's utf-16/utf-32 write the BOM
    assert result.exit_code == 0, result.output
    assert "Hämolyse" in result.stdout


def test_a_utf16_message_of_odd_length_is_refused_naming_the_byte(
    mapped: Callable[[bytes], Result],
) -> None:
    data = oru(obx(1, ALT, "35", "U/L")).encode("utf-16")[:-1]
    line = refused(mapped(data))
    assert "does not decode as UTF-16 (truncated data)" in line and "[byte " in line


def test_msh18_utf16_on_8_bit_bytes_is_read_as_utf8() -> None:
    """Splitting works on bytes where 'MSH' and CR are one byte each: a message declared
    UTF-16 only gets there after its BOM had it transcoded to UTF-8 (the inbox keeps those
    bytes), so that is how it is read; decoding it as UTF-16 garbled it."""
    text = oru(obx(1, ALT, "35", "U/L"), charset="UNICODE UTF-16", notes=("Hämolyse",))
    [parsed] = parse_bytes(text.encode("utf-8"))
    assert parsed.report is not None and parsed.report.orders[0].notes == ("Hämolyse",)


@pytest.mark.parametrize(
    ("bad", "where", "what"),
    [
        (b"3\x005", "OBX[1].5", "the control character U+0000"),
        (b"3\x1b5", "OBX[1].5", "the control character U+001B"),
        (b"3\xef\xbf\xbd5", "OBX[1].5", "U+FFFD (the replacement character"),
        (b"3\xff5", "OBX[1].5", "byte 3"),
    ],
    ids=["nul", "escape-char", "u+fffd", "invalid-utf8"],
)
def test_bytes_no_text_field_may_hold_are_refused_naming_the_field(
    mapped: Callable[[bytes], Result], bad: bytes, where: str, what: str
) -> None:
    data = oru(obx(1, ALT, "35", "U/L")).encode().replace(b"|35|", b"|" + bad + b"|")
    line = refused(mapped(data))
    assert f"refused: [message MSG0001, {where}] " in line and what in line
    assert "\ufffd" not in line


def test_a_nul_inside_an_escape_sequence_is_refused(mapped: Callable[[bytes], Result]) -> None:
    """python-hl7 raised ValueError: int('\\x00') on ``\\.sp<NUL>\\``."""
    line = refused(mapped(oru(obx(1, ALT, "35", "U/L"), "NTE|1||a\\.sp\x00\\b").encode()))
    assert "[message MSG0001, NTE[1].3] the field holds the control character U+0000" in line


def test_an_undecodable_msh18_name_is_refused_without_a_replacement_character(
    mapped: Callable[[bytes], Result],
) -> None:
    data = oru(obx(1, ALT, "35", "U/L"), charset="UNICODE UTF-8").encode()
    line = refused(mapped(data.replace(b"UNICODE UTF-8", b"UNICODE\xff\xfeUTF-8")))
    assert "[message MSG0001, MSH.18] character set 'UNICODE\\xff\\xfeUTF-8'" in line
    assert "\ufffd" not in line


# Separators ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("msh", "says"),
    [
        ("MSH|^~", "[message MSG0001, MSH.2] MSH-2 has 2 encoding characters ('^~'); four"),
        ("MSH|^^\\&", "[message MSG0001, MSH.2] MSH-1 and MSH-2 ('|^^\\\\&') must be five"),
        ("MSH|^~\\||", "[MSH.2] MSH-2 has 3 encoding characters"),  # MSH-10 moved: no id
        ("MSHA^~\\&", "[MSH.1] MSH-1 (the field separator) is 'A'; it must be a mark such as '|'"),
    ],
    ids=["short", "repeated", "field-sep-in-msh2", "letter"],
)  # fmt: skip
def test_broken_separators_are_refused_naming_msh1_or_msh2(msh: str, says: str) -> None:
    """The IndexError in parse/segments.py _separators (MSH-2 shorter than four after the
    lines were filtered, or a separator used twice)."""
    text = oru(obx(1, ALT, "35", "U/L")).replace("MSH|^~\\&", msh, 1)
    [parsed] = parse_bytes(text.encode())
    assert parsed.error is not None and says in str(parsed.error)


# Logs ---------------------------------------------------------------------------------------

NOTE = "Patient reports chest pain since Tuesday"


def test_a_20kb_field_of_empty_escapes_logs_nothing_of_it(
    tmp_path: Path, enrol: Callable[..., Any]
) -> None:
    """python-hl7 logged the whole field for every empty escape sequence (a 20 KB field gave
    402 MB of log). Through the real CLI at debug level, the log stays small and holds no
    note text."""
    enrol()
    field = (NOTE + "\\\\") * (20_000 // (len(NOTE) + 2))
    path = tmp_path / "big.hl7"
    path.write_text(oru(obx(1, ALT, "35", "U/L"), f"NTE|1||{field}"), encoding="utf-8")
    done = subprocess.run(
        [Path(sys.executable).parent / "trialbridge", "--log-level", "debug", "map", str(path)],
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert NOTE.encode() in done.stdout  # the note is in the Observation
    assert len(done.stderr) < 4096 and NOTE.encode() not in done.stderr


def test_python_hl7_records_never_reach_the_log(tmp_path: Path) -> None:
    """Even if python-hl7's unescape runs (another tool, a future caller), its records are
    dropped before our handler writes them: its loggers are named after its files."""
    stream = io.StringIO()
    configure_logging("debug", stream)
    try:
        container = hl7.parse("MSH|^~\\&|A|B")
        with warnings.catch_warnings():  # python-hl7 calls the deprecated Logger.warn
            warnings.simplefilter("ignore", DeprecationWarning)
            hl7.util.unescape(container, NOTE + "\\\\" * 200)
        logging.getLogger(hl7.util.__file__).error("field %s", NOTE)
    finally:
        configure_logging("warning")
    assert stream.getvalue() == ""


def test_wide_bom_codecs_are_the_ones_recognised() -> None:
    assert codecs.BOM_UTF16_LE == b"\xff\xfe"  # the odd-length case above starts with it
