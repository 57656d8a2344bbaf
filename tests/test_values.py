"""Value kinds end to end through map and build: numbers, text, coded, repeats, PT forms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from adapter.build import build_transaction
from adapter.config import Identifiers
from adapter.mapping import MappedReport, map_report
from adapter.mappings import DEFAULT_MAPPINGS_DIR, MappingSet, load_mappings
from adapter.parse import parse_bytes
from tests.messages import ALT, CORPUS, obx, oru

IDS = Identifiers(result="urn:test:result", patient="urn:test:patient", local_code="urn:test:code")
EXTRA = {
    "lab_comment": {"loinc": "48767-8", "value": "text", "codes": [{"system": "L", "code": "CMT"}]},
    "hav_igm": {
        "loinc": "22314-9",
        "value": "coded",
        "codes": [{"system": "LN", "code": "22314-9"}],
    },
}


@pytest.fixture(scope="module")
def mappings(tmp_path_factory: pytest.TempPathFactory) -> MappingSet:
    directory: Path = tmp_path_factory.mktemp("mappings")
    analytes = yaml.safe_load((DEFAULT_MAPPINGS_DIR / "analytes.yaml").read_text())
    analytes["analytes"].update(EXTRA)
    (directory / "analytes.yaml").write_text(yaml.safe_dump(analytes, allow_unicode=True))
    (directory / "units.yaml").write_text((DEFAULT_MAPPINGS_DIR / "units.yaml").read_text())
    return load_mappings(directory)


def mapped(data: bytes, mappings: MappingSet) -> MappedReport:
    [parsed] = parse_bytes(data)
    assert parsed.report is not None, parsed.error
    return map_report(parsed.report, mappings, default_offset="+08:00")


def observation(report: MappedReport) -> dict[str, Any]:
    bundle = build_transaction(report, IDS)
    [entry] = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
    resource: dict[str, Any] = entry["resource"]
    return resource


def test_text_results_keep_every_repetition(mappings: MappingSet) -> None:
    text = oru(obx(1, "CMT^Comment^L", "first line~second line", value_type="TX"))
    resource = observation(mapped(text.encode(), mappings))
    assert resource["valueString"] == "first line\nsecond line"


def test_a_coded_result_from_a_real_message_becomes_a_codeable_concept(
    mappings: MappingSet,
) -> None:
    data = (CORPUS / "lfh_ORU_NIST_LOI_hepatitis_panel.hl7").read_bytes()
    report = mapped(data, mappings)
    resource = observation(
        MappedReport(
            report.report, tuple(r for r in report.results if r.analyte.key == "hav_igm"), ()
        )
    )
    concept = resource["valueCodeableConcept"]
    assert concept["coding"][0] == {
        "system": "http://snomed.info/sct",
        "code": "260385009",
        "display": "Negative (qualifier value)",
    }
    assert concept["coding"][1]["code"] == "NEG"


def test_repeated_coded_values_become_components_none_cut(mappings: MappingSet) -> None:
    text = oru(obx(1, "22314-9^HAV IgM^LN", "POS^Positive^L~IND^Indeterminate^L", value_type="CWE"))
    resource = observation(mapped(text.encode(), mappings))
    values = [c["valueCodeableConcept"]["coding"][0]["code"] for c in resource["component"]]
    assert values == ["POS", "IND"]


def test_repeated_numbers_for_a_quantity_analyte_are_held(mappings: MappingSet) -> None:
    report = mapped(oru(obx(1, ALT, "42~43", "U/L")).encode(), mappings)
    assert report.results == () and "repeats 2 values" in report.held[0].reason


def test_pt_in_percent_is_quick_never_seconds_or_inr(mappings: MappingSet) -> None:
    quick = mapped(oru(obx(1, "PTA^PT activity^L", "65", "%")).encode(), mappings)
    assert [r.analyte.loinc for r in quick.results] == ["5894-1"]
    seconds_code_in_percent = mapped(oru(obx(1, "PT^PT^L", "65", "%")).encode(), mappings)
    assert seconds_code_in_percent.results == ()
    assert "not a known unit for Prothrombin time" in seconds_code_in_percent.held[0].reason
