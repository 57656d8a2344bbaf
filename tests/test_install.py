"""A clean install (issue 13): the package built as a wheel and installed into a fresh
virtualenv, run outside the checkout. Without --config it says where it looked; ``init``
writes a deployment that ``config check`` passes and ``status`` uses (found through
TRIALBRIDGE_CONFIG); nothing is read from the checkout.

Dependencies come from this machine's configured package indexes and pip's cache (no
compiling, no build of the dependencies), so the whole test takes about a minute.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PIP = [sys.executable, "-m", "pip"]


def copy_checkout(target: Path) -> None:
    """The checkout's files as git sees them (tracked and new, not ignored), links kept;
    without git (a source archive), the tree without the local environments."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, timeout=60,
    )  # fmt: skip
    if listed.returncode != 0:
        skip = shutil.ignore_patterns(".venv", ".git", "node_modules", "var", "*.egg-info", "build")
        shutil.copytree(ROOT, target, symlinks=True, ignore=skip)
        return
    for name in filter(None, listed.stdout.decode().split("\0")):
        source, copy = ROOT / name, target / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree
        copy.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            copy.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, copy)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The ``bin`` folder of a fresh virtualenv with TrialBridge installed from its wheel."""
    work = tmp_path_factory.mktemp("install")
    copy_checkout(work / "src")
    quiet = ["--quiet", "--disable-pip-version-check"]
    subprocess.run(
        [*PIP, "wheel", *quiet, "--no-deps", "-w", str(work / "dist"), str(work / "src")],
        check=True, timeout=300, cwd=work,
    )  # fmt: skip
    (wheel,) = (work / "dist").glob("trialbridge-*.whl")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(work / "venv")],
                   check=True, timeout=120)  # fmt: skip
    python = work / "venv" / "bin" / "python"
    subprocess.run(
        [*PIP, "--python", str(python), "install", *quiet, "--no-compile", str(wheel)],
        check=True, timeout=600, cwd=work,
    )  # fmt: skip
    yield work / "venv" / "bin"


def tb(bin_dir: Path, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRIALBRIDGE_")}
    clean.pop("PYTHONPATH", None)
    return subprocess.run(
        [str(bin_dir / "trialbridge"), *args],
        env={**clean, **env}, cwd=cwd, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_installed_package_is_the_wheel_not_the_checkout(installed: Path) -> None:
    found = subprocess.run(
        [str(installed / "python"), "-c", "import adapter; print(adapter.__file__)"],
        capture_output=True, text=True, timeout=60, cwd=installed, env={"PATH": "/usr/bin"},
    )  # fmt: skip
    assert "site-packages" in found.stdout and str(ROOT) not in found.stdout


def test_without_a_configuration_it_says_where_it_looked(installed: Path, tmp_path: Path) -> None:
    assert not Path("/etc/trialbridge/trialbridge.yaml").exists()  # this machine has none
    done = tb(installed, "status", cwd=tmp_path)
    assert done.returncode == 1
    assert "no configuration file: pass --config FILE, set TRIALBRIDGE_CONFIG" in done.stderr
    assert "/etc/trialbridge/trialbridge.yaml" in done.stderr and "Traceback" not in done.stderr


def test_init_writes_a_deployment_that_checks_and_runs_status(
    installed: Path, tmp_path: Path
) -> None:
    deploy = tmp_path / "deploy"
    done = tb(installed, "init", str(deploy), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for name in ("trialbridge.yaml", "study.yaml", "mappings/analytes.yaml", "mappings/units.yaml"):
        assert (deploy / name).is_file() and f"wrote {deploy / name}" in done.stdout
    config = str(deploy / "trialbridge.yaml")
    checked = tb(installed, "config", "check", cwd=tmp_path, TRIALBRIDGE_CONFIG=config)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"Configuration: {config} (from TRIALBRIDGE_CONFIG)" in checked.stdout
    assert "study           ok     XHNKKY-DDSC" in checked.stdout
    status = tb(installed, "status", cwd=tmp_path, TRIALBRIDGE_CONFIG=config)
    assert status.returncode == 3, status.stderr  # the service is not running: a person
    assert "the service is not running" in status.stdout
    assert (deploy / "var" / "trialbridge.sqlite").is_file()  # the store, next to the file
