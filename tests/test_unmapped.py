"""Held results as a visible queue: ``push`` records them in the state store, ``unmapped``
lists them, and ``reprocess --unmapped`` pushes them once a mapping has been added, against
the local FHIR server."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select, text

from adapter.cli import main
from adapter.config import load_settings
from adapter.fhir_client import FhirClient
from adapter.mappings import DEFAULT_MAPPINGS_DIR, load_mappings
from adapter.store import held_row, open_store
from adapter.store.schema import held_results, messages, outbox, quarantine
from adapter.translate import translate
from adapter.trial.enrolment import EnrolledSubject
from tests.messages import ALP, ALT, obx, oru

GGT = "GGT^Gamma-glutamyl transferase^L"
AMMON = "AMMON^Ammonia^L"
LOINC_GGT = "http://loinc.org|2324-2"
GGT_ANALYTE = """
  ggt:
    display: Gamma-glutamyl transferase
    loinc: "2324-2"
    loinc_display: Gamma glutamyl transferase [Enzymatic activity/volume] in Serum or Plasma
    unit: U/L
    codes:
      - {system: L, code: GGT}
"""


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def cli_json(*args: str) -> Any:
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def write_feed(folder: Path, *messages: str) -> Path:
    folder.mkdir()
    for i, message in enumerate(messages, start=1):
        (folder / f"{i}.hl7").write_text(message)
    return folder


@pytest.mark.parametrize(
    ("segment", "kind"),
    [
        (obx(1, GGT, "45", "U/L"), "unmapped_code"),
        (obx(1, ALP, "80", "mg/dL"), "unit"),
        (obx(1, ALT, "high", "U/L", value_type="ST"), "value"),
        (obx(1, ALT, "42", "U/L", status="Z"), "status"),
        (obx(1, ALT, "42", "U/L", observed="yesterday"), "time"),
    ],
)
def test_each_reason_of_the_mapping_stage_has_its_kind(segment: str, kind: str) -> None:
    [item] = translate(oru(segment).encode(), "t", load_settings(), load_mappings())
    [held] = item.held
    assert held_row(held).reason_kind == kind


def test_free_text_values_are_never_kept_as_examples() -> None:
    comment = "Called Dr Wang about Mr Li Wei, bed 12"
    segment = obx(1, "COMMENT^Comment^L", comment, value_type="TX")
    [item] = translate(oru(segment).encode(), "t", load_settings(), load_mappings())
    [held] = item.held
    assert held_row(held).example_value == f"(TX text of {len(comment)} characters, not kept)"


@pytest.fixture(autouse=True)
def enrolled(enrol: Callable[..., EnrolledSubject]) -> EnrolledSubject:
    """The patient of tests/messages.py (MRN001) is an enrolled subject: only enrolled
    subjects' messages are kept and pushed."""
    return enrol()


def test_unmapped_codes_are_listed_then_pushed_once_mapped(
    fhir_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, own_state_store: str
) -> None:
    feed = write_feed(
        tmp_path / "feed",
        oru(obx(1, ALT, "42", "U/L"), obx(2, GGT, "45", "U/L"), message_id="M1", order="A1"),
        oru(
            obx(1, ALT, "40", "U/L"),
            obx(2, GGT, "51", "U/L"),
            obx(3, AMMON, "30", "umol/L"),
            message_id="M2",
            order="A2",
        ),
    )
    pushed = cli_json("push", str(feed), "--fhir-url", fhir_url)
    assert (pushed["pushed"], pushed["held"], pushed["duplicates"]) == (2, 3, 0)
    again = cli_json("push", str(feed), "--fhir-url", fhir_url)
    assert (again["messages"], again["pushed"], again["duplicates"]) == (2, 0, 2)

    queue = cli_json("unmapped")
    ggt, ammon = queue["unmapped"]
    assert (ggt["code"], ggt["code_system"], ggt["code_text"]) == (
        "GGT",
        "L",
        "Gamma-glutamyl transferase",
    )
    assert (ggt["units"], ggt["count"], ggt["example"]["value"]) == (["U/L"], 2, "51")
    assert ggt["example"]["message"] == "M2"
    first, last = (datetime.fromisoformat(ggt[k]) for k in ("first_seen", "last_seen"))
    assert first.tzinfo is not None and first <= last  # one batch: one receive time
    assert (ammon["code"], ammon["count"], ammon["units"]) == ("AMMON", 1, ["umol/L"])
    listing = cli("unmapped")
    assert "Unmapped codes: 2 code(s), 3 held" in listing.output
    assert "GGT (L) Gamma-glutamyl transferase" in listing.output

    with FhirClient(fhir_url, timeout=10, retries=0) as client:
        assert client.search("Observation", {"code": LOINC_GGT}) == []
        versions = {o["id"]: o["meta"]["versionId"] for o in client.search("Observation", {})}
        mappings = tmp_path / "mappings"
        shutil.copytree(DEFAULT_MAPPINGS_DIR, mappings)
        with (mappings / "analytes.yaml").open("a", encoding="utf-8") as analytes:
            analytes.write(GGT_ANALYTE)
        monkeypatch.setenv("TRIALBRIDGE_MAPPINGS_DIRECTORY", str(mappings))

        done = cli_json("reprocess", "--unmapped", "--fhir-url", fhir_url)
        assert (done["messages"], done["pushed"], done["failed"]) == (2, 2, 0)
        assert (done["resolved"], done["still_held"]) == (2, 1)
        found = client.search("Observation", {"code": LOINC_GGT})
        assert sorted(o["valueQuantity"]["value"] for o in found) == [45, 51]
        unchanged = {o["id"]: o["meta"]["versionId"] for o in client.search("Observation", {})}
        assert {k: v for k, v in unchanged.items() if k in versions} == versions

    assert [g["code"] for g in cli_json("unmapped")["unmapped"]] == ["AMMON"]
    with open_store(own_state_store) as store, store.engine.connect() as conn:
        states = conn.execute(select(held_results.c.code, held_results.c.resolved_at)).all()
    assert sorted((code, at is not None) for code, at in states) == [
        ("AMMON", False),
        ("GGT", True),
        ("GGT", True),
    ]
    rerun = cli_json("reprocess", "--unmapped", "--fhir-url", fhir_url)
    assert (rerun["messages"], rerun["pushed"], rerun["unchanged"]) == (1, 0, 1)


def test_other_held_reasons_are_listed_by_kind(fhir_url: str, tmp_path: Path) -> None:
    feed = write_feed(tmp_path / "feed", oru(obx(1, ALP, "80", "mg/dL"), message_id="M7"))
    cli_json("push", str(feed), "--fhir-url", fhir_url)
    queue = cli_json("unmapped")
    assert queue["unmapped"] == []
    [unit] = queue["held"]["unit"]
    assert (unit["code"], unit["count"], unit["example"]["message"]) == ("ALP", 1, "M7")
    assert "is not a known unit" in unit["example"]["reason"]
    assert "Held for unit: 1 result(s)" in cli("unmapped").output


def test_a_failed_push_leaves_the_message_to_be_pushed_next_time(
    fhir_url: str, tmp_path: Path
) -> None:
    feed = write_feed(
        tmp_path / "feed",
        oru(obx(1, ALT, "42", "U/L"), message_id="M1", order="A1"),
        oru(obx(1, ALT, "40", "U/L"), message_id="M2", order="A2"),
    )
    down = cli("push", str(feed), "--fhir-url", "http://127.0.0.1:9/fhir", "--json")
    assert down.exit_code == 1 and '"failed": 2' in down.output
    up = cli_json("push", str(feed), "--fhir-url", fhir_url)
    # Processed into the outbox the first time, pushed now: pushed, so not duplicates.
    assert (up["messages"], up["pushed"], up["duplicates"], up["failed"]) == (2, 2, 0, 0)


def test_nothing_identifying_is_stored_outside_the_raw_message(
    fhir_url: str, tmp_path: Path, own_state_store: str, enrol: Callable[..., EnrolledSubject]
) -> None:
    enrol("MRN778812", "DDSC-T02")
    message = oru(
        obx(1, GGT, "45", "U/L"),
        obx(2, "NOTE^Note^L", "MRN778812", value_type="TX"),
        mrn="MRN778812",
    )
    feed = write_feed(tmp_path / "feed", message, "not hl7 MRN778812")
    cli("push", str(feed), "--fhir-url", fhir_url)
    with open_store(own_state_store) as store, store.engine.connect() as conn:
        cells = [
            str(value)
            for table in (messages, held_results, quarantine)  # the registry alone holds the MRN
            for row in conn.execute(select(table))
            for name, value in row._mapping.items()
            if name != "raw"
        ]
        tables = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))
        registry = {"subjects", "subject_identifiers", "subject_infusions", "source_state"}
        service = {"outbox", "dead_letters", "leases", "job_runs", "quarantine", "store_identity"}
        assert {t for (t,) in tables} == {"alembic_version", "messages", "held_results"} | (
            registry | service
        )
        sent = [str(v) for row in conn.execute(select(outbox)) for v in row._mapping.values()]
        assert sent and not [c for c in sent if "MRN778812" in c]  # pseudonymous bundles
    assert len(cells) > 20
    assert not [c for c in cells if "MRN778812" in c or "Patient" in c]


def test_reprocess_says_what_to_reprocess() -> None:
    result = cli("reprocess")
    assert result.exit_code == 2 and "--unmapped" in result.output


@pytest.mark.parametrize("command", ["push", "unmapped", "reprocess"])
def test_each_command_is_documented_with_an_example(command: str) -> None:
    result = cli(command, "--help")
    assert result.exit_code == 0 and "Example: trialbridge " + command in result.output
