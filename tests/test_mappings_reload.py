"""Mapping changes reach a running ``trialbridge run`` (a real process): the next batch uses
the new mappings, a broken file leaves the old ones running and ``status`` / ``/readyz`` /
``/metrics`` show the error with file and line, Provenance names each result's mappings,
and ``reprocess --unmapped`` pushes what the new mappings cover while the service runs,
without pushing anything twice."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from adapter.mappings import DEFAULT_MAPPINGS_DIR, content_digest
from adapter.trial.enrolment import EnrolledSubject
from tests.messages import obx, oru
from tests.test_service_run import TRIALBRIDGE, Run
from tests.test_service_support import observations, wait_for

ALT_LINE = "      - {system: L, code: GPT}\n"
NEW_CODE = "      - {system: L, code: GPT}\n      - {system: L, code: XALT}\n"


@pytest.fixture
def service(
    tmp_path: Path, fhir_url: str, own_state_store: str, enrol: Callable[..., EnrolledSubject]
) -> Iterator[tuple[Run, Path, Path]]:
    """A running service with a mappings directory and a file drop of its own."""
    enrol("MRN001", "DDSC-T01")
    mappings, drop = tmp_path / "mappings", tmp_path / "drop"
    shutil.copytree(DEFAULT_MAPPINGS_DIR, mappings)
    drop.mkdir()
    run = Run(
        own_state_store,
        fhir_url,
        tmp_path / "run.log",
        TRIALBRIDGE_MAPPINGS_DIRECTORY=str(mappings),
        TRIALBRIDGE_SOURCES_FILE_DROP_ENABLED="true",
        TRIALBRIDGE_SOURCES_FILE_DROP_DIRECTORY=str(drop),
        TRIALBRIDGE_SOURCES_FILE_DROP_POLL_SECONDS="0.2",
    )
    yield run, mappings, drop
    if run.process.poll() is None:
        run.stop()


def drop_message(drop: Path, name: str, *results: str) -> None:
    text = oru(*results, message_id=name, order=f"ORD-{name}")
    (drop / f".{name}.tmp").write_text(text)
    (drop / f".{name}.tmp").rename(drop / f"{name}.hl7")  # whole, as a LIS would


def observation(fhir_url: str, order: str) -> dict[str, Any] | None:
    found = [o for o in observations(fhir_url) if f"ORD-{order}" in o["identifier"][0]["value"]]
    return found[0] if found else None


def mappings_named(fhir_url: str, obs: dict[str, Any]) -> str:
    bundle = requests.get(
        f"{fhir_url}/Provenance", params={"target": f"Observation/{obs['id']}"}, timeout=10
    ).json()
    [policy] = bundle["entry"][0]["resource"]["policy"]
    return str(policy).removeprefix("urn:trialbridge:mappings:")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def status(store_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRIALBRIDGE_STORE_URL": store_url}
    return subprocess.run(
        [TRIALBRIDGE, "status"], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_next_batch_uses_changed_mappings_and_a_broken_file_keeps_the_old_ones(
    service: tuple[Run, Path, Path], fhir_url: str, own_state_store: str
) -> None:
    run, mappings, drop = service
    analytes = mappings / "analytes.yaml"
    before = content_digest(mappings)
    drop_message(drop, "M1", obx(1, "ALT^ALT^L", "40", "U/L"))
    first = wait_for(lambda: observation(fhir_url, "M1"), 60, "M1's Observation")
    assert mappings_named(fhir_url, first).endswith(f"+sha256:{before}")

    edit(analytes, ALT_LINE, NEW_CODE)  # the LIS's new local code for ALT
    after = content_digest(mappings)
    drop_message(drop, "M2", obx(1, "XALT^ALT^L", "41", "U/L"))
    second = wait_for(lambda: observation(fhir_url, "M2"), 60, "M2 mapped by the new code")
    assert mappings_named(fhir_url, second).endswith(f"+sha256:{after}") and after != before
    assert run.get("/readyz").json()["mappings"] == {
        "active": mappings_named(fhir_url, second),
        "error": None,
    }

    # A wrong check digit: `mappings check` finds it, so the service keeps what works.
    edit(analytes, 'loinc: "1742-6"', 'loinc: "1742-7"')
    line = analytes.read_text().splitlines().index('    loinc: "1742-7"') + 1
    error = wait_for(lambda: run.get("/readyz").json()["mappings"]["error"], 30, "the error")
    assert f"{analytes}:{line}: error: analyte 'alt': LOINC code '1742-7'" in error
    drop_message(drop, "M3", obx(1, "XALT^ALT^L", "42", "U/L"))
    third = wait_for(lambda: observation(fhir_url, "M3"), 60, "M3 mapped by the old mappings")
    assert mappings_named(fhir_url, third) == mappings_named(fhir_url, second)
    assert run.get("/readyz").json()["ready"] is True  # it runs on, on the working mappings
    metrics = run.get("/metrics").text
    assert "trialbridge_mappings_reload_failures_total 1.0" in metrics.splitlines()
    shown = status(own_state_store)
    assert "job mappings is failing" in shown.stdout and f"analytes.yaml:{line}" in shown.stdout

    edit(analytes, 'loinc: "1742-7"', 'loinc: "1742-6"')  # fixed: loaded, no longer failing
    wait_for(lambda: run.get("/readyz").json()["mappings"]["error"] is None, 30, "the fix")
    assert "job mappings is failing" not in status(own_state_store).stdout


def test_reprocess_unmapped_while_the_service_runs_pushes_each_result_once(
    service: tuple[Run, Path, Path], fhir_url: str, own_state_store: str
) -> None:
    _, mappings, drop = service
    drop_message(drop, "M4", obx(1, "ALT^ALT^L", "40", "U/L"), obx(2, "XALT^ALT^L", "44", "U/L"))
    wait_for(lambda: observation(fhir_url, "M4"), 60, "M4's mapped result")
    assert len([o for o in observations(fhir_url) if "ORD-M4" in o["identifier"][0]["value"]]) == 1

    edit(mappings / "analytes.yaml", ALT_LINE, NEW_CODE)
    env = {**os.environ, "TRIALBRIDGE_STORE_URL": own_state_store,
           "TRIALBRIDGE_MAPPINGS_DIRECTORY": str(mappings)}  # fmt: skip
    done = subprocess.run(
        [TRIALBRIDGE, "reprocess", "--unmapped", "--fhir-url", fhir_url, "--json"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    def both() -> list[dict[str, Any]] | None:
        found = [o for o in observations(fhir_url) if "ORD-M4" in o["identifier"][0]["value"]]
        return found if len(found) == 2 else None

    found = wait_for(both, 60, "the newly mapped result")
    assert sorted(o["valueQuantity"]["value"] for o in found) == [40, 44]
    # Each written once: the result pushed before was not written again.
    assert [o["meta"]["versionId"] for o in found] == ["1", "1"]


# The watcher itself, without a process: what a change of the directory does.


def watcher_over(tmp_path: Path) -> tuple[Any, Path]:
    from adapter.mappings import load_mappings
    from adapter.service.reload import MappingsWatcher

    directory = shutil.copytree(DEFAULT_MAPPINGS_DIR, tmp_path / "mappings")
    return MappingsWatcher(directory, load_mappings(directory)), directory


def test_a_touched_file_with_the_same_content_is_no_change(tmp_path: Path) -> None:
    watcher, directory = watcher_over(tmp_path)
    analytes = directory / "analytes.yaml"
    os.utime(analytes, (0, 0))  # another mtime, same bytes
    assert watcher.check() is None
    analytes.write_text(analytes.read_text() + "\n# a comment\n")
    found = watcher.check()
    assert found is not None and found.mappings is not None and found.error is None
    assert found.mappings.provenance_version.endswith(content_digest(directory))
    assert found.mappings.directory == directory  # explain names the real file
    assert watcher.check() is None  # looked at once


def test_a_broken_or_missing_file_keeps_the_mappings_that_work(tmp_path: Path) -> None:
    watcher, directory = watcher_over(tmp_path)
    working = watcher.current
    (directory / "units.yaml").write_text("aliases: [not, a, mapping\n")
    found = watcher.check()
    assert found is not None and found.mappings is None
    assert found.error is not None and found.error.startswith(f"{directory / 'units.yaml'}:")
    assert watcher.current is working and watcher.describe()["error"] == found.error
    (directory / "units.yaml").unlink()
    missing = watcher.check()
    assert missing is not None and "units.yaml:0: error: the file is missing" in str(missing.error)
    assert watcher.current is working
