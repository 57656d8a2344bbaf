"""``trialbridge mappings test``: the project's own suite (tests/mapping-suite: the shared
corpus and part of the simulated feed) passes; a changed expected value fails naming the
result; ``--update`` writes the expected files; a mapping change shows result by result."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from adapter.cli import main
from adapter.mappings import DEFAULT_MAPPINGS_DIR

SUITE = Path(__file__).resolve().parent / "mapping-suite"
MIRTH = "corpus/mirth_small_CMP_local_codes_bad_dates"


def mappings_test(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["mappings", "test", *args], env=env)
    return result.exit_code, result.output


def test_the_projects_mappings_pass_their_suite() -> None:
    code, output = mappings_test(str(SUITE))
    assert code == 0, output
    files, messages, results = (int(n.split()[0]) for n in output.split(":")[0].split(", "))
    assert files == len(list(SUITE.rglob("*.hl7"))) and files >= 36
    assert messages >= 45 and results >= 300
    assert output.rstrip().endswith(": 0 difference(s)")


def test_every_corpus_message_keeps_its_licence_attribution() -> None:
    sources = (SUITE / "corpus" / "SOURCES.md").read_text()
    for path in (SUITE / "corpus").glob("*.hl7"):
        assert f"| {path.name} |" in sources, path.name


def test_one_changed_expected_value_fails_naming_the_result(tmp_path: Path) -> None:
    suite = shutil.copytree(SUITE, tmp_path / "suite")
    expected = suite / f"{MIRTH}.expected.yaml"
    text = expected.read_text()
    assert "value: '1.3', unit: mg/dL" in text
    expected.write_text(text.replace("value: '1.3', unit: mg/dL", "value: '1.4', unit: mg/dL"))
    code, output = mappings_test(str(suite))
    assert code == 1
    assert f"{MIRTH}.hl7: 12345678 OBX[6].value: expected '1.4', got '1.3'" in output.splitlines()
    assert "1 difference(s) from expected" in output


def test_a_mapping_change_shows_in_every_result_it_changes(tmp_path: Path) -> None:
    mappings = shutil.copytree(DEFAULT_MAPPINGS_DIR, tmp_path / "mappings")
    analytes = mappings / "analytes.yaml"
    sodium = "      - {system: L, code: SOD}\n"
    analytes.write_text(
        analytes.read_text().replace(sodium, sodium + '      - {system: GH, code: "84295"}\n')
    )
    code, output = mappings_test(str(SUITE / "corpus"), "--mappings", str(mappings))
    assert code == 1
    cmp = MIRTH.removeprefix("corpus/")
    assert output.splitlines()[0] == (
        f"{cmp}.hl7: 12345678 OBX[1]: expected 'held: code 84295 (GH) is not in "
        "mappings/analytes.yaml', got 'sodium (2951-2) 145 mmol/L, final'"
    )
    assert "1 difference(s) from expected" in output


def test_update_writes_the_expected_files_then_they_pass(tmp_path: Path) -> None:
    folder = tmp_path / "lis"
    folder.mkdir()
    shutil.copy(SUITE / f"{MIRTH}.hl7", folder / "cmp.hl7")
    code, output = mappings_test(str(folder))
    assert (
        code == 1
        and "cmp.hl7: expected file: expected 'cmp.expected.yaml (write it with --update)'"
        in output
    )
    code, output = mappings_test("--update", str(folder))
    assert code == 0 and "wrote cmp.expected.yaml" in output
    written = (folder / "cmp.expected.yaml").read_text()
    assert written.startswith("# What cmp.hl7 must become under the mappings")
    assert (
        "OBX[6]: {analyte: creatinine, loinc: 2160-0, value: '1.3', unit: mg/dL, status: final}"
        in written
    )
    assert mappings_test(str(folder))[0] == 0
    assert mappings_test("--update", str(folder))[1].rstrip().endswith("0 expected file(s) written")


def test_an_empty_suite_or_a_broken_expected_file_is_an_error_not_a_pass(tmp_path: Path) -> None:
    code, output = mappings_test(str(tmp_path))
    assert code == 1 and f"no *.hl7 message under {tmp_path}: nothing to test" in output
    shutil.copy(SUITE / f"{MIRTH}.hl7", tmp_path / "cmp.hl7")
    (tmp_path / "cmp.expected.yaml").write_text("messages: [\n  - {message: x\n")
    code, output = mappings_test(str(tmp_path))
    assert code == 1 and f"{tmp_path / 'cmp.expected.yaml'}:2: not valid YAML" in output
