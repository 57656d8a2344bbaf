"""Mapping changes reach the running service: ``mappings/`` is watched and swapped in between
batches, never half-way through one, and never when it is broken.

Before each batch of the ``process`` job, :class:`MappingsWatcher` reads the mappings
directory's ``*.yaml`` files once (a snapshot) and compares their content hash with the last
one it looked at. A change is checked with the same checks as ``trialbridge mappings check``
(:func:`adapter.tools.lint.lint_mappings`) and loaded from the same snapshot, so what is
checked is what runs. Only then does the next batch use it; results mapped before and after
name different mappings (version plus content hash) on their Provenance.

A snapshot with an error never replaces working mappings: the old ones go on, the error (file
and line) is recorded as the ``mappings`` job's last error (``trialbridge status`` lists it
under "attention" until a good version loads), ``/readyz`` shows it, and the metric
``trialbridge_mappings_reload_failures_total`` counts it.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from adapter.errors import ConfigError
from adapter.logs import get_logger
from adapter.mappings import MappingSet, load_mappings, read_snapshot, snapshot_digest
from adapter.service.metrics import MAPPINGS_RELOAD_FAILURES
from adapter.service.stages import Stages
from adapter.service.summary import PushSummary
from adapter.tools.lint import Finding, lint_mappings
from adapter.tools.ucum import UcumConverter

log = get_logger(__name__)
JOB = "mappings"  # the name its outcome is recorded under (job_runs; trialbridge status)
_SHOWN_ERRORS = 3


@dataclass(frozen=True, slots=True)
class Reload:
    """What one look at the directory found: new mappings, or why they were kept out."""

    mappings: MappingSet | None
    error: str | None


@dataclass
class MappingsWatcher:
    """Watches one mappings directory for the service (one per process)."""

    directory: Path
    current: MappingSet
    error: str | None = None  # why the last change was kept out (None: the current is the last)
    _seen: str = ""  # content hash of the snapshot looked at last
    _converter: UcumConverter | None = None  # built on the first change (about half a second)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._seen = self._seen or self.current.fingerprint.rpartition(":")[2]

    def check(self) -> Reload | None:
        """Look at the directory: None when nothing changed since the last look."""
        try:
            files = read_snapshot(self.directory)
        except OSError as exc:
            return self._failed(f"{self.directory}: cannot read the mappings: {exc.strerror}")
        digest = snapshot_digest(files)
        if digest == self._seen:
            return None
        self._seen = digest
        errors = [f for f in self._lint(files) if f.level == "error"]
        if errors:
            return self._failed(_summary(errors))
        try:
            mappings = self._load(files)
        except ConfigError as exc:  # what the loader refuses and the linter let through
            return self._failed(str(exc))
        with self._lock:
            self.current, self.error = mappings, None
        log.info("mappings.loaded", version=mappings.provenance_version)
        return Reload(mappings, None)

    def describe(self) -> dict[str, Any]:
        """What ``/readyz`` shows: the mappings in use, and the last change kept out."""
        with self._lock:
            return {"active": self.current.provenance_version, "error": self.error}

    def _failed(self, error: str) -> Reload:
        with self._lock:
            self.error = error
        MAPPINGS_RELOAD_FAILURES.inc()
        # The finding names a file and line of the mappings: no patient data in it.
        log.warning("mappings.kept-out", error=error, active=self.current.provenance_version)
        return Reload(None, error)

    def _lint(self, files: dict[str, bytes]) -> list[Finding]:
        if self._converter is None:
            self._converter = UcumConverter()
        names = ("analytes.yaml", "units.yaml")
        missing = [name for name in names if name not in files]
        if missing:
            where = str(self.directory / missing[0])
            return [Finding(where, 0, "error", "the file is missing")]
        analytes, units = (files[name].decode("utf-8", errors="replace") for name in names)
        return lint_mappings(
            analytes,
            units,
            analytes_file=str(self.directory / "analytes.yaml"),
            units_file=str(self.directory / "units.yaml"),
            converter=self._converter,
        )

    def _load(self, files: dict[str, bytes]) -> MappingSet:
        """Load the snapshot itself (not the directory again: it may have changed since)."""
        with tempfile.TemporaryDirectory(prefix="trialbridge-mappings-") as temp:
            for name, data in files.items():
                (Path(temp) / name).write_bytes(data)
            try:
                loaded = load_mappings(Path(temp))
            except ConfigError as exc:
                raise ConfigError(str(exc).replace(temp, str(self.directory))) from exc
        return replace(loaded, directory=self.directory)


def _summary(errors: list[Finding]) -> str:
    shown = "; ".join(str(f) for f in errors[:_SHOWN_ERRORS])
    more = len(errors) - _SHOWN_ERRORS
    return shown + (f" (and {more} more: trialbridge mappings check)" if more > 0 else "")


@dataclass
class ReloadingStages(Stages):
    """The service's stages, with the mappings looked at before each batch is processed."""

    watcher: MappingsWatcher | None = None

    def process_inbox(self, batch_size: int, summary: PushSummary | None = None) -> int:
        self.reload_mappings()
        return super().process_inbox(batch_size, summary)

    def reload_mappings(self) -> Reload | None:
        """Between batches: swap in changed mappings that pass, record what happened."""
        if self.watcher is None:
            return None
        found = self.watcher.check()
        if found is None:
            return None
        if found.mappings is not None:
            self.mappings = found.mappings  # the next batch, and every later one, uses it
        try:
            self.store.record_run(JOB, self.holder, 1 if found.mappings else 0, found.error)
        except Exception as exc:  # the status row is a report; the swap stands without it
            log.warning("mappings.record-failed", error=type(exc).__name__)
        return found


def with_mappings(
    ready: Callable[[], tuple[bool, dict[str, Any]]], watcher: MappingsWatcher
) -> Callable[[], tuple[bool, dict[str, Any]]]:
    """``/readyz`` with the mappings in use and the last change kept out, if any. A broken
    change does not make the service unready: it runs on with the mappings that work."""

    def probe() -> tuple[bool, dict[str, Any]]:
        ok, checks = ready()
        return ok, {**checks, "mappings": watcher.describe()}

    return probe
