"""``trialbridge mappings diff``: what a mapping change would change, result by result.

The same messages go through the old and the new mappings; each result's outcome (mapped to
an analyte with a value, or held with a reason) is compared. The core,
:func:`diff_translations`, is pure; :func:`old_mappings` is the I/O shell that reads the old
files from a directory or from a git revision (``git show REV:mappings/analytes.yaml``).
"""

from __future__ import annotations

import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapter.errors import ConfigError
from adapter.mapping import MappedResult
from adapter.mappings import MappingSet, load_mappings
from adapter.translate import Translation

KINDS = (
    "newly mapped",
    "no longer mapped",
    "different analyte",
    "different value",
    "different held reason",
    "different refusal",
)
_FILES = ("analytes.yaml", "units.yaml")


@dataclass(frozen=True, slots=True)
class Change:
    """One result (or message) whose outcome differs between the old and new mappings."""

    source: str
    location: str  # OBX[n], or MSH for a message-level refusal
    kind: str  # one of KINDS
    old: str
    new: str

    def __str__(self) -> str:
        return f"{self.source} {self.location}: {self.kind}: {self.old} -> {self.new}"


@dataclass
class MappingDiff:
    """Every change, and how many results were compared."""

    results: int = 0
    changes: list[Change] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counted = Counter(change.kind for change in self.changes)
        return {kind: counted[kind] for kind in KINDS if counted[kind]}

    def as_dict(self) -> dict[str, Any]:
        return {
            "results": self.results,
            "unchanged": self.results - sum(1 for c in self.changes if c.location != "MSH"),
            "counts": self.counts(),
            "changes": [vars_of(c) for c in self.changes],
        }


def vars_of(change: Change) -> dict[str, str]:
    return {
        "source": change.source,
        "location": change.location,
        "kind": change.kind,
        "old": change.old,
        "new": change.new,
    }


def diff_translations(old: Iterable[Translation], new: Iterable[Translation]) -> MappingDiff:
    """Compare the translations of the same messages under two mapping sets, in order."""
    diff = MappingDiff()
    for before, after in zip(old, new, strict=True):
        before_out, after_out = _outcomes(before), _outcomes(after)
        if before.error is not None or after.error is not None:
            old_text, new_text = _refusal(before), _refusal(after)
            if old_text != new_text:
                diff.changes.append(
                    Change(before.source, "MSH", "different refusal", old_text, new_text)
                )
        for location in sorted(set(before_out) | set(after_out), key=_position):
            diff.results += 1
            change = _compare(
                before.source, location, before_out.get(location), after_out.get(location)
            )
            if change is not None:
                diff.changes.append(change)
    return diff


def _refusal(item: Translation) -> str:
    return f"refused: {item.error.reason}" if item.error is not None else "accepted"


def _position(location: str) -> int:
    digits = "".join(ch for ch in location if ch.isdigit())
    return int(digits) if digits else 0


@dataclass(frozen=True, slots=True)
class _Outcome:
    analyte: str | None  # "key (LOINC)" when mapped
    value: str  # the value written, or the held reason

    def __str__(self) -> str:
        return f"{self.analyte} {self.value}" if self.analyte else f"held: {self.value}"


def _outcomes(item: Translation) -> dict[str, _Outcome]:
    if item.mapped is None:
        return {}
    outcomes = {r.result.location: _mapped(r) for r in item.mapped.results}
    outcomes.update({h.result.location: _Outcome(None, h.reason) for h in item.mapped.held})
    return outcomes


def _mapped(result: MappedResult) -> _Outcome:
    analyte = f"{result.analyte.key} ({result.analyte.loinc})"
    quantity = result.quantity
    if quantity is not None:
        value = f"{quantity.comparator or ''}{quantity.value} {quantity.unit}"
    else:
        value = f"({result.status.fhir_status}, no value)"
    return _Outcome(analyte, value)


def _compare(
    source: str, location: str, old: _Outcome | None, new: _Outcome | None
) -> Change | None:
    if old is None or new is None:  # the message was refused on one side only
        return None
    kind = None
    if old.analyte is None and new.analyte is not None:
        kind = "newly mapped"
    elif old.analyte is not None and new.analyte is None:
        kind = "no longer mapped"
    elif old.analyte != new.analyte:
        kind = "different analyte"
    elif old.value != new.value:
        kind = "different value" if old.analyte else "different held reason"
    return Change(source, location, kind, str(old), str(new)) if kind else None


def old_mappings(against: str, current: Path) -> MappingSet:
    """The mappings ``against`` names: a mappings directory, or a git revision of ``current``."""
    path = Path(against)
    if path.is_dir():
        return load_mappings(path)
    top = _git(current, "rev-parse", "--show-toplevel").strip()
    relative = current.resolve().relative_to(Path(top).resolve()).as_posix()
    with tempfile.TemporaryDirectory(prefix="trialbridge-mappings-") as temp:
        old_dir = Path(temp) / current.name
        old_dir.mkdir()
        for name in _FILES:
            text = _git(current, "show", f"{against}:{relative}/{name}")
            (old_dir / name).write_text(text, encoding="utf-8")
        mappings = load_mappings(old_dir)
    return mappings


def _git(cwd: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(cwd), *args], capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise ConfigError(f"cannot run git: {exc.strerror}") from exc
    if done.returncode != 0:
        raise ConfigError(
            f"{' '.join(args)!r} failed in {cwd}: {done.stderr.strip()}"
            " (give a git revision or a mappings directory)"
        )
    return done.stdout
