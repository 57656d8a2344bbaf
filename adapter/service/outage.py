"""Knowing when the FHIR server is down, and noticing at once when it answers again.

A push that fails with a server-level error (no connection, a 5xx, 429) is scheduled again
with exponential backoff (:class:`adapter.service.plan.Backoff`), growing towards
``backoff_max_seconds`` (300 s). That is right for one transaction the server chokes on, but
after an outage of the whole server the backlog waited out the longest of those delays: a
30 s outage was followed by ~96 s of the server idle before the backlog drained (issue 16).

So a failed push is followed by one cheap probe, ``GET metadata`` (the capability statement,
tried once). If the server does not answer that either, it is *down*: the scheduled push
stops claiming rows and only probes, every ``probe_seconds``. When a probe is answered, the
rows backed off meanwhile are due again at once, and the push goes on at its normal pace.
If the server answers the probe but refused the push, the fault is the transaction's own:
only that row backs off, as before.

The state here is per worker (each process notices on its own); what it decides is written
to the outbox (:meth:`adapter.store.service.ServiceStore.bring_forward`), so every worker
sees the rows become due.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from adapter.errors import FhirError
from adapter.fhir_client import FhirClient
from adapter.logs import get_logger

log = get_logger(__name__)


@dataclass
class Outage:
    """Whether the server is down as this worker last saw it, and when to probe next."""

    probe_seconds: float = 2.0
    clock: Callable[[], float] = time.monotonic
    down_since: float | None = None
    next_probe: float = 0.0

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def push_failed(self, client: FhirClient) -> None:
        """After a push failed with a server-level error: is the server itself down?"""
        if self.down or _answers(client):
            return
        self.down_since = self.clock()
        self.next_probe = self.down_since + self.probe_seconds
        log.warning("fhir.down", probe_seconds=self.probe_seconds)

    def recovered(self, client: FhirClient) -> bool:
        """While down, probe when due; True once the server answers again (the caller
        makes the waiting rows due), False while it is still down or not yet probed."""
        if self.down_since is None:
            return False
        now = self.clock()
        if now < self.next_probe:
            return False
        if not _answers(client):
            self.next_probe = now + self.probe_seconds
            return False
        log.info("fhir.up", down_seconds=round(now - self.down_since, 1))
        self.down_since = None
        return True


def _answers(client: FhirClient) -> bool:
    """Whether the server answers at all: a 4xx other than 429 is an answer (e.g. metadata
    behind authentication); no connection, a 5xx or 429 is not."""
    try:
        client.ping()
    except FhirError as exc:
        return exc.status is not None and exc.status < 500 and exc.status != 429
    return True
