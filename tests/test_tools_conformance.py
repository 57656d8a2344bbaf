"""trialbridge check --conformance: hl7apy structure checks plus datatype values, located."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from adapter.cli import main
from adapter.tools.conformance import check_conformance, check_message, check_sent, value_problem
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
    [problem] = [p for p in result.problems if p.level == "error"]
    assert (problem.location, problem.message) == (
        "OBX.5",
        "'high' is not a valid NM (OBX-2 says NM)",
    )
    # TrialBridge itself holds that result: the finding says so, in TrialBridge's words.
    assert problem.kind == "holds"
    assert "held: A numeric result needs a number, but OBX-5 is 'high'" in problem.why


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


TRUNCATING = ("v2tofhir_IG_test_ORU_R01_LRI.hl7", "rs_valid_hl7_multiORC_corrected_NTE.hl7")


def test_a_truncation_character_is_removed_for_validation_and_the_report_says_so() -> None:
    for name in TRUNCATING:
        [result] = check_conformance((CORPUS / name).read_bytes())
        assert result.version == "2.5.1"
        assert not any("hl7apy cannot parse" in p.message for p in result.problems), name
        note = next(p for p in result.problems if p.location == "MSH.2")
        assert note.level == "warning" and "removed for validation" in note.message
        assert "truncation character '#'" in note.message and note.kind == "ignorable"
        # hl7apy validated the rest: segment findings beyond MSH.
        assert len({p.location.split(".")[0] for p in result.problems}) > 3


def test_findings_say_which_hold_a_result_which_a_lis_can_ignore_and_validator_limits() -> None:
    [corrected] = check_conformance(
        (CORPUS / "rs_valid_hl7_multiORC_corrected_NTE.hl7").read_bytes()
    )
    holds = [p for p in corrected.problems if p.kind == "holds"]
    assert holds and all(
        p.why.startswith("TrialBridge: held:") or "held:" in p.message for p in holds
    )
    assert any("a corrected result (OBX-11) has no value" in p.message + p.why for p in holds)
    [mirth] = check_conformance((CORPUS / "mirth_small_CMP_local_codes_bad_dates.hl7").read_bytes())
    kinds = {p.location: (p.kind, p.why) for p in mirth.problems}
    assert kinds["PID.7"] == ("ignorable", "TrialBridge does not read PID-7")
    assert kinds["PV1.4"][0] == "validator" and "table 0007 is user-defined" in kinds["PV1.4"][1]
    assert mirth.counts() == {"holds": 0, "real": 0, "ignorable": 4, "validator": 3}


def test_a_refused_message_is_a_hold_in_trialbridges_words() -> None:
    [result] = check_conformance((CORPUS / "hapi_MSH2_missing_component_sep.hl7").read_bytes())
    [problem] = result.problems
    assert problem.kind == "holds" and "refused: MSH-2 has 3 encoding characters" in problem.why


QBP = (
    "MSH|^~\\&|TRIALBRIDGE|NTCH|LIS|NTCH|20240115093000||QBP^Z01^QBP_Q11|Q1|P|2.5.1\r"
    "QPD|Z01^Lab results^HL70471|T123|MRN1^^^NTCH^MR|20240101000000|20240115000000\r"
    "RCP|I|9999^RD\r"
)


def test_query_parameters_after_qpd3_and_a_z_event_are_validator_limits() -> None:
    """Issue 19: HL7 v2.5.1 puts a query's parameters after QPD-3; hl7apy does not know."""
    result = check_sent(QBP.encode("latin-1"))
    assert result.conformant, result.errors
    qpd = next(p for p in result.problems if "QPD" in p.message)
    assert qpd.level == "error" and qpd.kind == "validator" and "5.5.4" in qpd.why
    z01 = next(p for p in result.problems if p.location == "MSH.9.2")
    assert z01.kind == "validator" and "locally defined" in z01.why


def test_a_query_missing_a_required_field_is_not_conformant() -> None:
    qry = (
        "MSH|^~\\&|TRIALBRIDGE|NTCH|LIS|NTCH|20240115093000||QRY^R02^QRY_R02|Q2|P|2.4\r"
        "QRD|20240115093000|R|I|T123|||9999^RD|MRN1^^^^^^^^NTCH|RES|ALL\r"
        "QRF||20240101000000|20240115000000|||REP|ANY|ALL\r"
    )
    result = check_sent(qry.encode("latin-1"))
    assert not result.conformant
    [error] = result.errors
    assert error.location == "QRF.1" and error.kind == "real"
    fixed = check_sent(qry.replace("QRF||", "QRF|LAB|").encode("latin-1"))
    assert fixed.conformant, fixed.errors


def test_cli_groups_the_findings_by_what_they_mean() -> None:
    result = CliRunner().invoke(
        main, ["check", "--conformance", str(CORPUS / "v2tofhir_IG_test_ORU_R01_LRI.hl7")]
    )
    assert "(v2.5.1): NOT conformant (" in result.output
    assert "  real, but a LIS can ignore them: TrialBridge copes:" in result.output
    assert "  from the validator's own limits, not problems in the message:" in result.output
    assert "removed for validation" in result.output


def test_a_file_that_is_not_hl7_is_one_finding_and_the_next_file_goes_on(tmp_path: Path) -> None:
    (tmp_path / "a.hl7").write_text("hello")
    result = CliRunner().invoke(
        main, ["check", "--conformance", str(tmp_path / "a.hl7"), str(CORPUS / "ms_LAB-ORU-1.hl7")]
    )
    assert result.exit_code == 1
    assert "a.hl7#1: message ? (v?): NOT conformant (1 hold a result" in result.output
    assert "does not start with an MSH" in result.output
    assert "ms_LAB-ORU-1.hl7#1: message 182 (v2.5): conformant" in result.output
