"""trialbridge check --conformance: hl7apy structure checks plus datatype values, located."""

from __future__ import annotations

import json

from click.testing import CliRunner

from adapter.cli import main
from adapter.tools.conformance import check_conformance, check_message, value_problem
from tests.messages import CORPUS, TBIL, obx, oru


def test_sample_glucose_fn_value_type_and_bad_birth_date() -> None:
    [result] = check_conformance((CORPUS / "pyhl7_sample_glucose_SN_FN.hl7").read_bytes())
    found = {(p.location, p.level) for p in result.problems}
    messages = {p.location: p.message for p in result.problems}
    assert result.version == "2.4" and not result.conformant
    assert ("PID.7", "error") in found
    assert messages["PID.7"] == "'196203520' is not a valid DTM"
    assert ("OBX[2].2", "error") in found
    assert "'FN' is not in HL7 table 0125" in messages["OBX[2].2"]
    assert ("OBX[1].2", "error") not in found  # SN is a value type


def test_mirth_date_that_is_not_hl7() -> None:
    [result] = check_conformance(
        (CORPUS / "mirth_small_CMP_local_codes_bad_dates.hl7").read_bytes()
    )
    messages = {p.location: p.message for p in result.problems}
    assert messages["PID.7"] == "'Aug 15, 1942' is not a valid DTM"


def test_a_batch_is_checked_message_by_message() -> None:
    results = check_conformance((CORPUS / "rs_batch_FHS_BHS_two_ORU.hl7").read_bytes())
    assert [r.position for r in results] == [1, 2]
    assert all(r.version == "2.5.1" for r in results)


def test_a_written_message_is_conformant() -> None:
    result = check_message(oru(obx(1, TBIL, "51.3", "umol/L")).rstrip("\r"))
    assert result.conformant, result.problems


def test_obx5_is_checked_against_obx2() -> None:
    result = check_message(oru(obx(1, TBIL, "high", "umol/L")).rstrip("\r"))
    assert not result.conformant
    assert [str(p) for p in result.problems if p.level == "error"] == [
        "OBX.5: error: 'high' is not a valid NM (OBX-2 says NM)"
    ]


def test_value_problems() -> None:
    assert value_problem("DTM", "20240115083000+0800") is None
    assert value_problem("DTM", "20240230") is not None  # no such day
    assert value_problem("DT", "1962") is None
    assert value_problem("NM", "-0.5") is None
    assert value_problem("SN", "<^0.10") is None
    assert value_problem("SN", "^182") is None
    assert value_problem("NM", "1,5") is not None


def test_unparseable_encoding_characters_are_one_error() -> None:
    [result] = check_conformance((CORPUS / "hapi_MSH2_missing_component_sep.hl7").read_bytes())
    assert not result.conformant
    assert result.problems[0].location == "MSH"


def test_cli_exit_codes_and_json() -> None:
    runner = CliRunner()
    bad = runner.invoke(
        main, ["check", "--conformance", str(CORPUS / "pyhl7_sample_glucose_SN_FN.hl7")]
    )
    assert bad.exit_code == 1
    assert "PID.7: error: '196203520' is not a valid DTM" in bad.output
    assert "1 message(s) not conformant" in bad.output
    good = runner.invoke(
        main, ["check", "--conformance", "--json", str(CORPUS / "ms_LAB-ORU-1.hl7")]
    )
    assert good.exit_code == 0, good.output
    [entry] = json.loads(good.output)
    assert entry["conformant"] is True and entry["version"] == "2.5"


def test_conformance_flag_is_required() -> None:
    result = CliRunner().invoke(main, ["check", str(CORPUS / "ms_LAB-ORU-1.hl7")])
    assert result.exit_code == 2
