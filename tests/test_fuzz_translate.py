"""The fuzz suite: hypothesis drives the mutators of :mod:`adapter.fuzz` over the corpus
(``tests/data/corpus``) and the simulated feed, through translate and the MLLP per-message
path. Derandomized (the same examples on every run and machine) and sized for ``make test``;
``make fuzz`` runs the same targets over 100,000 mutants.

The property: translate returns each message mapped, held or refused with a TrialBridgeError
(nothing else raised; no U+FFFD or control character in anything it built; a refusal names
where); every MLLP frame gets an ACK. Hangs are prevented by bounding the work per input in
the code (one pass per field, numbers of at most 15 digits, escape counts of two digits),
not by timing here.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter.config import load_settings
from adapter.fuzz import campaign, mutate
from adapter.fuzz.__main__ import main as fuzz_main
from adapter.fuzz.campaign import make_mutant
from adapter.fuzz.mutate import MUTATORS, Mutator, mutant
from adapter.fuzz.seeds import CORPUS, Seed, all_seeds, corpus_seeds
from adapter.fuzz.targets import Failure, MllpTarget, TranslateTarget
from adapter.mappings import load_mappings
from tests.messages import ALT, obx, oru

SEEDS, GATE = all_seeds(files=30)
TRANSLATE = TranslateTarget(load_settings(), load_mappings(), GATE)
MLLP = MllpTarget()
FUZZ = settings(
    max_examples=400,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
seeds = st.sampled_from(SEEDS)
mutations = st.lists(st.sampled_from(MUTATORS), min_size=1, max_size=4)


@FUZZ
@given(seed=seeds, chosen=mutations, rng=st.randoms(use_true_random=False))
def test_translate_maps_holds_or_refuses_every_mutant(
    seed: Seed, chosen: list[Mutator], rng: random.Random
) -> None:
    data = mutant(seed.data, rng, chosen)
    assert TRANSLATE(data) is None


@FUZZ
@given(seed=seeds, chosen=mutations, rng=st.randoms(use_true_random=False))
def test_every_mllp_frame_of_a_mutant_gets_an_ack(
    seed: Seed, chosen: list[Mutator], rng: random.Random
) -> None:
    data = mutant(seed.data, rng, chosen)
    assert MLLP(data) is None


@pytest.mark.parametrize("mutator", MUTATORS, ids=lambda m: m.__name__)
def test_each_mutator_on_each_corpus_message_keeps_the_property(mutator: Mutator) -> None:
    """Every mutation kind reaches every corpus file at least once (hypothesis may favour
    some): five draws each, from a fixed seed."""
    rng = random.Random(mutator.__name__)
    for seed in corpus_seeds():
        for _ in range(5):
            data = mutator(seed.data, rng)
            assert TRANSLATE(data) is None, seed.name
            assert MLLP(data) is None, seed.name


def test_the_corpus_copy_is_complete_and_attributed() -> None:
    """The tests read tests/data/corpus (a clean clone has no ../shared): every message is
    there, with SOURCES.md naming each one's repository and licence."""
    names = {p.name for p in CORPUS.glob("*.hl7")}
    sources = (CORPUS / "SOURCES.md").read_text(encoding="utf-8")
    assert len(names) == 12
    assert all(f"| {name} |" in sources for name in names)


def test_a_mutant_is_the_same_bytes_for_the_same_campaign_seed_and_number() -> None:
    """``python -m adapter.fuzz --seed S --only N`` must reproduce a failure exactly."""
    assert make_mutant(SEEDS, 7, 123) == make_mutant(SEEDS, 7, 123)
    assert make_mutant(SEEDS, 7, 123) != make_mutant(SEEDS, 8, 123)


def test_the_property_fails_when_translate_raises_something_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The target would see a crash (here: a ValueError from the time conversion, as before
    the fix) and names where it was raised."""

    def broken(value: str, default_offset: str) -> str:
        raise ValueError("hour must be in 0..23")

    monkeypatch.setattr("adapter.mapping.to_fhir_datetime", broken)
    failure = TRANSLATE(oru(obx(1, ALT, "42", "U/L")).encode())
    assert failure is not None and failure.kind == "ValueError"
    assert failure.where.startswith("mapping/__init__.py:")


def test_the_campaign_runs_as_a_process_and_reports_mutants_and_failures(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "adapter.fuzz", "--mutants", "40", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "translate         40         0" in done.stdout
    assert "mllp              40         0" in done.stdout
    assert "no failures" in done.stdout
    assert (tmp_path / "failures.txt").read_text() == ""


def test_the_bad_time_mutator_puts_a_bad_time_where_a_time_was() -> None:
    data = b"MSH|^~\\&|A|B|C|D|20240115093000+0800||ORU^R01|1|P|2.5.1"
    out = mutate.bad_time(data, random.Random(3))
    assert out != data and out.startswith(b"MSH|^~\\&|A|B|C|D|")


def test_a_failing_mutant_is_saved_with_how_to_run_it_again_and_the_exit_status_is_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seeds = SEEDS[:3]

    def crashes_on_msh(data: bytes) -> Failure | None:
        return Failure("translate", "ValueError", "boom", "x.py:1") if data[:3] == b"MSH" else None

    monkeypatch.setattr(campaign, "_prepared", lambda names: (seeds, {"translate": crashes_on_msh}))
    status = fuzz_main(["--mutants", "20", "--targets", "translate", "--out", str(tmp_path)])
    assert status == 1
    assert "translate: ValueError at x.py:1" in capsys.readouterr().out
    lines = (tmp_path / "failures.txt").read_text().splitlines()
    assert lines and all("python -m adapter.fuzz --seed 1 --only " in line for line in lines)
    name = lines[0].split("\t")[0]
    index = int(name.split("-")[1])
    assert (tmp_path / name).read_bytes() == make_mutant(seeds, 1, index)
