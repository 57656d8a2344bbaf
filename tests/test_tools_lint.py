"""mappings check: LOINC Mod 10, UCUM, schema, duplicates and conversions, with file:line."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapter.cli import main
from adapter.mappings import DEFAULT_MAPPINGS_DIR
from adapter.tools.lint import Finding, lint_directory, lint_mappings
from adapter.tools.loinc import check_digit, loinc_problem
from adapter.tools.ucum import UcumConverter, ucum_problem

UNITS = """\
aliases:
  "U/L": "U/L"
  "g/L": "g/L"
  "g/dL": "g/dL"
  "umol/L": "umol/L"
  "mg/dL": "mg/dL"
"""

GOOD = """\
version: "1"
analytes:
  albumin:
    loinc: "1751-7"
    unit: g/dL
    convert:
      "g/L": "1/10"
      "mg/dL": "1/1000"
    codes:
      - {system: L, code: ALB}
"""


@pytest.fixture(scope="module")
def converter() -> UcumConverter:
    return UcumConverter()


def lint(analytes: str, converter: UcumConverter, units: str = UNITS) -> list[Finding]:
    return lint_mappings(analytes, units, converter=converter)


@pytest.mark.parametrize(
    ("body", "digit"),
    [("12345", 5), ("1742", 6), ("1920", 8), ("14631", 6), ("61151", 7), ("34714", 6)],
)
def test_mod10_check_digit_as_the_loinc_users_guide_computes_it(body: str, digit: int) -> None:
    assert check_digit(body) == digit


def test_loinc_problems_name_malformed_and_wrong_check_digits() -> None:
    assert loinc_problem("1742-6") is None
    assert "wrong check digit" in (loinc_problem("1742-5") or "")
    assert "1742-6" in (loinc_problem("1742-5") or "")
    assert "malformed" in (loinc_problem("1742") or "")
    assert "malformed" in (loinc_problem("LP1234-5") or "")
    assert loinc_problem("11491-6") is None  # listed by LOINC as a known exception


def test_ucum_validity_is_case_sensitive() -> None:
    assert ucum_problem("meq/L") is None
    assert ucum_problem("{INR}") is None
    assert "not a valid UCUM" in (ucum_problem("mEq/L") or "")


def test_dimensional_factors(converter: UcumConverter) -> None:
    assert converter.factor("g/L", "g/dL") == Decimal("0.1")
    assert converter.factor("1", "{INR}") == 1
    assert converter.factor("umol/L", "mg/dL") is None  # needs a molar mass


def test_the_shipped_mappings_have_no_errors() -> None:
    findings = lint_directory(DEFAULT_MAPPINGS_DIR)
    assert [f for f in findings if f.level == "error"] == []


def test_a_clean_file_has_no_findings(converter: UcumConverter) -> None:
    assert lint(GOOD, converter) == []


def test_wrong_dimensional_factor_is_an_error_on_its_line(converter: UcumConverter) -> None:
    findings = lint(GOOD.replace('"1/10"', '"10"'), converter)
    assert [(f.line, f.level) for f in findings] == [(7, "error")]
    assert "dimensionally 1 g/L = 0.1 g/dL" in findings[0].message


def test_molar_to_mass_factors_are_accepted_as_written(converter: UcumConverter) -> None:
    text = GOOD.replace('"g/L": "1/10"', '"g/L": "1/10"\n      "umol/L": "1/17.1"')
    assert lint(text, converter) == []


def test_schema_unknown_keys_wrong_types_and_missing_fields(converter: UcumConverter) -> None:
    text = """\
version: "1"
extra: 1
analytes:
  albumin:
    loinc: 1751
    unit: g/dL
    colour: red
    codes:
      - {system: L}
  bad:
    unit: g/dL
    codes: ALB
"""
    messages = [str(f) for f in lint(text, converter)]
    assert "analytes.yaml:2: error: unknown key 'extra' (expected: version, analytes)" in messages
    assert any(m.startswith("analytes.yaml:5: warning: analyte 'albumin': loinc") for m in messages)
    assert any(m.startswith("analytes.yaml:5: error:") and "malformed" in m for m in messages)
    assert any(m.startswith("analytes.yaml:7: error:") and "'colour'" in m for m in messages)
    assert any(m.startswith("analytes.yaml:9: error:") and "needs code" in m for m in messages)
    assert any(
        m.startswith("analytes.yaml:11: error:") and "'loinc' is required" in m for m in messages
    )
    assert any(m.startswith("analytes.yaml:12: error:") and "'codes'" in m for m in messages)


def test_duplicate_and_conflicting_codes(converter: UcumConverter) -> None:
    text = """\
version: "1"
analytes:
  alt:
    loinc: "1742-6"
    unit: U/L
    codes:
      - {system: L, code: ALT}
      - {system: l, code: alt}
  ast:
    loinc: "1920-8"
    unit: U/L
    codes:
      - {system: L, code: ALT}
      - {system: LN, code: "1920-7"}
"""
    messages = [str(f) for f in lint(text, converter)]
    assert any(m.startswith("analytes.yaml:8: warning:") and "twice" in m for m in messages)
    assert any(
        m.startswith("analytes.yaml:13: error: code ALT (L) is mapped to both 'alt' (line 7)")
        for m in messages
    )
    assert any(m.startswith("analytes.yaml:14: error:") and "1920-7" in m for m in messages)


def test_units_and_aliases_that_are_not_ucum(converter: UcumConverter) -> None:
    units = UNITS + '  "mEq/L": "mEq/L"\n'
    text = GOOD.replace("unit: g/dL", "unit: G/DL")
    messages = [str(f) for f in lint(text, converter, units)]
    assert any(m.startswith("units.yaml:7: error: alias 'mEq/L' maps to 'mEq/L'") for m in messages)
    assert any(m.startswith("analytes.yaml:5: error:") and "not UCUM" in m for m in messages)


def test_missing_and_impossible_conversions(converter: UcumConverter) -> None:
    text = GOOD.replace('"g/L": "1/10"', '"mmol/L": "2"')
    messages = [str(f) for f in lint(text, converter)]
    assert any("'mmol/L': no alias in units.yaml produces it" in m for m in messages)
    missing = [m for m in messages if "have no conversion" in m]
    assert missing and "g/L (x0.1)" in missing[0] and "mg/dL" not in missing[0]


def test_duplicate_yaml_keys_are_errors(converter: UcumConverter) -> None:
    text = GOOD + '  albumin:\n    loinc: "1751-7"\n    unit: g/dL\n    codes: []\n'
    messages = [str(f) for f in lint(text, converter)]
    assert any(m.startswith("analytes.yaml:11: error:") and "repeated" in m for m in messages)


def test_not_yaml_is_one_error_with_its_line(converter: UcumConverter) -> None:
    findings = lint('version: "1"\nanalytes: [\n', converter)
    assert findings[0].level == "error" and "not valid YAML" in findings[0].message


def write(directory: Path, analytes: str, units: str = UNITS) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "analytes.yaml").write_text(analytes, encoding="utf-8")
    (directory / "units.yaml").write_text(units, encoding="utf-8")
    return directory


def test_cli_exit_1_on_errors_with_file_and_line(tmp_path: Path) -> None:
    directory = write(tmp_path / "m", GOOD.replace('"1751-7"', '"1751-8"'))
    result = CliRunner().invoke(main, ["mappings", "check", str(directory)])
    assert result.exit_code == 1
    assert f"{directory / 'analytes.yaml'}:4: error: analyte 'albumin': LOINC code" in result.output


def test_cli_exit_0_with_warnings_only_and_json(tmp_path: Path) -> None:
    directory = write(tmp_path / "m", GOOD.replace('"g/L": "1/10"', '"g/L": 0.1'))
    result = CliRunner().invoke(main, ["mappings", "check", str(directory), "--json"])
    assert result.exit_code == 0, result.output
    findings = json.loads(result.output)["findings"]
    assert [(f["line"], f["level"]) for f in findings] == [(7, "warning")]


def test_cli_defaults_to_the_configured_directory() -> None:
    result = CliRunner().invoke(main, ["mappings", "check"])
    assert result.exit_code == 0, result.output
    assert "0 error(s)" in result.output
