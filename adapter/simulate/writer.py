"""Write a simulated feed to a folder (the only I/O of the simulator)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adapter.errors import TrialBridgeError
from adapter.simulate.model import Feed
from adapter.simulate.outputs import assessments_csv, enrolment_csv, manifest, visits_csv

SIDE_FILES = ("enrolment.csv", "visits.csv", "assessments.csv", "manifest.json")


def write_feed(feed: Feed, out: Path, *, force: bool = False) -> dict[str, Any]:
    """Write every file of ``feed`` and the side files into ``out``; return the manifest.

    ``out`` must be empty or absent; with ``force``, the ``*.hl7`` and side files of an earlier
    run are removed first (nothing else is touched).
    """
    _prepare(out, force)
    for item in feed.files:
        (out / item.name).write_bytes(item.text.encode("utf-8"))
    summary = manifest(feed)
    (out / "enrolment.csv").write_text(enrolment_csv(feed), encoding="utf-8", newline="")
    (out / "visits.csv").write_text(visits_csv(feed), encoding="utf-8", newline="")
    (out / "assessments.csv").write_text(assessments_csv(feed), encoding="utf-8", newline="")
    text = json.dumps(summary, indent=2, ensure_ascii=False, sort_keys=False) + "\n"
    (out / "manifest.json").write_text(text, encoding="utf-8", newline="")
    return summary


def _prepare(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise TrialBridgeError(f"{out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    ours = [p for p in out.iterdir() if p.suffix == ".hl7" or p.name in SIDE_FILES]
    if len(ours) != len(list(out.iterdir())):
        raise TrialBridgeError(
            f"{out} holds files the simulator did not write; choose an empty folder"
        )
    if ours and not force:
        raise TrialBridgeError(f"{out} already holds a simulated feed; use --force to replace it")
    for path in ours:
        path.unlink()
