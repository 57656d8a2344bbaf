"""The Prometheus alert rules hospital IT loads (deploy/prometheus/): valid for promtool,
passing their unit tests (each alert fires when it should and not before), and naming only
metrics the service exports (a renamed metric would silence an alert)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from adapter.service.metrics import REGISTRY

RULES = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"
ALERTS = RULES / "trialbridge-alerts.yml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: `make promtool` installs Debian's prometheus package"
    return subprocess.run([tool, *args], capture_output=True, text=True, cwd=RULES, timeout=120)


def test_the_alert_rules_are_valid() -> None:
    checked = promtool("check", "rules", ALERTS.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 11 rules found" in checked.stdout


def test_the_alert_rules_pass_their_unit_tests() -> None:
    tested = promtool("test", "rules", "trialbridge-alerts.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_unit_test() -> None:
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    tests = yaml.safe_load((RULES / "trialbridge-alerts.test.yml").read_text())["tests"]
    tested = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    assert {rule["alert"] for rule in rules} == tested


def exported() -> set[str]:
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(f"{family.name}_total")
    return names


def test_the_rules_name_only_metrics_the_service_exports() -> None:
    used = set(re.findall(r"\btrialbridge_[a-z_]+", ALERTS.read_text()))
    used -= {"trialbridge_alerts"}  # the file's own name in its comments
    assert used and used <= exported(), used - exported()
