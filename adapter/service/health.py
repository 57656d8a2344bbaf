"""Each source's health as the running service sees it: up or down (and why), its last
message, what it handed in. Pure bookkeeping, no I/O.

The service keeps one :class:`SourceHealth` per configured source; the source's events
(:mod:`adapter.service.wiring`) and the scheduler update it. Every lease tick the scheduler
publishes :meth:`SourceHealth.record` to the store (source state ``health``), because
``trialbridge status`` runs in another process and must see the same truth.

A source may offer ``health() -> Mapping[str, object]`` of its own (the file drop's folders,
for instance): ``ok: False`` with a ``problem`` marks it down; its other keys are shown as
they are (counts only, never a file name or anything from a message).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

HEALTH = "health"  # source_state.source of the published records, keyed by source name
LISTENER, POLLED = "listener", "polled"


@dataclass
class SourceHealth:
    """One source's state. Thread-safe: listeners, jobs and the HTTP probe share it."""

    name: str
    kind: str = POLLED  # LISTENER (MLLP) or POLLED (file drop, LIS query)
    key: str = ""  # its configuration key, e.g. sources.mllp
    address: str = ""  # host:port of a listener
    up: bool | None = None  # None until it started (listener) or first ran (polled)
    problem: str | None = None  # why it is down
    changed_at: float | None = None
    last_message_at: float | None = None
    received: int = 0  # messages handed in by this process (before the enrolment filter)
    kept: int = 0  # ... of which kept (enrolled subjects)
    detail: dict[str, Any] = field(default_factory=dict)  # the source's own health()
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def mark_up(self, now: float | None = None) -> None:
        with self._lock:
            if self.up is not True:
                self.changed_at = now or time.time()
            self.up, self.problem = True, None

    def mark_down(self, problem: str, now: float | None = None) -> None:
        with self._lock:
            if self.up is not False:
                self.changed_at = now or time.time()
            self.up, self.problem = False, problem

    def messages(self, received: int, kept: int, now: float | None = None) -> None:
        with self._lock:
            self.received += received
            self.kept += kept
            self.last_message_at = now or time.time()

    def record(self, worker: str, now: float | None = None) -> dict[str, Any]:
        """What ``status`` shows of this source (JSON-able)."""
        with self._lock:
            return {
                "kind": self.kind,
                "key": self.key,
                "address": self.address,
                "up": self.up,
                "problem": self.problem,
                "changed_at": self.changed_at,
                "last_message_at": self.last_message_at,
                "received": self.received,
                "kept": self.kept,
                "detail": dict(self.detail),
                "worker": worker,
                "checked_at": now or time.time(),
            }


def own_health(source: object) -> tuple[bool, str | None, dict[str, Any]]:
    """A source's own view of its health (``health()``), when it has one: ok, the problem,
    the other figures. A ``health()`` that fails is itself a problem."""
    probe = getattr(source, "health", None)
    if not callable(probe):
        return True, None, {}
    try:
        found = probe()
    except Exception as exc:  # a broken probe must not take the service down
        return False, f"health check failed ({type(exc).__name__})", {}
    if not isinstance(found, Mapping):
        return True, None, {}
    detail = {str(k): v for k, v in found.items() if k not in ("ok", "problem")}
    ok = found.get("ok", True) is not False
    problem = None if ok else str(found.get("problem") or "unhealthy")
    return ok, problem, detail
