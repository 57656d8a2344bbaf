"""Stage "parse": bytes -> typed report, on real corpus messages and written ones."""

from __future__ import annotations

import codecs

import pytest

from adapter.errors import DecodeError, ParseError
from adapter.parse import parse_bytes
from adapter.parse.decode import split_messages
from tests.messages import ALT, CORPUS, obx, oru


def only_report(data: bytes, **kwargs: str):  # type: ignore[no-untyped-def]
    [parsed] = parse_bytes(data, **kwargs)
    assert parsed.error is None, parsed.error
    assert parsed.report is not None
    return parsed.report


def test_bom_and_lf_separators_of_a_real_message_are_handled() -> None:
    raw = (CORPUS / "ms_LAB-ORU-1.hl7").read_bytes()
    assert raw.startswith(codecs.BOM_UTF8)
    report = only_report(raw.replace(b"\r", b"\n"))
    assert report.message_id == "182"
    assert [len(o.results) for o in report.orders] == [5, 5]


@pytest.mark.parametrize("separator", [b"\r", b"\n", b"\r\n"])
def test_any_segment_separator_gives_the_same_report(separator: bytes) -> None:
    text = oru(obx(1, ALT, "42", "U/L")).encode().replace(b"\r", separator)
    report = only_report(text)
    assert report.orders[0].results[0].values == ("42",)


def test_fhs_bhs_batch_is_unwrapped_into_its_messages() -> None:
    parsed = parse_bytes((CORPUS / "rs_batch_FHS_BHS_two_ORU.hl7").read_bytes())
    assert [p.report.message_id for p in parsed if p.report] == ["371784", "612092"]


def test_patient_identifiers_keep_their_assigning_authority() -> None:
    report = only_report((CORPUS / "rs_valid_hl7_multiORC_corrected_NTE.hl7").read_bytes())
    ids = [(i.value, i.authority, i.type_code) for i in report.patient_ids]
    assert ("100001", "MEDITECH", "MR") in ids and ("285-64-4175", "MEDITECH", "SS") in ids


def test_order_numbers_filler_and_placer() -> None:
    report = only_report((CORPUS / "ms_LAB-ORU-2.hl7").read_bytes())
    order = report.orders[0]
    assert order.filler is not None and order.placer is not None
    assert order.order_number() == order.filler


def test_msh18_declares_the_charset() -> None:
    text = oru(obx(1, ALT, "42", "U/L", flags="H"), charset="8859/1", notes=("Hämolyse",))
    report = only_report(text.encode("latin-1"))
    assert report.charset == "iso8859-1"
    assert report.orders[0].notes == ("Hämolyse",)


def test_bytes_that_do_not_decode_are_refused_not_replaced() -> None:
    text = oru(obx(1, ALT, "42", "U/L"), charset="UNICODE UTF-8", notes=("Hämolyse",))
    [parsed] = parse_bytes(text.encode("latin-1"))
    assert isinstance(parsed.error, DecodeError)
    # Named where the byte sits, with the character set and where it came from.
    assert "not valid utf-8" in str(parsed.error) and "NTE[1].3" in str(parsed.error)
    assert "MSH-18" in str(parsed.error) and "MSG0001" in str(parsed.error)


def test_a_forced_charset_wins_over_a_wrong_msh18() -> None:
    text = oru(obx(1, ALT, "42", "U/L"), charset="UNICODE UTF-8", notes=("Hämolyse",))
    report = only_report(text.encode("latin-1"), forced_charset="8859/1")
    assert report.orders[0].notes == ("Hämolyse",)


def test_a_message_without_pid_is_refused_naming_the_segment() -> None:
    text = oru(obx(1, ALT, "42", "U/L")).replace(
        "PID|1||MRN001^^^NTCH^MR||Patient^Test||19600101|F\r", ""
    )
    [parsed] = parse_bytes(text.encode())
    assert isinstance(parsed.error, ParseError)
    assert "no PID" in str(parsed.error) and "MSG0001" in str(parsed.error)


def test_three_encoding_characters_are_refused() -> None:
    [parsed] = parse_bytes((CORPUS / "hapi_MSH2_missing_component_sep.hl7").read_bytes())
    assert isinstance(parsed.error, ParseError)
    assert parsed.error.location == "MSH.2"


def test_a_doubled_escape_character_in_msh2_is_repaired() -> None:
    report = only_report((CORPUS / "lfh_ORU_multiple_OBR_reports.hl7").read_bytes())
    assert len(report.orders) == 2


def test_repeated_obx5_and_obx8_are_all_kept() -> None:
    report = only_report(oru(obx(1, ALT, "42~43", "U/L", flags="H~A")).encode())
    result = report.orders[0].results[0]
    assert result.values == ("42", "43") and result.flags == ("H", "A")


def test_escapes_in_notes_are_decoded() -> None:
    report = only_report((CORPUS / "hapi_OLIS_cholesterol_NTE_escapes.hl7").read_bytes())
    notes = "\n".join(report.orders[0].notes)
    assert "\\.br\\" not in notes and "\\F\\" not in notes
    assert "\n" in notes and "|" in notes


def test_nte_after_obr_belongs_to_the_order_and_after_obx_to_the_result() -> None:
    text = oru(obx(1, ALT, "42", "U/L"), "NTE|1||haemolysed", notes=("fasting",))
    order = only_report(text.encode()).orders[0]
    assert order.notes == ("fasting",) and order.results[0].notes == ("haemolysed",)


def test_garbage_is_refused_with_a_clear_error() -> None:
    with pytest.raises(ParseError, match="does not start with an MSH"):
        split_messages(b"hello world")
    with pytest.raises(ParseError, match="empty"):
        split_messages(b"\r\n")


ADT = (
    "MSH|^~\\&|NTC-HIS|NTCH|TB|NTCH|20240601101500+0800||ADT^A03^ADT_A03|ADT0001|P|2.5.1\r"
    "EVN|A03|20240601101000+0800\r"
    + "|".join(
        ["PID", "1", "", "20986393^^^NTCH^MR", "", "Zhang^Wei", "", "19610304", "F"]
        + [""] * 20
        + ["{death_time}", "{indicator}"]
    )
    + "\r"
    + "|".join(["PV1", "1", "I", "WARD3"] + [""] * 32 + ["{disposition}"])
    + "\r"
)


@pytest.mark.parametrize(
    ("death_time", "indicator", "disposition", "died"),
    [
        ("20240601093000+0800", "Y", "", True),
        ("", "Y", "", True),
        ("20240601093000+0800", "", "", True),
        ("", "", "20", True),  # discharge disposition "expired"
        ("", "N", "20", False),  # an explicit "not dead" wins
        ("", "", "01", False),
    ],
)
def test_adt_vital_status(death_time: str, indicator: str, disposition: str, died: bool) -> None:
    from adapter.parse.adt import is_adt, parse_adt

    text = ADT.format(death_time=death_time, indicator=indicator, disposition=disposition)
    assert is_adt(text) and not is_adt(oru(obx(1, ALT, "42", "U/L")))
    event = parse_adt(text)
    assert event.died is died and event.event == "A03" and event.message_id == "ADT0001"
    assert event.death_time == death_time
    assert [(i.value, i.authority) for i in event.patient_ids] == [("20986393", "NTCH")]


def test_z_segments_are_ignored_and_every_escape_is_decoded() -> None:
    note = "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f\\X41\\g\\.br\\h"
    text = oru(obx(1, ALT, "42", "U/L"), f"NTE|1||{note}", "ZLS|1|site-specific|data")
    report = only_report(text.encode())
    [result] = report.orders[0].results
    assert result.notes == ("a|b^c&d~e\\fAg\nh",)
    assert result.values == ("42",)


def test_a_message_with_its_own_escape_character_is_unescaped_with_it() -> None:
    """MSH-2 chooses the escape character: with '#', '#S#' is a literal '^'."""
    text = oru(obx(1, ALT, "42", "U/L"), "NTE|1||a#S#b#F#c").replace("^~\\&", "^~#&", 1)
    [result] = only_report(text.encode()).orders[0].results
    assert result.notes == ("a^b|c",)
