"""``trialbridge mappings test DIR``: a folder of real messages, each with the outcome it must
have, run through the mappings; every difference is reported.

Next to each ``NAME.hl7`` sits ``NAME.expected.yaml``: per message in the file, which OBX
maps to which analyte (LOINC), with what value, unit and status, and which are held and why
(or why the message is refused). ``--update`` writes these files from today's output, for
review in a diff. This is the regression suite an interface engineer keeps for their LIS, as
engine vendors keep one per channel.

The core, :func:`outcomes` and :func:`compare`, is pure; :func:`run_suite` is the I/O shell.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from adapter.config import Settings
from adapter.errors import ConfigError
from adapter.mapping import MappedResult
from adapter.mappings import MappingSet
from adapter.translate import Translation, translate

SUFFIX = ".expected.yaml"
HEADER = (
    "# What {name} must become under the mappings (trialbridge mappings test).\n"
    "# Written by `trialbridge mappings test --update`: review the diff before committing.\n"
)
Outcome = dict[str, Any]  # one message: {"message": id, "results": {...}} or "refused"


@dataclass(frozen=True, slots=True)
class Difference:
    """One way today's outcome differs from the expected one."""

    file: str
    where: str  # message id and OBX (and field), e.g. "12345678 OBX[6].value"
    expected: Any
    got: Any

    def __str__(self) -> str:
        return f"{self.file}: {self.where}: expected {_show(self.expected)}, got {_show(self.got)}"


@dataclass
class SuiteResult:
    """What a run of the suite found."""

    files: int = 0
    messages: int = 0
    results: int = 0
    differences: list[Difference] = field(default_factory=list)
    written: list[str] = field(default_factory=list)  # with --update

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "messages": self.messages,
            "results": self.results,
            "differences": [asdict(d) for d in self.differences],
            "written": self.written,
        }


def outcomes(translations: Iterable[Translation]) -> list[Outcome]:
    """What each message became: its results mapped or held, or why it was refused."""
    found: list[Outcome] = []
    for item in translations:
        entry: Outcome = {"message": item.message_id or item.source}
        if item.vital is not None:
            entry["vital_status"] = "died" if item.vital.died else "alive"
        elif item.mapped is None:
            entry["refused"] = str(item.error) if item.error else "not a result message"
        else:
            results = {r.result.location: _mapped(r) for r in item.mapped.results}
            results.update({h.result.location: {"held": h.reason} for h in item.mapped.held})
            entry["results"] = dict(sorted(results.items(), key=lambda kv: _position(kv[0])))
        found.append(entry)
    return found


def _mapped(result: MappedResult) -> dict[str, str]:
    entry = {"analyte": result.analyte.key, "loinc": result.analyte.loinc}
    if result.quantity is not None:
        entry["value"] = f"{result.quantity.comparator or ''}{result.quantity.value}"
        entry["unit"] = result.quantity.unit
    elif result.text is not None:
        entry["value"] = result.text
    elif result.codes:
        entry["value"] = "~".join(
            "&".join(f"{c.code}^{c.system}" for c in codings) for codings in result.codes
        )
    entry["status"] = result.status.fhir_status
    return entry


def _position(location: str) -> int:
    digits = "".join(ch for ch in location if ch.isdigit())
    return int(digits) if digits else 0


def compare(file: str, expected: list[Outcome], got: list[Outcome]) -> list[Difference]:
    """Every difference between the expected outcomes of one file and today's."""
    differences = []
    if len(expected) != len(got):
        differences.append(Difference(file, "messages", len(expected), len(got)))
    for want, have in zip(expected, got, strict=False):
        label = str(have.get("message", "?"))
        differences += _compare_message(file, label, want, have)
    return differences


def _compare_message(file: str, label: str, want: Outcome, have: Outcome) -> Iterator[Difference]:
    for key in ("message", "refused", "vital_status"):
        if want.get(key) != have.get(key):
            yield Difference(file, f"{label} {key}", want.get(key), have.get(key))
    wanted, had = want.get("results") or {}, have.get("results") or {}
    for location in sorted(set(wanted) | set(had), key=_position):
        old, new = wanted.get(location), had.get(location)
        if old is None or new is None or ("held" in old) != ("held" in new):
            yield Difference(file, f"{label} {location}", _brief(old), _brief(new))
            continue
        for name in sorted(set(old) | set(new)):
            if str(old.get(name)) != str(new.get(name)) or (name in old) != (name in new):
                yield Difference(file, f"{label} {location}.{name}", old.get(name), new.get(name))


def _brief(result: dict[str, Any] | None) -> str | None:
    """A result in one phrase: ``held: REASON`` or ``sodium (2951-2) 145 mmol/L, final``."""
    if result is None:
        return None
    if "held" in result:
        return f"held: {result['held']}"
    value = " ".join(str(result[k]) for k in ("value", "unit") if result.get(k) is not None)
    return f"{result.get('analyte')} ({result.get('loinc')}) {value}, {result.get('status')}"


def _show(value: Any) -> str:
    if value is None:
        return "nothing"
    return repr(value) if isinstance(value, str) else str(value)


def expected_path(message_file: Path) -> Path:
    return message_file.with_name(message_file.stem + SUFFIX)


def run_suite(
    directory: Path, settings: Settings, mappings: MappingSet, *, update: bool = False
) -> SuiteResult:
    """Run every ``*.hl7`` under ``directory`` (name order) against its expected file; with
    ``update``, write the expected files instead (only those that differ)."""
    suite = SuiteResult()
    paths = sorted(directory.rglob("*.hl7"))
    if not paths:  # an empty suite passing would hide a wrong path
        raise ConfigError(f"no *.hl7 message under {directory}: nothing to test")
    for path in paths:
        suite.files += 1
        got = outcomes(translate(path.read_bytes(), path.name, settings, mappings))
        suite.messages += len(got)
        suite.results += sum(len(entry.get("results", {})) for entry in got)
        target = expected_path(path)
        shown = str(path.relative_to(directory))
        if update:
            if not target.exists() or _read(target) != got:
                _write(target, path.name, got)
                suite.written.append(str(target.relative_to(directory)))
            continue
        if not target.exists():
            suite.differences.append(
                Difference(shown, "expected file", f"{target.name} (write it with --update)", None)
            )
            continue
        suite.differences += compare(shown, _read(target), got)
    return suite


def _read(path: Path) -> list[Outcome]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(
            f"not valid YAML ({getattr(exc, 'problem', exc)}); fix it or write it again with "
            "--update",
            path=str(path),
            line=mark.line + 1 if mark is not None else None,
        ) from exc
    messages = doc.get("messages", []) if isinstance(doc, dict) else []
    return list(messages)


def _write(path: Path, name: str, got: list[Outcome]) -> None:
    body = yaml.safe_dump(
        {"messages": got}, sort_keys=False, allow_unicode=True, width=100, default_flow_style=None
    )
    path.write_text(HEADER.format(name=name) + body, encoding="utf-8")
