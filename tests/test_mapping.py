"""Stage "map": values, units, ranges, statuses and times, as a person would check them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from adapter.mapping import MappedReport, map_report
from adapter.mapping.times import TimestampError, to_fhir_datetime, to_fhir_instant
from adapter.mapping.values import parse_number, parse_range
from adapter.mappings import MappingSet, load_mappings
from adapter.parse import parse_bytes
from tests.messages import ALB, ALP, ALT, INR, TBIL, obx, oru


@pytest.fixture(scope="module")
def mappings() -> MappingSet:
    return load_mappings()


def mapped(text: str, mappings: MappingSet) -> MappedReport:
    [parsed] = parse_bytes(text.encode())
    assert parsed.report is not None, parsed.error
    return map_report(parsed.report, mappings, default_offset="+08:00")


@pytest.mark.parametrize(
    ("value_type", "value", "number", "comparator"),
    [
        ("NM", "42", "42", None),
        ("NM", "-3.5", "-3.5", None),
        ("SN", "<^0.10", "0.10", "<"),
        ("SN", "^182", "182", None),
        ("SN", ">=^1000", "1000", ">="),
        ("SN", "<0.10", "0.10", "<"),  # comparator squeezed into one component (v2-to-FHIR IG)
        ("ST", "<0.5", "0.5", "<"),
        ("ST", ">1000", "1000", ">"),
    ],
)
def test_numbers_and_comparators(
    value_type: str, value: str, number: str, comparator: str | None
) -> None:
    parsed = parse_number(value_type, value)
    assert parsed is not None
    assert parsed.value == Decimal(number) and parsed.comparator == comparator


@pytest.mark.parametrize(
    ("value_type", "value"),
    [("ST", "see note"), ("SN", "^1^:^128"), ("TX", "42"), ("CWE", "POS"), ("ST", "")],
)
def test_values_without_a_number(value_type: str, value: str) -> None:
    assert parse_number(value_type, value) is None


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("7-56", "7", "56"),
        ("-3-3", "-3", "3"),
        ("4.3 to 6.2", "4.3", "6.2"),
        ("70_105", "70", "105"),
        ("<0.50", None, "0.50"),
        ("<0.50 IU/mL", None, "0.50"),
        (">5", "5", None),  # a lone >5 is a lower bound
        ("negative", None, None),
    ],
)
def test_reference_ranges(text: str, low: str | None, high: str | None) -> None:
    bounds = parse_range(text)
    assert bounds is not None and bounds.text == text
    assert bounds.low == (Decimal(low) if low else None)
    assert bounds.high == (Decimal(high) if high else None)


def test_a_local_code_maps_to_its_loinc_analyte_and_unit(mappings: MappingSet) -> None:
    report = mapped(oru(obx(1, ALT, "42", "U/L", ref="7-56", flags="N")), mappings)
    [result] = report.results
    assert result.analyte.loinc == "1742-6"
    assert result.quantity is not None and result.quantity.value == Decimal(42)
    assert result.quantity.unit == "U/L" and result.as_sent is None
    assert (result.reference_low, result.reference_high) == (Decimal(7), Decimal(56))


def test_bilirubin_in_umol_is_converted_without_float_artefacts(mappings: MappingSet) -> None:
    report = mapped(oru(obx(1, TBIL, "51.3", "µmol/L", ref="3.4-20.5")), mappings)
    [result] = report.results
    assert result.quantity is not None and result.as_sent is not None
    assert str(result.quantity.value) == "3.00" and result.quantity.unit == "mg/dL"
    assert result.as_sent.value == Decimal("51.3") and result.as_sent.unit == "umol/L"
    assert (result.reference_low, result.reference_high) == (Decimal("0.20"), Decimal("1.20"))


def test_albumin_in_g_per_litre_becomes_g_per_decilitre(mappings: MappingSet) -> None:
    [result] = mapped(oru(obx(1, ALB, "28", "g/L")), mappings).results
    assert result.quantity is not None and str(result.quantity.value) == "2.8"


@pytest.mark.parametrize("unit", ["", "{INR}", "RATIO", "INR"])
def test_inr_with_any_usual_unit(unit: str, mappings: MappingSet) -> None:
    [result] = mapped(oru(obx(1, INR, "1.7", unit)), mappings).results
    assert result.quantity is not None and result.quantity.unit == "{INR}"


def test_an_implausible_unit_holds_the_result_with_a_reason(mappings: MappingSet) -> None:
    report = mapped(oru(obx(1, ALP, "120", "mg/dL")), mappings)
    assert report.results == ()
    [held] = report.held
    assert "unit 'mg/dL' is not a known unit for Alkaline phosphatase" in held.reason


def test_an_unmapped_code_is_held_not_lost(mappings: MappingSet) -> None:
    report = mapped(oru(obx(1, "GGT^Gamma GT^L", "80", "U/L")), mappings)
    [held] = report.held
    assert "GGT (L) is not in mappings/analytes.yaml" in held.reason


def test_text_for_a_numeric_analyte_is_held(mappings: MappingSet) -> None:
    report = mapped(oru(obx(1, ALT, "haemolysed", "U/L", value_type="ST")), mappings)
    [held] = report.held
    assert "needs a number" in held.reason and "haemolysed" in held.reason


@pytest.mark.parametrize(
    ("obx11", "status", "has_value"),
    [
        ("P", "preliminary", True),
        ("F", "final", True),
        ("C", "corrected", True),
        ("A", "amended", True),
        ("X", "cancelled", False),
        ("W", "entered-in-error", False),
        ("D", "entered-in-error", False),
        ("I", "registered", False),
    ],
)
def test_status_table(obx11: str, status: str, has_value: bool, mappings: MappingSet) -> None:
    value = "42" if has_value else ""
    [result] = mapped(oru(obx(1, ALT, value, "U/L", status=obx11)), mappings).results
    assert result.status.fhir_status == status
    assert (result.quantity is not None) == has_value


def test_an_unknown_status_is_held(mappings: MappingSet) -> None:
    report = mapped(oru(obx(1, ALT, "42", "U/L", status="Q")), mappings)
    assert "OBX-11" in report.held[0].reason


@pytest.mark.parametrize(
    ("hl7", "fhir"),
    [
        ("20240115083000+0800", "2024-01-15T08:30:00+08:00"),
        ("20240115083000-0500", "2024-01-15T08:30:00-05:00"),
        ("202401150830", "2024-01-15T08:30:00+08:00"),  # no offset: the source's configured one
        ("20240115", "2024-01-15"),  # date-only stays date-only
        ("202401", "2024-01"),
        ("20240115083000.123+0000", "2024-01-15T08:30:00.123+00:00"),
    ],
)
def test_times_keep_precision_and_offset(hl7: str, fhir: str) -> None:
    assert to_fhir_datetime(hl7, "+08:00") == fhir


def test_instants_need_seconds_and_bad_dates_are_named() -> None:
    assert to_fhir_instant("202401150830+0800", "+08:00") is None
    with pytest.raises(TimestampError, match="Aug 15"):
        to_fhir_datetime("Aug 15, 1942", "+08:00")
