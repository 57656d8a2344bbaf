"""report.html opened in a real headless Chromium (Debian's ``chromium``): its plots and
tables render, offline. The screenshot is kept as a test artifact: in
``$TRIALBRIDGE_TEST_ARTIFACTS`` when set, else in pytest's temporary folder (the path is
printed with ``-s``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from matplotlib.image import imread

from adapter.cli import main
from adapter.dev_fhir import DevFhirServer
from adapter.fhir_client import FhirClient
from adapter.trial.study import load_study
from tests.test_report import AS_OF, trial_bundle

_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed with apt-get when missing (``make chromium`` does too)."""
    found = shutil.which("chromium")
    if found is None:
        install = subprocess.run(
            ["apt-get", "install", "-y", "-q", "chromium"], capture_output=True, text=True
        )
        found = shutil.which("chromium")
        assert found, f"chromium is missing and apt-get could not install it:\n{install.stderr}"
    return found


@pytest.fixture(scope="module")
def report_html(dev_fhir_server: DevFhirServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dev_fhir_server.reset()
    with FhirClient(dev_fhir_server.base_url, timeout=10, retries=0) as client:
        client.transaction(trial_bundle(load_study()))
    out = tmp_path_factory.mktemp("html")
    args = ["report", "--fhir-url", dev_fhir_server.base_url, "--study", "XHNKKY-DDSC"]
    result = CliRunner().invoke(main, [*args, "--out", str(out), "--as-of", AS_OF])
    assert result.exit_code == 0, result.output
    return out / "report.html"


def run_chromium(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": "disabled:"}
    command = [chromium, *_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)


def test_the_page_needs_nothing_from_the_network(report_html: Path) -> None:
    html = report_html.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<script" not in html and "@import" not in html


def test_chromium_renders_the_plots_and_tables(
    chromium: str, report_html: Path, tmp_path: Path
) -> None:
    done = run_chromium(chromium, tmp_path / "profile", "--dump-dom", report_html.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    study = load_study()
    figures = re.findall(r"<figure class=\"plot\" id=\"plot-([\w-]+)\"><svg", dom)
    # Kaplan-Meier, one trajectory per analyte and score, the heat map.
    assert figures == ["km", *study.analytes, *study.scores, "heatmap"]
    for table in ("subjects", "survival", "states", "gaps", "summary", "visits", "excluded"):
        assert f'id="{table}"' in dom, table
    assert "Kaplan-Meier survival by arm" in dom
    assert dom.count("<tr>") > 100


def test_a_screenshot_shows_the_page(chromium: str, report_html: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    done = run_chromium(
        chromium,
        tmp_path / "profile",
        "--window-size=1280,2400",
        f"--screenshot={shot}",
        report_html.as_uri(),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    pixels = imread(shot)
    assert pixels.shape[:2] == (2400, 1280)
    # Not a blank page: plenty of ink (text, lines) and colour (the arms' curves).
    ink = (pixels[..., :3].mean(axis=2) < 0.5).mean()
    colour = (pixels[..., :3].std(axis=2) > 0.15).mean()
    assert ink > 0.005 and colour > 0.001, (ink, colour)
    keep = Path(os.environ.get("TRIALBRIDGE_TEST_ARTIFACTS", tmp_path / "artifacts"))
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, keep / "report.png")
    print(f"screenshot of report.html: {keep / 'report.png'}")
