"""trialbridge explain: rule with its line, conversion, status decision, Observation; held."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from adapter.cli import main
from tests.messages import ALT, CORPUS, TBIL, obx, oru


def analytes_line(text: str) -> int:
    lines = Path("mappings/analytes.yaml").read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, start=1) if text in line)


def write(tmp_path: Path, message: str) -> Path:
    path = tmp_path / "message.hl7"
    path.write_bytes(message.encode("utf-8"))
    return path


def test_conversion_rule_line_status_and_observation(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        oru(
            obx(1, TBIL, "51.3", "umol/L", ref="3.4-20.5"),
            obx(2, ALT, "", "U/L", status="X"),
            obx(3, "K^Potassium^L", "4.1", "mmol/L"),
        ),
    )
    result = CliRunner().invoke(main, ["explain", str(path)])
    assert result.exit_code == 0, result.output
    line = analytes_line("{system: L, code: TBIL}")
    assert f"matched TBIL (L) for any sender at mappings/analytes.yaml:{line}" in result.output
    assert "51.3 umol/L \u00d7 1/17.1 = 3.00 mg/dL" in result.output
    assert "OBX-11 X -> Observation.status cancelled (HL7 table 0085 row X" in result.output
    assert '"status": "cancelled"' in result.output
    assert "OBX[3] K^Potassium^L = 4.1 mmol/L (OBX-11 F)" in result.output
    assert "held:        code K (L) is not in mappings/analytes.yaml" in result.output


def test_json_carries_the_observation_with_exact_values(tmp_path: Path) -> None:
    path = write(tmp_path, oru(obx(1, TBIL, "51.3", "umol/L")))
    result = CliRunner().invoke(main, ["explain", "--json", str(path)])
    assert result.exit_code == 0, result.output
    [message] = json.loads(result.output)
    [entry] = message["results"]
    assert entry["rule"]["analyte"] == "bilirubin_total"
    assert entry["rule"]["where"] == f"mappings/analytes.yaml:{analytes_line('code: TBIL}')}"
    assert entry["observation"]["valueQuantity"]["value"] == 3.0
    assert entry["observation"]["valueQuantity"]["code"] == "mg/dL"


def test_corpus_loinc_match_and_held_local_codes() -> None:
    path = CORPUS / "mirth_small_CMP_local_codes_bad_dates.hl7"
    result = CliRunner().invoke(main, ["explain", "--json", str(path)])
    assert result.exit_code == 0, result.output
    [message] = json.loads(result.output)
    by_location = {entry["location"]: entry for entry in message["results"]}
    creatinine = next(e for e in by_location.values() if "rule" in e)
    assert creatinine["rule"]["matched"] == {"code": "2160-0", "system": "LN"}
    assert creatinine["conversion"].startswith("none: 1.3 mg/dL")
    assert by_location["OBX[1]"]["held"] == "code 84295 (GH) is not in mappings/analytes.yaml"


def test_refused_message_exits_1_with_a_clean_message() -> None:
    path = CORPUS / "hapi_MSH2_missing_component_sep.hl7"
    result = CliRunner().invoke(main, ["explain", str(path)])
    assert result.exit_code == 1
    assert "refused: [message 72313573, MSH.2]" in result.output
    assert "Traceback" not in result.output


def test_help_has_an_example() -> None:
    for command in (
        ["explain"],
        ["mappings", "check"],
        ["mappings", "diff"],
        ["check"],
    ):
        result = CliRunner().invoke(main, [*command, "--help"])
        assert result.exit_code == 0
        assert "Example:" in result.output
