"""The benchmark's smoke test: ``--quick`` runs a scenario and writes valid JSON. Nothing
timed is asserted here (benchmarks are not tests)."""

from __future__ import annotations

import json
from pathlib import Path

from adapter.bench.__main__ import main


def test_quick_mapping_scenario_writes_its_row_as_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert main(["--quick", "--only", "2", "--json", str(out)]) == 0
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["quick"] is True
    assert doc["machine"]["cores"] >= 1
    (row,) = doc["rows"]
    assert row["scenario"] == "2 mapping"
    assert row["value"] > 0 and row["baseline"] > 0
    assert {"ratio", "target", "met", "unit", "figure"} <= row.keys()


def test_the_durable_scenario_commits_every_message_it_acknowledges(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert main(["--quick", "--only", "10", "--json", str(out)]) == 0
    rows = json.loads(out.read_text(encoding="utf-8"))["rows"]
    assert [r["figure"].split(", ")[-1] for r in rows] == ["1 conn.", "4 conn."]
    for row in rows:
        assert row["notes"]["acked"] == row["notes"]["committed"] == 300
