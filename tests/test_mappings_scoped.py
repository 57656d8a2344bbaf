"""Codes scoped to the sender (MSH-3 application / MSH-4 facility), and bare codes.

A hospital may feed one study from two LIS whose local codes overlap, and many LIS send
OBX-3 without a coding system (``0135-4^TotalProtein``, allowed by HL7 v2.5.1: CWE.3 is
optional). These tests write a mappings directory the way an interface engineer would and
check what each sender's result becomes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapter.cli import main
from adapter.errors import ConfigError
from adapter.mapping import MappedReport, map_report
from adapter.mappings import DEFAULT_MAPPINGS_DIR, MappingSet, load_mappings
from adapter.parse import parse_bytes
from adapter.tools.lint import lint_directory
from adapter.tools.ucum import UcumConverter
from tests.messages import obx, oru

# Two LIS: the main lab and a point-of-care feed. "TP" means total protein at neither: the main
# LIS uses it for ALT, the point-of-care system for albumin (overlapping local codes).
SCOPED = """
  total_protein:
    display: Total protein
    loinc: "2885-2"
    unit: g/dL
    codes:
      - {code: "0135-4", application: MAINLIS}
      - {system: L, code: TP, application: POC, facility: WARD3}
  alt_main:
    display: ALT at the main LIS
    loinc: "1742-6"
    unit: U/L
    codes:
      - {system: L, code: TP, application: MAINLIS}
      - {system: L, code: X1, application: MAINLIS}
  albumin_ward:
    display: Albumin on ward 3
    loinc: "1751-7"
    unit: g/dL
    codes:
      - {system: L, code: X1, application: MAINLIS, facility: WARD3}
"""


@pytest.fixture(scope="module")
def converter() -> UcumConverter:
    return UcumConverter()


def mappings_dir(tmp_path: Path, extra: str = SCOPED) -> Path:
    directory = tmp_path / "mappings"
    shutil.copytree(DEFAULT_MAPPINGS_DIR, directory)
    with (directory / "analytes.yaml").open("a", encoding="utf-8") as handle:
        handle.write(extra)
    return directory


def from_sender(application: str, facility: str, *results: str) -> str:
    return oru(*results).replace("|NTC-LIS|NTCH|", f"|{application}|{facility}|", 1)


def mapped(text: str, mappings: MappingSet) -> MappedReport:
    [parsed] = parse_bytes(text.encode())
    assert parsed.report is not None, parsed.error
    return map_report(parsed.report, mappings, default_offset="+08:00")


def test_a_bare_code_under_its_senders_scope_maps(tmp_path: Path) -> None:
    mappings = load_mappings(mappings_dir(tmp_path))
    report = mapped(
        from_sender("MAINLIS", "NTCH", obx(1, "0135-4^TotalProtein", "7.3", "g/dL")), mappings
    )
    [result] = report.results
    assert result.analyte.key == "total_protein" and str(result.quantity.value) == "7.3"  # type: ignore[union-attr]
    assert result.rule is not None and result.rule.scope_text() == "application MAINLIS"


def test_the_same_bare_code_from_another_sender_is_held_with_the_reason(tmp_path: Path) -> None:
    mappings = load_mappings(mappings_dir(tmp_path))
    report = mapped(
        from_sender("OTHERLIS", "NTCH", obx(1, "0135-4^TotalProtein", "7.3", "g/dL")), mappings
    )
    assert report.results == ()
    [held] = report.held
    assert held.reason == (
        "code 0135-4 (no system) from OTHERLIS@NTCH is not in mappings/analytes.yaml"
    )


def test_overlapping_local_codes_from_two_senders_map_to_different_analytes(
    tmp_path: Path,
) -> None:
    mappings = load_mappings(mappings_dir(tmp_path))
    main_lis = mapped(from_sender("MAINLIS", "NTCH", obx(1, "TP^TP^L", "42", "U/L")), mappings)
    ward = mapped(from_sender("POC", "WARD3", obx(1, "TP^TP^L", "7.1", "g/dL")), mappings)
    assert [r.analyte.loinc for r in main_lis.results] == ["1742-6"]
    assert [r.analyte.loinc for r in ward.results] == ["2885-2"]
    # A third sender has no entry for TP: held, not guessed.
    other = mapped(from_sender("POC", "WARD9", obx(1, "TP^TP^L", "7.1", "g/dL")), mappings)
    assert other.results == () and "code TP (L) is not in" in other.held[0].reason


def test_the_most_specific_scope_wins(tmp_path: Path) -> None:
    mappings = load_mappings(mappings_dir(tmp_path))
    ward = mapped(from_sender("mainlis", "ward3", obx(1, "X1^X^L", "3.9", "g/dL")), mappings)
    elsewhere = mapped(from_sender("MAINLIS", "NTCH", obx(1, "X1^X^L", "40", "U/L")), mappings)
    assert [r.analyte.key for r in ward.results] == ["albumin_ward"]  # case does not matter
    assert [r.analyte.key for r in elsewhere.results] == ["alt_main"]


def test_unscoped_codes_still_map_for_every_sender(tmp_path: Path) -> None:
    mappings = load_mappings(mappings_dir(tmp_path))
    for application in ("MAINLIS", "POC", ""):
        report = mapped(from_sender(application, "X", obx(1, "ALT^ALT^L", "40", "U/L")), mappings)
        assert [r.analyte.key for r in report.results] == ["alt"]


def test_the_held_reason_leaves_out_an_empty_coding() -> None:
    report = mapped(oru(obx(1, "1001910^Glucose^^^Glucose^", "5.4", "mmol/L")), load_mappings())
    assert report.held[0].reason == (
        "code 1001910 (no system) from NTC-LIS@NTCH is not in mappings/analytes.yaml"
    )


def test_mappings_check_warns_on_a_bare_code_without_a_scope(
    tmp_path: Path, converter: UcumConverter
) -> None:
    unscoped = (
        '\n  total_protein:\n    loinc: "2885-2"\n    unit: g/dL\n'
        '    codes:\n      - {code: "0135-4"}\n'
    )
    directory = mappings_dir(tmp_path, unscoped)
    findings = [str(f) for f in lint_directory(directory, converter)]
    bare = [f for f in findings if "bare code" in f]
    assert (
        len(bare) == 1
        and ": warning: analyte 'total_protein': code 0135-4 has no system" in bare[0]
    )
    assert "add application: (MSH-3) and/or facility: (MSH-4)" in bare[0]
    # Scoped, the same code draws no warning, and the loader accepts both.
    assert not [
        f
        for f in (str(x) for x in lint_directory(mappings_dir(tmp_path / "s"), converter))
        if "bare code" in f
    ]
    assert load_mappings(directory).analyte_for("", "0135-4", "ANY", "WHERE") is not None


def test_a_code_in_two_scopes_is_no_conflict_but_in_one_scope_it_is(
    tmp_path: Path, converter: UcumConverter
) -> None:
    directory = mappings_dir(tmp_path)
    assert not [f for f in lint_directory(directory, converter) if f.level == "error"]
    clash = SCOPED + "      - {system: L, code: TP, application: mainlis}\n"
    clashing = mappings_dir(tmp_path / "clash", clash)
    errors = [str(f) for f in lint_directory(clashing, converter) if f.level == "error"]
    assert len(errors) == 1
    assert "code TP (L, application mainlis) is mapped to both 'alt_main'" in errors[0]
    with pytest.raises(ConfigError, match="mapped to both 'alt_main'") as raised:
        load_mappings(clashing)
    assert raised.value.line is not None


def test_a_misspelt_scope_key_is_refused_with_file_and_line(tmp_path: Path) -> None:
    directory = mappings_dir(tmp_path, SCOPED.replace("facility: WARD3}", "facilty: WARD3}", 1))
    with pytest.raises(ConfigError, match="unknown key 'facilty'") as raised:
        load_mappings(directory)
    text = (directory / "analytes.yaml").read_text().splitlines()
    assert "facilty" in text[raised.value.line - 1]  # type: ignore[operator]


def test_explain_shows_the_sender_and_the_scope_that_matched(tmp_path: Path) -> None:
    directory = mappings_dir(tmp_path)
    message = tmp_path / "poc.hl7"
    message.write_text(from_sender("POC", "WARD3", obx(1, "TP^TP^L", "7.1", "g/dL")))
    result = CliRunner().invoke(
        main, ["explain", str(message)], env={"TRIALBRIDGE_MAPPINGS_DIRECTORY": str(directory)}
    )
    assert result.exit_code == 0, result.output
    line = next(
        n
        for n, text in enumerate((directory / "analytes.yaml").read_text().splitlines(), 1)
        if "code: TP, application: POC" in text
    )
    assert "message MSG0001 from POC@WARD3" in result.output
    assert (
        f"matched TP (L) for application POC, facility WARD3 at mappings/analytes.yaml:{line}"
        in result.output
    )
