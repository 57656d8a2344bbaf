"""``python -m adapter.bench [--quick] [--only N ...] [--json FILE]``: run the scenarios,
print the table, write the JSON."""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from adapter.bench.env import Stopwatch
from adapter.bench.results import Row, machine, table, write_json
from adapter.bench.scenarios import (
    durable,
    export,
    feed_mllp,
    latency,
    mapping,
    memory,
    recovery,
    report,
    scale,
)
from adapter.bench.scenarios.common import FULL, QUICK, Context

Scenario = Callable[[Context], list[Row]]
SCENARIOS: dict[str, Scenario] = {
    "1": feed_mllp.run,
    "2": mapping.run_mapping,
    "3": mapping.run_push,
    "4": latency.run,
    "5": memory.run,
    "6": scale.run,
    "7": report.run,
    "8": export.run,
    "9": recovery.run,
    "10": durable.run,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adapter.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (under a minute)")
    parser.add_argument("--only", nargs="*", choices=sorted(SCENARIOS), help="scenario numbers")
    parser.add_argument("--json", type=Path, default=Path("var/bench-results.json"))
    args = parser.parse_args(argv)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    clock = Stopwatch()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="tb-bench-") as work:
        ctx = Context(QUICK if args.quick else FULL, Path(work))
        try:
            for number in args.only or sorted(SCENARIOS, key=int):
                print(f"scenario {number} ...", file=sys.stderr, flush=True)
                rows.extend(SCENARIOS[number](ctx))
                write_json(rows, args.json, quick=args.quick, elapsed=clock.seconds())
        finally:
            ctx.close()
    info = machine()
    print(
        f"TrialBridge benchmark{' (quick)' if args.quick else ''}: {info['cores']} cores, "
        f"Python {info['python']}, {info['date']}, {clock.seconds():.0f} s"
    )
    print(table(rows))
    print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
