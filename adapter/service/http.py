"""The service's HTTP endpoint (stdlib ``http.server`` in a thread).

- ``/healthz``: 200 while the process runs (its scheduler thread is alive).
- ``/readyz``: 200 when the state store answers and the FHIR server is reachable, 503 with
  the reason otherwise; the body says whether this instance is active or a standby.
- ``/metrics``: Prometheus text format (:mod:`adapter.service.metrics`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from adapter.service.metrics import REGISTRY


@dataclass(frozen=True, slots=True)
class Probe:
    """What the endpoint asks the service."""

    healthy: Callable[[], bool]
    ready: Callable[[], tuple[bool, dict[str, str]]]  # ok, and what each check found


class Endpoint:
    """``/healthz``, ``/readyz`` and ``/metrics`` on ``host:port`` (0: a free port)."""

    def __init__(self, host: str, port: int, probe: Probe) -> None:
        handler = _handler(probe)
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="trialbridge-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)


def _handler(probe: Probe) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                ok = probe.healthy()
                self._send(200 if ok else 503, "text/plain", b"ok\n" if ok else b"unhealthy\n")
            elif path == "/readyz":
                ready, checks = probe.ready()
                body = json.dumps({"ready": ready, **checks}).encode()
                self._send(200 if ready else 503, "application/json", body)
            elif path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(REGISTRY))
            else:
                self._send(404, "text/plain", b"not found\n")

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: scrapes every few seconds are not events."""

    return Handler
