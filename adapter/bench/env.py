"""What the scenarios run against: a fresh store with the bench subjects enrolled (SQLite in
a temporary folder, or a schema of its own on the local PostgreSQL), the settings and
mappings as shipped, and the local FHIR server."""

from __future__ import annotations

import os
import resource
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from adapter.bench.feed import AUTHORITY, DAY0, subject_id, subject_mrn
from adapter.config import Settings, load_settings
from adapter.mappings import MappingSet, load_mappings
from adapter.service.config import ServiceConfig, service_config
from adapter.store import Store, open_store
from adapter.store.scratch import scratch_schema
from adapter.trial.enrolment import HospitalId
from adapter.trial.registry import NewSubject, Registry
from adapter.trial.study import load_study

POSTGRES_URL = os.environ.get(
    "TRIALBRIDGE_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@dataclass(frozen=True, slots=True)
class Env:
    """One scenario's world: settings, mappings, the store and its registry."""

    settings: Settings
    mappings: MappingSet
    store: Store
    registry: Registry
    service: ServiceConfig


def base_settings(store_url: str) -> Settings:
    return replace(load_settings(environ={}), store_url=store_url)


@contextmanager
def environment(folder: Path, subjects: int = 20, *, postgres: bool = False) -> Iterator[Env]:
    """A fresh store (SQLite under ``folder``, or a PostgreSQL schema dropped afterwards)."""
    with _store_url(folder, postgres) as url:
        settings = base_settings(url)
        with open_store(url) as store:
            registry = Registry(store, load_study(settings.study_path))
            registry.enrol_many(_subjects(subjects))
            mappings = load_mappings(settings.mappings_dir)
            yield Env(settings, mappings, store, registry, service_config({}))


@contextmanager
def _store_url(folder: Path, postgres: bool) -> Iterator[str]:
    if not postgres:
        folder.mkdir(parents=True, exist_ok=True)
        yield f"sqlite:///{folder / f'bench-{uuid.uuid4().hex[:8]}.sqlite'}"
        return
    with scratch_schema(POSTGRES_URL, "tb_bench") as url:
        yield url


def _subjects(count: int) -> list[NewSubject]:
    return [
        NewSubject(
            subject_id(n),
            (HospitalId(subject_mrn(n), AUTHORITY),),
            "low-dose" if n % 2 else "medium-high-dose",
            DAY0,
            (DAY0,),
            "F" if n % 2 else "M",
            1960 + n % 30,
        )
        for n in range(count)
    ]


class Stopwatch:
    """Wall-clock seconds since it was made (``time.perf_counter``)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.started


def rss_mb() -> float:
    """This process's resident set size now, in MB (from /proc; peak if that is absent)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
