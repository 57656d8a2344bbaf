"""``python -m adapter.fuzz``: the long fuzz campaign (``make fuzz``).

Example: python -m adapter.fuzz --mutants 100000 --out var/fuzz
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from adapter.fuzz.campaign import TARGETS, CampaignConfig, CampaignResult, run, save_failures


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config = CampaignConfig(
        mutants=args.mutants,
        seed=args.seed,
        targets=tuple(args.targets.split(",")),
        slow_seconds=args.slow,
        jobs=args.jobs,
        only=args.only,
    )
    unknown = set(config.targets) - set(TARGETS)
    if unknown:
        print(
            f"unknown target(s) {', '.join(sorted(unknown))}: use {', '.join(TARGETS)}",
            file=sys.stderr,
        )
        return 2
    step = max(config.mutants // 10, 1000)

    def progress(done: int) -> None:
        if done % step == 0 and not args.json:
            print(f"  {done:,} mutants tried", file=sys.stderr, flush=True)

    result = run(config, progress)
    listing = save_failures(result, Path(args.out), config.seed)
    print(
        json.dumps(_summary(result, config, listing), indent=2)
        if args.json
        else _table(result, config, listing)
    )
    return 1 if result.failures else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m adapter.fuzz",
        description="Seeded mutants of the corpus and the simulated feed through translate and "
        "the MLLP per-message path; exit status 1 when any mutant breaks the property.",
        epilog="Example: python -m adapter.fuzz --mutants 100000 --out var/fuzz",
    )
    parser.add_argument(
        "--mutants", type=int, default=100_000, help="mutants to try (default 100000)"
    )
    parser.add_argument("--seed", type=int, default=1, help="campaign seed (default 1)")
    parser.add_argument(
        "--targets", default=",".join(TARGETS), help="comma-separated (default all)"
    )
    parser.add_argument(
        "--slow", type=float, default=2.0, help="seconds a mutant may take (default 2)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="processes (default 1)")
    parser.add_argument("--only", type=int, default=None, help="run mutant number ONLY alone")
    parser.add_argument(
        "--out", default="var/fuzz", help="folder for failing inputs (default var/fuzz)"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser


def _summary(result: CampaignResult, config: CampaignConfig, listing: Path) -> dict[str, object]:
    return {
        "seed": config.seed,
        "seeds": result.seeds,
        "seconds": round(result.seconds, 1),
        "failures": result.failures,
        "failing_inputs": str(listing.parent),
        "targets": {
            name: {
                "mutants": tally.tried,
                "failures": sum(tally.failures.values()),
                "classes": dict(tally.failures),
                "slowest_seconds": round(tally.slowest, 3),
            }
            for name, tally in result.tallies.items()
        },
    }


def _table(result: CampaignResult, config: CampaignConfig, listing: Path) -> str:
    lines = [f"{'target':<10} {'mutants':>9} {'failures':>9} {'slowest':>9}"]
    for name, tally in result.tallies.items():
        failures = sum(tally.failures.values())
        lines.append(f"{name:<10} {tally.tried:>9,} {failures:>9,} {tally.slowest:>8.2f}s")
        lines += [f"    {count:>6}  {key}" for key, count in tally.failures.most_common()]
    lines.append(
        f"{result.seconds:.0f} s, {result.seeds} seed files, campaign seed {config.seed}; "
        + (f"failing inputs listed in {listing}" if result.failures else "no failures")
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
