"""Configuration validated completely at load (issue 13): a typo in the study file (analyte
``altt``, score ``meld3``), an unknown key, visits out of order: refused with file, line and
key by ``trialbridge config check``, ``report`` and ``run`` alike, never a KeyError later."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from adapter.cli import main
from adapter.config import find_config, load_settings
from adapter.deployment import init_deployment
from adapter.errors import ConfigError
from adapter.trial.study import load_study
from tests.test_service_run import TRIALBRIDGE


@pytest.fixture
def deployment(tmp_path: Path) -> Path:
    """A deployment written by ``trialbridge init``, its store in the test's folder."""
    init_deployment(tmp_path / "etc")
    return tmp_path / "etc" / "trialbridge.yaml"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TRIALBRIDGE, "config", "check", "--config", str(config)],
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_shipped_skeleton_passes_the_check(deployment: Path) -> None:
    done = check(deployment)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Configuration: {deployment} (from --config)" in done.stdout
    assert "0 error(s)" in done.stdout


def test_a_typod_analyte_is_refused_with_file_line_and_the_nearest_name(
    deployment: Path,
) -> None:
    study = deployment.with_name("study.yaml")
    edit(study, "analytes: [alt,", "analytes: [altt,")
    done = check(deployment)
    assert done.returncode == 1
    line = next(i for i, t in enumerate(study.read_text().splitlines(), 1) if "altt" in t)
    assert f"{study}:{line}: analytes[0]: 'altt' is not an analyte of" in done.stdout
    assert "did you mean 'alt'?" in done.stdout and "Traceback" not in done.stderr


def test_report_refuses_a_typod_analyte_instead_of_a_keyerror(deployment: Path) -> None:
    edit(deployment.with_name("study.yaml"), "analytes: [alt,", "analytes: [altt,")
    result = CliRunner().invoke(
        main,
        ["report", "--config", str(deployment), "--study", "XHNKKY-DDSC", "--fhir-url",
         "http://127.0.0.1:9/fhir", "--out", str(deployment.parent / "report")],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "analytes[0]: 'altt' is not an analyte" in result.output
    assert not isinstance(result.exception, KeyError)


@pytest.mark.parametrize(
    ("old", "new", "key", "message"),
    [
        ("scores: [meld, ", "scores: [meld3, ", "scores[0]", "'meld3' is not a score (did you"),
        ("visit_value_rule: nearest", "visit_rule: nearest", "visit_rule", "unknown key"),
        ("- code: low-dose\n", "- code: low-dose\n    dose: 1\n", "arms[0].dose", "unknown key"),
        ("week: 4, window", "week: 0, window", "visits[2]", "is listed after week-1"),
        ("window: [-7, 7]}", "window: [-21, 7]}", "visits[2].window", "overlap"),
    ],
)
def test_a_wrong_study_is_refused_at_load_naming_file_line_and_key(
    deployment: Path, old: str, new: str, key: str, message: str
) -> None:
    study = deployment.with_name("study.yaml")
    edit(study, old, new)
    with pytest.raises(ConfigError) as refused:
        load_study(study)
    text = str(refused.value)
    assert text.startswith(f"{study}:") and f": {key}: " in text and message in text
    assert refused.value.line is not None
    assert study.read_text().splitlines()[refused.value.line - 1].strip()


def test_an_unknown_key_in_the_configuration_is_refused_with_its_line(deployment: Path) -> None:
    edit(deployment, "  timezone: ", "  time_zone: ")
    with pytest.raises(ConfigError) as refused:
        load_settings(deployment)
    assert "lis.time_zone: unknown key (did you mean 'timezone'?" in str(refused.value)
    line = refused.value.line
    assert line is not None and "time_zone" in deployment.read_text().splitlines()[line - 1]
    edit(deployment, "  time_zone: ", "  timezone: ")
    edit(deployment, "  lease_seconds: 15", "  lease_second: 15")
    done = check(deployment)
    lines = deployment.read_text().splitlines()
    line = next(i for i, t in enumerate(lines, 1) if "lease_second: 15" in t)
    expected = f"{deployment}:{line}: service.lease_second: unknown key (did you mean 'lease_s"
    assert done.returncode == 1 and expected in done.stdout


def test_relative_paths_are_relative_to_the_configuration_file(deployment: Path) -> None:
    settings = load_settings(deployment, environ={})
    folder = deployment.parent
    assert settings.study_path == folder / "study.yaml"
    assert settings.mappings_dir == folder / "mappings"
    assert settings.store_url == f"sqlite:///{folder / 'var' / 'trialbridge.sqlite'}"


def test_the_configuration_is_found_as_an_installed_tool_finds_it(tmp_path: Path) -> None:
    etc = tmp_path / "etc" / "trialbridge.yaml"
    checkout = tmp_path / "checkout" / "config" / "trialbridge.yaml"
    named = tmp_path / "named.yaml"
    for path in (etc, checkout, named, tmp_path / "checkout" / "pyproject.toml"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump({}))
    env = {"TRIALBRIDGE_CONFIG": str(named)}
    assert find_config(tmp_path / "x.yaml", env, etc, checkout).how == "--config"
    assert find_config(None, env, etc, checkout).path == named
    assert find_config(None, {}, etc, checkout).path == etc
    assert find_config(None, {}, tmp_path / "none.yaml", checkout).how == "the checkout"
    with pytest.raises(ConfigError) as none:
        find_config(None, {}, tmp_path / "none.yaml", tmp_path / "nowhere.yaml")
    assert "pass --config FILE, set TRIALBRIDGE_CONFIG" in str(none.value)
    assert "trialbridge init" in str(none.value)


def test_init_keeps_existing_files_unless_forced(deployment: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        init_deployment(deployment.parent)
    assert "would overwrite" in str(refused.value) and "--force" in str(refused.value)
    assert init_deployment(deployment.parent, force=True)
