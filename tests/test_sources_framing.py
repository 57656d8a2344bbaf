"""The pure layers of MLLP: framing (fed byte by byte) and the ACK for each kind of input."""

from __future__ import annotations

import codecs
from datetime import datetime, timedelta, timezone

import pytest

from adapter.sources.ack import Problem, build_ack, check, internal_problem, read_frame
from adapter.sources.framing import BadFrame, FrameDecoder, frame
from adapter.sources.hl7v2 import escape, parse_ts, read_header
from adapter.store.inbox import Incoming
from tests.messages import ALT, obx, oru

NOW = datetime(2024, 1, 15, 9, 30, tzinfo=timezone(timedelta(hours=8)))
GOOD = oru(obx(1, ALT, "42", "U/L")).encode()


def feed_bytewise(data: bytes, max_bytes: int = 1 << 20) -> list[bytes | BadFrame]:
    decoder = FrameDecoder(max_bytes)
    frames: list[bytes | BadFrame] = []
    for i in range(len(data)):
        frames += decoder.feed(data[i : i + 1])
    assert decoder.pending == 0
    return frames


def test_frames_come_out_whole_however_the_bytes_arrive() -> None:
    stream = frame(b"one") + b"\r\n" + frame(b"two") + frame(b"three")
    assert feed_bytewise(stream) == [b"one", b"two", b"three"]
    assert FrameDecoder().feed(stream) == [b"one", b"two", b"three"]


@pytest.mark.parametrize(
    ("stream", "reason"),
    [
        (b"junk" + frame(b"good"), "outside an MLLP frame"),
        (b"MSH|no start block\x1c\r" + frame(b"good"), "outside an MLLP frame"),
        (b"\x0bcut short" + frame(b"good"), "cut short"),
        (frame(b"x" * 100) + frame(b"good"), "over 50 bytes"),
        (b"\x0b" + b"x" * 200 + b"\x1c\r" + frame(b"good"), "over 50 bytes"),
    ],
)
def test_a_bad_frame_costs_only_its_own_bytes(stream: bytes, reason: str) -> None:
    for frames in (feed_bytewise(stream, 50), FrameDecoder(50).feed(stream)):
        assert len(frames) == 2
        assert isinstance(frames[0], BadFrame) and reason in frames[0].reason
        assert frames[1] == b"good"


def test_a_good_message_is_ready_for_the_inbox() -> None:
    checked = check(GOOD, "mllp")
    assert isinstance(checked, Incoming)
    assert (checked.sender, checked.control_id) == ("NTC-LIS@NTCH", "MSG0001")


@pytest.mark.parametrize(
    ("payload", "code", "error", "where"),
    [
        (b"hello", "AE", "100", "MSH^1"),
        (b"FHS|^~\\&\rBHS|^~\\&\r" + GOOD, "AE", "100", "MSH^1"),
        (GOOD.replace(b"ORU^R01^ORU_R01", b"QRY^R02"), "AR", "200", "MSH^1^9"),
        (GOOD.replace(b"|MSG0001|", b"||"), "AE", "101", "MSH^1^10"),
        (GOOD.replace(b"|42|", b"|4\xff2|"), "AE", "102", "MSH^1^18"),
    ],
)
def test_what_cannot_be_accepted_is_named(
    payload: bytes, code: str, error: str, where: str
) -> None:
    problem = check(payload, "mllp")
    assert isinstance(problem, Problem)
    assert (problem.code, problem.error, problem.location) == (code, error, where)


def test_the_ack_swaps_sender_and_receiver_and_echoes_msh10() -> None:
    ack = build_ack(read_header(GOOD), "TB0001", NOW).decode().split("\r")
    assert ack[0] == (
        "MSH|^~\\&|TRIALBRIDGE|NTCH|NTC-LIS|NTCH|20240115093000+0800||ACK^R01^ACK|TB0001|P|2.5.1"
    )
    assert ack[1] == "MSA|AA|MSG0001"
    assert ack[2:] == [""]


def test_an_adt_is_acked_with_its_trigger_and_an_error_with_err() -> None:
    adt = GOOD.replace(b"ORU^R01^ORU_R01", b"ADT^A03^ADT_A03")
    ack = build_ack(read_header(adt), "TB2", NOW, internal_problem("disk full")).decode()
    msh, msa, err, _ = ack.split("\r")
    assert msh.split("|")[8] == "ACK^A03^ACK"
    assert msa.startswith("MSA|AR|MSG0001|not stored, send the same message later: disk full")
    assert err.split("|")[3] == "207^Application internal error^HL70357"
    assert err.split("|")[4] == "E"


def test_before_v25_the_error_goes_in_err_1() -> None:
    old = GOOD.replace(b"|2.5.1", b"|2.3")
    problem = check(old.replace(b"|MSG0001|", b"||"), "mllp")
    assert isinstance(problem, Problem)
    ack = build_ack(read_header(old), "TB3", NOW, problem).decode().split("\r")
    assert ack[0].split("|")[8] == "ACK^R01"  # no message structure before 2.3.1
    assert ack[2] == "ERR|MSH^1^10^101&Required field missing&HL70357"


def test_a_message_without_msh_gets_an_ack_all_the_same() -> None:
    problem = check(b"not hl7", "mllp")
    assert isinstance(problem, Problem)
    msh, msa, *_ = build_ack(None, "TB4", NOW, problem).decode().split("\r")
    assert msh.split("|")[8] == "ACK" and msa.startswith("MSA|AE||")


def test_escape_and_timestamps() -> None:
    assert escape("a|b^c\\d~e&f é") == "a\\F\\b\\S\\c\\E\\d\\R\\e\\T\\f ?"
    tz = timezone(timedelta(hours=8))
    assert parse_ts("20240115093000+0530", tz) == datetime(
        2024, 1, 15, 9, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))
    )
    assert parse_ts("20240115", tz) == datetime(2024, 1, 15, tzinfo=tz)
    assert parse_ts("", tz) is None and parse_ts("Aug 15", tz) is None


@pytest.mark.parametrize("field", [3, 5, 9, 10, 12, 18])
def test_building_an_ack_cannot_fail_whatever_byte_a_field_holds(field: int) -> None:
    """Each byte value in each echoed MSH field: an ACK comes out, and it holds no MLLP
    block character that would break its own frame."""
    fields = GOOD.split(b"\r")[0].split(b"|")
    fields += [b""] * (19 - len(fields))
    problem = Problem("AE", "102", "MSH^1^18", "x")
    for value in range(256):
        edited = list(fields)
        edited[field - 1] = b"ORU^" + bytes([value]) if field == 9 else bytes([value, 65])
        payload = b"|".join(edited) + b"\r" + GOOD.split(b"\r", 1)[1]
        for moment in (NOW, NOW.replace(tzinfo=None)):
            ack = build_ack(read_header(payload), "TB5", moment, problem)
            assert ack.startswith(b"MSH|") and b"\rMSA|AE|" in ack
            assert b"\x0b" not in ack and b"\x1c" not in ack


def test_a_readable_header_is_read_from_any_bytes_or_none() -> None:
    wide = codecs.BOM_UTF16_LE + GOOD.decode().encode("utf-16-le")
    assert read_header(wide + b"\x00") is None  # odd length: not UTF-16 after all
    header = read_header(wide)
    assert header is not None and header.control_id == "MSG0001"
    problem = check(wide + b"\x00", "mllp")
    assert isinstance(problem, Problem)
    assert (problem.code, problem.error, problem.location) == ("AE", "102", "MSH^1^18")


@pytest.mark.parametrize(
    ("item", "code", "error"),
    [
        (BadFrame("bytes outside an MLLP frame", codecs.BOM_UTF16_LE + b"M\x00S"), "AE", "100"),
        (BadFrame("a frame is over 50 bytes", GOOD[:50], too_large=True), "AE", "100"),
        (codecs.BOM_UTF16_BE + b"\x00M\x00", "AE", "102"),
        (GOOD.replace(b"ORU^R01^ORU_R01", b"ORU^\xb5"), "AE", "102"),  # 0xb5 is not UTF-8
    ],
)
def test_read_frame_answers_every_frame(item: bytes | BadFrame, code: str, error: str) -> None:
    header, checked = read_frame(item)
    assert isinstance(checked, Problem) and (checked.code, checked.error) == (code, error)
    assert build_ack(header, "TB6", NOW, checked).startswith(b"MSH|")
