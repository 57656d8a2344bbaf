"""``python -m adapter.bench.worker STORE_URL FHIR_URL``: one scale-out worker (scenario 6).
Prints ``ready``, waits for a line on stdin, then processes and pushes until the inbox and
the outbox stay empty, and prints one JSON line with its counts."""

from __future__ import annotations

import json
import sys
import time

from adapter.bench.env import Stopwatch, base_settings
from adapter.fhir_client import FhirClient
from adapter.mappings import load_mappings
from adapter.service.config import service_config
from adapter.service.stages import Stages
from adapter.service.summary import PushSummary
from adapter.store import open_store
from adapter.store.service import ServiceStore
from adapter.trial.registry import Registry
from adapter.trial.study import load_study

_IDLE_ROUNDS = 5


def main(argv: list[str]) -> None:
    settings = base_settings(argv[0])
    config = service_config({})
    with open_store(argv[0]) as store, FhirClient(argv[1], retries=0) as client:
        registry = Registry(store, load_study(settings.study_path))
        stages = Stages(
            ServiceStore(store),
            client,
            settings,
            load_mappings(settings.mappings_dir),
            registry,
            config,
        )
        print("ready", flush=True)
        sys.stdin.readline()
        clock, summary = Stopwatch(), PushSummary()
        idle, last = 0, 0.0
        while idle < _IDLE_ROUNDS:
            busy = stages.process_inbox(config.job("process").batch_size, summary)
            busy += stages.push_outbox(config.job("push").batch_size, summary)
            idle = 0 if busy else idle + 1
            if busy:
                last = clock.seconds()
            else:
                time.sleep(0.1)
    figures = {"seconds": last, "messages": summary.messages, "pushed": summary.pushed}
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
