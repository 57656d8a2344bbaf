"""``trialbridge score``: the thin CLI over adapter.scores."""

from __future__ import annotations

import json

from click.testing import CliRunner

from adapter.cli import main


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["score", *args])
    return result.exit_code, result.output


def test_meld_json() -> None:
    code, out = run(
        "meld",
        "--bilirubin",
        "1.9 mg/dL",
        "--inr",
        "1.2",
        "--creatinine",
        "115 umol/L",
        "--no-dialysis",
        "--json",
    )
    assert code == 0
    assert json.loads(out) == {
        "name": "meld",
        "formula": "MELD (UNOS/OPTN 2002)",
        "computable": True,
        "score": 13,
        "reason": None,
    }


def test_not_computable_is_reported_with_its_reason() -> None:
    code, out = run("meld", "--bilirubin", "1.9 mg/dL", "--inr", "1.2", "--creatinine", "1 mg/dL")
    assert code == 0
    assert "not computable" in out and "dialysis status unknown" in out


def test_text_output_for_each_score() -> None:
    assert (
        run(
            "meld-3",
            "--bilirubin",
            "1.9 mg/dL",
            "--inr",
            "1.2",
            "--creatinine",
            "115 µmol/L",
            "--sodium",
            "130 mEq/L",
            "--albumin",
            "28 g/L",
            "--sex",
            "F",
            "--age",
            "54",
            "--no-dialysis",
        )[1].strip()
        == "MELD 3.0 (OPTN 2023): 20 (uncapped 20)"
    )
    code, out = run(
        "child-pugh",
        "--bilirubin",
        "34.2 umol/L",
        "--albumin",
        "35 g/L",
        "--pt-prolonged",
        "4 s",
        "--ascites",
        "none",
        "--encephalopathy",
        "grade 1-2",
    )
    assert (code, out.strip()) == (0, "Child-Pugh (Pugh 1973): 9, class B")
    code, out = run("albi", "--bilirubin", "1.2 mg/dL", "--albumin", "3.5 g/dL")
    assert (code, out.strip()) == (0, "ALBI (Johnson 2015): -2.11, grade 2")


def test_unknown_unit_is_a_clean_error() -> None:
    code, out = run("albi", "--bilirubin", "1.9 mg/l", "--albumin", "30 g/L")
    assert code == 1
    assert "unknown unit 'mg/l'" in out and "Traceback" not in out


def test_malformed_value_and_unused_option_are_usage_errors() -> None:
    assert run("albi", "--bilirubin", "abc", "--albumin", "30 g/L")[0] == 2
    code, out = run("meld", "--albumin", "3 g/dL")
    assert code == 2 and "does not use --albumin" in out


def test_help_has_an_example() -> None:
    code, out = run("--help")
    assert code == 0 and "Example:" in out
