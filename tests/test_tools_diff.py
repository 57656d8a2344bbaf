"""trialbridge mappings diff: old mappings from a directory or a git revision, result by result."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapter.cli import main
from adapter.mappings import DEFAULT_MAPPINGS_DIR
from tests.messages import ALB, ALT, TBIL, obx, oru


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def messages(tmp_path: Path) -> Path:
    folder = tmp_path / "feed"
    folder.mkdir()
    text = oru(
        obx(1, TBIL, "51.3", "umol/L"),
        obx(2, ALT, "40", "U/L"),
        obx(3, "GGT^Gamma GT^L", "30", "U/L"),
        obx(4, ALB, "40", "g/L"),
    )
    (folder / "a.hl7").write_bytes(text.encode())
    return folder


def changed_mappings(directory: Path) -> Path:
    """The shipped mappings, then: GGT mapped into ALT's codes, bilirubin factor changed,
    albumin's g/L conversion removed."""
    shutil.copytree(DEFAULT_MAPPINGS_DIR, directory)
    analytes = directory / "analytes.yaml"
    text = analytes.read_text(encoding="utf-8")
    text = text.replace(
        "      - {system: L, code: GPT}",
        "      - {system: L, code: GPT}\n      - {system: L, code: GGT}",
    )
    text = text.replace('"umol/L": "1/17.1"', '"umol/L": "1/17.0"')
    text = text.replace('      "g/L": "1/10"          # 1 g/dL = 10 g/L\n', "")
    analytes.write_text(text, encoding="utf-8")
    return directory


def test_against_a_directory(tmp_path: Path, messages: Path) -> None:
    new = changed_mappings(tmp_path / "new")
    result = CliRunner().invoke(
        main,
        [
            "mappings",
            "diff",
            "--against",
            str(DEFAULT_MAPPINGS_DIR),
            "--mappings",
            str(new),
            str(messages),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    kinds = {c["location"]: (c["kind"], c["old"], c["new"]) for c in report["changes"]}
    assert kinds["OBX[1]"] == (
        "different value",
        "bilirubin_total (1975-2) 3.00 mg/dL",
        "bilirubin_total (1975-2) 3.02 mg/dL",
    )
    assert kinds["OBX[3]"][0] == "newly mapped"
    assert kinds["OBX[3]"][2] == "alt (1742-6) 30 U/L"
    assert kinds["OBX[4]"][0] == "no longer mapped"
    assert "OBX[2]" not in kinds
    assert report["counts"] == {"newly mapped": 1, "no longer mapped": 1, "different value": 1}
    assert report["results"] == 4 and report["unchanged"] == 1


def test_against_a_git_revision(tmp_path: Path, messages: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    shutil.copytree(DEFAULT_MAPPINGS_DIR, repo / "mappings")
    git(repo, "add", "mappings")
    git(repo, "commit", "-q", "-m", "old")
    shutil.rmtree(repo / "mappings")
    changed_mappings(repo / "mappings")
    result = CliRunner().invoke(
        main,
        [
            "mappings",
            "diff",
            "--against",
            "HEAD",
            "--mappings",
            str(repo / "mappings"),
            str(messages),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (
        "OBX[3]: newly mapped: held: code GGT (L) is not in mappings/analytes.yaml -> "
        "alt (1742-6) 30 U/L" in result.output
    )
    assert "OBX[4]: no longer mapped" in result.output
    assert result.output.strip().endswith(
        "4 result(s) in 1 file(s) compared: 1 newly mapped, 1 no longer mapped, 1 different value"
    )


def test_same_mappings_change_nothing(messages: Path) -> None:
    result = CliRunner().invoke(
        main, ["mappings", "diff", "--against", str(DEFAULT_MAPPINGS_DIR), str(messages)]
    )
    assert result.exit_code == 0, result.output
    assert "no change" in result.output


def test_unknown_revision_is_a_clean_error(tmp_path: Path, messages: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    shutil.copytree(DEFAULT_MAPPINGS_DIR, repo / "mappings")
    result = CliRunner().invoke(
        main,
        [
            "mappings",
            "diff",
            "--against",
            "no-such-rev",
            "--mappings",
            str(repo / "mappings"),
            str(messages),
        ],
    )
    assert result.exit_code == 1
    assert "give a git revision or a mappings directory" in result.output
