"""The sources' commands and configuration."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapter.cli import main
from adapter.errors import ConfigError
from adapter.intake import Intake
from adapter.sources import Background, MllpSource, load_sources_config, sources_config
from adapter.sources.config import MllpConfig
from adapter.store import open_store
from adapter.trial.enrolment import EnrolledSubject
from adapter.trial.registry import Registry
from adapter.trial.study import load_study
from tests.messages import ALT, obx, oru


@pytest.mark.parametrize("command", ["lis-simulator", "mllp-send"])
def test_each_command_is_documented_with_an_example(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0
    assert "Example: trialbridge " + command in result.output


def test_mllp_send_prints_each_ack(
    own_state_store: str, enrol: Callable[..., EnrolledSubject], tmp_path: Path
) -> None:
    enrol()
    batch = tmp_path / "batch.hl7"
    good = oru(obx(1, ALT, "42", "U/L"), message_id="S1")
    batch.write_text("FHS|^~\\&\rBHS|^~\\&\r" + good + good.replace("|S1|", "||"))
    with open_store(own_state_store) as store:
        intake = Intake(store, Registry(store, load_study()))
        source = MllpSource(MllpConfig(port=0))
        with Background(lambda stop: source.serve(intake, stop)):
            port = str(source.wait_ready())
            result = CliRunner().invoke(main, ["mllp-send", str(batch), "--port", port])
    assert result.exit_code == 1
    assert "batch.hl7#1: AA S1" in result.output
    assert "batch.hl7#2: AE [MSH^1^10 101] MSH-10 (message control id) is empty" in result.output
    assert "1 message(s) were not accepted" in result.output


def test_the_repository_config_has_every_source_off() -> None:
    config = load_sources_config()
    assert not (config.file_drop.enabled or config.mllp.enabled or config.query.enabled)
    assert config.query.version == "2.4"


def test_environment_overrides_and_refusals() -> None:
    config = load_sources_config(
        environ={"TRIALBRIDGE_SOURCES_MLLP_ENABLED": "true", "TRIALBRIDGE_SOURCES_MLLP_PORT": "0"}
    )
    assert config.mllp.enabled and config.mllp.port == 0
    with pytest.raises(ConfigError, match="unknown key"):
        sources_config({"mllp": {"prot": 2575}})
    with pytest.raises(ConfigError, match="complete_when"):
        sources_config({"file_drop": {"complete_when": "soon"}})
    with pytest.raises(ConfigError, match="tls_key"):
        sources_config({"mllp": {"tls_cert": "cert.pem"}})
