"""The long fuzz campaign behind ``make fuzz``: N seeded mutants through every target.

Mutant ``i`` of a campaign is made by ``random.Random(f"{seed}:{i}")``, so any failure is
reproduced alone with ``--only i`` and the same seed. Every target sees every mutant. A
mutant that takes longer than ``slow_seconds`` per message it holds, in a target, counts as
a failure too (a hang, in a feed, is as bad as a crash): that is measured here, never
asserted in the unit tests.
Each failing input is written to the output folder with a line saying what broke.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from adapter.config import load_settings
from adapter.fuzz.mutate import mutant
from adapter.fuzz.seeds import Seed, all_seeds
from adapter.fuzz.targets import Failure, MllpTarget, TranslateTarget
from adapter.mappings import load_mappings

Target = Callable[[bytes], Failure | None]
TARGETS = ("translate", "mllp")


@dataclass(frozen=True, slots=True)
class CampaignConfig:
    mutants: int = 100_000
    seed: int = 1
    targets: tuple[str, ...] = TARGETS
    slow_seconds: float = 2.0
    jobs: int = 1
    only: int | None = None  # run mutant number ``only`` alone


@dataclass
class TargetTally:
    """What one target did: mutants tried, failures by class, its slowest mutant."""

    tried: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    slowest: float = 0.0


@dataclass(frozen=True, slots=True)
class Found:
    """One failing mutant: its number, the failure and its bytes."""

    index: int
    failure: Failure
    data: bytes


@dataclass
class CampaignResult:
    tallies: dict[str, TargetTally]
    found: list[Found]
    seeds: int
    seconds: float = 0.0

    @property
    def failures(self) -> int:
        return sum(sum(t.failures.values()) for t in self.tallies.values())

    def merge(self, other: CampaignResult) -> None:
        for name, tally in other.tallies.items():
            mine = self.tallies[name]
            mine.tried += tally.tried
            mine.failures.update(tally.failures)
            mine.slowest = max(mine.slowest, tally.slowest)
        self.found += other.found


def make_mutant(seeds: list[Seed], seed: int, index: int) -> bytes:
    """Mutant number ``index`` of campaign ``seed`` (the same bytes on every machine)."""
    rng = random.Random(f"{seed}:{index}")  # noqa: S311 - fuzzing, not secrets
    return mutant(rng.choice(seeds).data, rng)


def run(config: CampaignConfig, progress: Callable[[int], None] = lambda _: None) -> CampaignResult:
    """The whole campaign, in ``config.jobs`` processes."""
    started = time.perf_counter()
    indexes = [config.only] if config.only is not None else list(range(config.mutants))
    chunks = [indexes[i : i + 1000] for i in range(0, len(indexes), 1000)]
    total = CampaignResult({name: TargetTally() for name in config.targets}, [], 0)
    if config.jobs > 1 and len(chunks) > 1:
        with multiprocessing.get_context("spawn").Pool(config.jobs) as pool:
            parts: Iterable[CampaignResult] = pool.imap(_chunk, [(config, c) for c in chunks])
            _collect(total, parts, progress)
    else:
        _collect(total, (_chunk((config, c)) for c in chunks), progress)
    total.seconds = time.perf_counter() - started
    return total


def _collect(
    total: CampaignResult, parts: Iterable[CampaignResult], progress: Callable[[int], None]
) -> None:
    done = 0
    for part in parts:
        total.merge(part)
        total.seeds = part.seeds
        done += next(iter(part.tallies.values())).tried
        progress(done)


_STATE: dict[str, tuple[list[Seed], dict[str, Target]]] = {}


def _chunk(job: tuple[CampaignConfig, list[int]]) -> CampaignResult:
    config, indexes = job
    seeds, targets = _prepared(config.targets)
    result = CampaignResult({name: TargetTally() for name in targets}, [], len(seeds))
    for index in indexes:
        data = make_mutant(seeds, config.seed, index)
        for name, target in targets.items():
            _try(name, target, data, index, config.slow_seconds, result)
    return result


def _try(
    name: str, target: Target, data: bytes, index: int, slow: float, result: CampaignResult
) -> None:
    tally = result.tallies[name]
    started = time.perf_counter()
    failure = target(data)
    took = time.perf_counter() - started
    tally.tried += 1
    tally.slowest = max(tally.slowest, took)
    messages = max(data.count(b"MSH"), 1)  # a file of 100 messages may take 100 times longer
    if failure is None and took / messages > slow:
        failure = Failure(name, "slow", f"{took:.1f} s for {messages} message(s)", "?")
    if failure is not None:
        tally.failures[failure.key()] += 1
        result.found.append(Found(index, failure, data))


def _prepared(names: tuple[str, ...]) -> tuple[list[Seed], dict[str, Target]]:
    """Seeds and targets, made once per process (loading the feed and mappings is slow)."""
    key = ",".join(names)
    if key not in _STATE:
        seeds, gate = all_seeds()
        makers: dict[str, Callable[[], Target]] = {
            "translate": lambda: TranslateTarget(load_settings(), load_mappings(), gate),
            "mllp": MllpTarget,
        }
        _STATE[key] = (seeds, {name: makers[name]() for name in names})
    return _STATE[key]


def save_failures(result: CampaignResult, folder: Path, seed: int) -> Path:
    """Each failing input as ``<target>-<index>-<sha>.hl7``, and ``failures.txt`` listing them
    with what broke and how to run the mutant again."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for found in result.found:
        digest = hashlib.sha256(found.data).hexdigest()[:12]
        name = f"{found.failure.target}-{found.index}-{digest}.hl7"
        (folder / name).write_bytes(found.data)
        lines.append(
            f"{name}\t{found.failure.key()}\t{found.failure.detail}\t"
            f"(again: python -m adapter.fuzz --seed {seed} --only {found.index})"
        )
    listing = folder / "failures.txt"
    listing.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
    return listing
