"""Every real message in ../shared/corpus/hl7 either maps or is refused, and this file says
which and why, file by file.

The shipped mappings/ know only the study's LIS, so the corpus runs through a site mapping
written here (as an interface engineer would for these senders): the study's file plus the
codes these senders use.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from adapter.config import load_settings
from adapter.mappings import DEFAULT_MAPPINGS_DIR, MappingSet, load_mappings
from adapter.translate import Translation, translate
from tests.messages import CORPUS

EXTRA_CODES = {
    "sodium": [{"system": "GH", "code": "84295"}],
    "creatinine": [{"system": "GH", "code": "82565"}],
    "albumin": [{"system": "GH", "code": "82313"}],  # sent as "ALUBUMIN"
    "alp": [{"system": "GH", "code": "82319"}],
}
EXTRA_ANALYTES = {
    "cholesterol": {
        "loinc": "2093-3",
        "unit": "mmol/L",
        "codes": [{"system": "L", "code": "Z049107"}],
    },
    "glucose_fasting": {
        "loinc": "1554-5",
        "unit": "mg/dL",
        "codes": [
            {"system": "POST 12H CFST:MCNC:PT:SER/PLAS:QN", "code": c} for c in ("1554-5", "1553-5")
        ],
    },
    "hbc_ab": {
        "loinc": "22316-4",
        "unit": "[IU]/mL",
        "codes": [{"system": "LN", "code": "22316-4"}],
    },
    "ige_timothy": {
        "loinc": "6265-3",
        "unit": "k[IU]/L",
        "convert": {"kU/L": "1"},
        "codes": [{"system": "LN", "code": "6265-3"}],
    },
    "hemoglobin": {"loinc": "718-7", "unit": "g/dL", "codes": [{"system": "LN", "code": "718-7"}]},
}
EXTRA_UNITS = {"[IU]/mL": "[IU]/mL", "kU/L": "kU/L", "g/mL": "g/mL"}


@pytest.fixture(scope="module")
def site_mappings(tmp_path_factory: pytest.TempPathFactory) -> MappingSet:
    directory = tmp_path_factory.mktemp("site_mappings")
    analytes = yaml.safe_load((DEFAULT_MAPPINGS_DIR / "analytes.yaml").read_text())
    for key, codes in EXTRA_CODES.items():
        analytes["analytes"][key]["codes"].extend(codes)
    analytes["analytes"].update(EXTRA_ANALYTES)
    units = yaml.safe_load((DEFAULT_MAPPINGS_DIR / "units.yaml").read_text())
    units["aliases"].update(EXTRA_UNITS)
    (directory / "analytes.yaml").write_text(yaml.safe_dump(analytes, allow_unicode=True))
    (directory / "units.yaml").write_text(yaml.safe_dump(units, allow_unicode=True))
    return load_mappings(directory)


def run(name: str, mappings: MappingSet) -> list[Translation]:
    return list(translate((CORPUS / name).read_bytes(), name, load_settings(), mappings))


def values(item: Translation) -> dict[str, Any]:
    assert item.mapped is not None
    return {
        r.analyte.key: (str(r.quantity.value), r.quantity.unit, r.quantity.comparator)
        for r in item.mapped.results
        if r.quantity
    }


def held(item: Translation) -> dict[str, str]:
    return {h.result.location: h.reason for h in item.held}


def test_corpus_is_complete() -> None:
    assert len(list(CORPUS.glob("*.hl7"))) == 12


def test_msh2_with_three_encoding_characters_is_refused(site_mappings: MappingSet) -> None:
    [item] = run("hapi_MSH2_missing_component_sep.hl7", site_mappings)
    assert item.error is not None and item.error.location == "MSH.2"
    assert "3 encoding characters" in str(item.error)


def test_olis_cholesterol_maps_and_its_free_text_comment_is_held(site_mappings: MappingSet) -> None:
    [item] = run("hapi_OLIS_cholesterol_NTE_escapes.hl7", site_mappings)
    assert values(item) == {"cholesterol": ("2.30", "mmol/L", None)}
    assert "Z101068 (L) is not in mappings" in held(item)["OBX[2]"]
    # The NTE after OBR, with its \.br\ escapes, is on the result.
    [result] = item.mapped.results  # type: ignore[union-attr]
    assert "Lipid - Target Levels" in result.order.notes[0] and "\n" in result.order.notes[0]


def test_nist_hepatitis_quantitative_result_maps_and_qualitative_are_held(
    site_mappings: MappingSet,
) -> None:
    [item] = run("lfh_ORU_NIST_LOI_hepatitis_panel.hl7", site_mappings)
    assert values(item) == {"hbc_ab": ("0.70", "[IU]/mL", None)}
    [result] = item.mapped.results  # type: ignore[union-attr]
    assert result.reference_high is not None and str(result.reference_high) == "0.50"
    assert set(held(item)) == {"OBX[1]", "OBX[2]"}


def test_two_obr_groups_with_local_codes_are_held(site_mappings: MappingSet) -> None:
    [item] = run("lfh_ORU_multiple_OBR_reports.hl7", site_mappings)
    assert item.error is None and values(item) == {}
    assert len(item.held) == 4


def test_mirth_cmp_maps_sodium_and_creatinine_and_holds_wrong_units(
    site_mappings: MappingSet,
) -> None:
    [item] = run("mirth_small_CMP_local_codes_bad_dates.hl7", site_mappings)
    assert values(item) == {
        "sodium": ("145", "mmol/L", None),
        "creatinine": ("1.3", "mg/dL", None),
    }
    reasons = held(item)
    assert "unit 'MG/DL' is not a known unit for Albumin" in reasons["OBX[11]"]
    assert "unit 'MG/DL' is not a known unit for Alkaline phosphatase" in reasons["OBX[17]"]
    # Direct bilirubin is not total bilirubin: it stays unmapped.
    assert "82314 (GH) is not in mappings" in reasons["OBX[12]"]


@pytest.mark.parametrize("name", ["ms_LAB-ORU-1.hl7", "ms_LAB-ORU-2.hl7"])
def test_microsoft_cbc_pair_parses_with_all_results_held(
    name: str, site_mappings: MappingSet
) -> None:
    [item] = run(name, site_mappings)
    assert item.error is None and len(item.held) == 10


def test_nist_cbc_hemoglobin_in_g_per_ml_is_held(site_mappings: MappingSet) -> None:
    [item] = run("ms_LRI_2.0-NG_CBC_Typ_Message.hl7", site_mappings)
    assert "unit 'g/mL' is not a known unit for hemoglobin" in held(item)["OBX[2]"]
    assert len(item.held) == 28


def test_python_hl7_glucose_sn_maps_and_fn_is_held(site_mappings: MappingSet) -> None:
    [item] = run("pyhl7_sample_glucose_SN_FN.hl7", site_mappings)
    assert values(item) == {"glucose_fasting": ("182", "mg/dL", None)}
    [result] = item.mapped.results  # type: ignore[union-attr]
    assert (str(result.reference_low), str(result.reference_high)) == ("70", "105")
    assert "needs a number" in held(item)["OBX[2]"] and "FN" in held(item)["OBX[2]"]


def test_fhs_bhs_batch_gives_two_messages(site_mappings: MappingSet) -> None:
    items = run("rs_batch_FHS_BHS_two_ORU.hl7", site_mappings)
    assert [i.source for i in items] == [
        "rs_batch_FHS_BHS_two_ORU.hl7#1",
        "rs_batch_FHS_BHS_two_ORU.hl7#2",
    ]
    assert all(i.error is None and len(i.held) == 5 for i in items)


def test_reportstream_microbiology_is_held(site_mappings: MappingSet) -> None:
    [item] = run("rs_valid_hl7_multiORC_corrected_NTE.hl7", site_mappings)
    assert item.error is None and values(item) == {} and len(item.held) == 26


def test_v2tofhir_malformed_sn_comparator_is_read(site_mappings: MappingSet) -> None:
    [item] = run("v2tofhir_IG_test_ORU_R01_LRI.hl7", site_mappings)
    assert values(item) == {"ige_timothy": ("0.10", "k[IU]/L", "<")}
    assert item.mapped is not None and item.mapped.report.charset == "utf-8"
