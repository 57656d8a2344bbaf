"""``python -m adapter.bench.backlog FHIR_URL FOLDER COUNT``: scenario 5's child process.
Runs ``push_messages`` over COUNT hospital-feed messages, sampling its own RSS, and prints
one JSON line: floor_mb (before), peak_mb, seconds, pushed."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

from adapter.bench.env import Stopwatch, environment, rss_mb
from adapter.bench.feed import FeedSpec, messages
from adapter.fhir_client import FhirClient
from adapter.pipeline import push_messages
from adapter.store import incoming


class Sampler(threading.Thread):
    """The highest RSS seen, sampled every 50 ms until stopped."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = rss_mb()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.05):
            self.peak = max(self.peak, rss_mb())


def main(argv: list[str]) -> None:
    base, folder, count = argv[0], Path(argv[1]), int(argv[2])
    with environment(folder / f"backlog-{count}") as env, FhirClient(base, retries=0) as client:
        floor = rss_mb()
        sampler = Sampler()
        sampler.start()
        clock = Stopwatch()
        feed = (m for raw in messages(FeedSpec(count)) for m in incoming(raw, "bench"))
        summary = push_messages(
            feed, client, env.settings, env.mappings, env.store, registry=env.registry
        )
        seconds = clock.seconds()
        sampler.stop.set()
        sampler.join()
    figures = {"floor_mb": floor, "peak_mb": max(sampler.peak, rss_mb()), "seconds": seconds}
    print(json.dumps({**figures, "pushed": summary.pushed}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
