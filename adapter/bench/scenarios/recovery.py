"""Scenario 9: recovery after a FHIR server outage, as a hospital would see it.

``trialbridge run``'s service (default schedule) takes a feed of enrolled messages over MLLP at
a steady rate; in the middle of it the FHIR server answers 503 to everything for a while (a
proxy in front of the local server, :class:`OutageProxy`). Figures: the seconds from the
server answering again to its first transaction pushed (target: within 5 s), and from then to
an empty inbox and outbox. Baseline: the same backlog (every message not yet pushed when the
server came back) pushed by the same service with the server up all along, from a standing
start.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests
from sqlalchemy import func, select

from adapter.bench.env import Env, Stopwatch, environment
from adapter.bench.feed import FeedSpec, messages
from adapter.bench.results import Row
from adapter.bench.scenarios.common import Context, fill_inbox, send
from adapter.fhir_client import FhirClient
from adapter.intake import Intake
from adapter.service.scheduler import Service, SourceSpec
from adapter.service.stages import Stages
from adapter.sources.config import MllpConfig
from adapter.sources.mllp import MllpSource
from adapter.store.schema import PENDING, RECEIVED, outbox
from adapter.store.schema import messages as inbox
from adapter.store.service import ServiceStore

_LIMIT_SECONDS = 600.0


def run(ctx: Context) -> list[Row]:
    count, rate, outage = ctx.sizes.recovery
    with environment(ctx.work / "recovery") as env, OutageProxy(ctx.fhir.base_url) as proxy:
        ctx.fhir.reset()
        first_push, drained, backlog = _with_outage(ctx, env, proxy, count, rate, outage)
        refused = proxy.refused
    with environment(ctx.work / "recovery-base") as env, OutageProxy(ctx.fhir.base_url) as proxy:
        ctx.fhir.reset()
        fill_inbox(env, list(messages(FeedSpec(backlog, enrolled_share=1.0, first=count))))
        with _service(env, proxy.url):
            clock = Stopwatch()
            _wait_empty(env)
            base = clock.seconds()
    ctx.fhir.reset()
    figure = f"{count:,} msgs at {rate:.0f}/s, 503 for {outage:.0f} s"
    notes = {"backlog": backlog, "outage_seconds": outage, "refused": refused}
    return [
        Row.make(
            "9 recovery",
            f"first push after the server is back, {figure}",
            first_push,
            5.0,
            "s",
            "<= 5 s",
            first_push <= 5.0,
            **notes,
        ),
        Row.make(
            "9 recovery",
            f"recovery to empty outbox, backlog {backlog:,}",
            drained,
            base,
            "s",
            "normal push rate",
            None,
            **notes,
        ),
    ]


def _with_outage(
    ctx: Context, env: Env, proxy: OutageProxy, count: int, rate: float, outage: float
) -> tuple[float, float, int]:
    """Send the feed; the server down in its middle; (seconds to the first push after it is
    back, seconds to empty, messages not yet pushed when it came back)."""
    feed_seconds = count / rate
    with _service(env, proxy.url) as port:
        sender = threading.Thread(
            target=send, args=(port, 1, count), kwargs={"rate": rate, "enrolled": 1.0}
        )
        sender.start()
        time.sleep(max(0.0, (feed_seconds - outage) / 2))
        proxy.down = True
        time.sleep(outage)
        backlog = _unpushed(env, count)
        proxy.back()
        clock = Stopwatch()
        proxy.first_after.wait(_LIMIT_SECONDS)
        first_push = clock.seconds()
        sender.join(_LIMIT_SECONDS)
        _wait_empty(env)
        return first_push, clock.seconds(), backlog


def _unpushed(env: Env, count: int) -> int:
    """Messages not yet pushed: still in the inbox, pending in the outbox, or not sent yet."""
    with env.store.engine.connect() as conn:
        received = conn.scalar(select(func.count()).select_from(inbox)) or 0
        waiting = conn.scalar(
            select(func.count()).select_from(inbox).where(inbox.c.status == RECEIVED)
        )
        pending = conn.scalar(
            select(func.count()).select_from(outbox).where(outbox.c.status == PENDING)
        )
    return int(waiting or 0) + int(pending or 0) + (count - int(received))


def _wait_empty(env: Env) -> None:
    deadline = time.monotonic() + _LIMIT_SECONDS
    while time.monotonic() < deadline:
        with env.store.engine.connect() as conn:
            left = conn.scalar(
                select(func.count()).select_from(outbox).where(outbox.c.status == PENDING)
            ) or conn.scalar(
                select(func.count()).select_from(inbox).where(inbox.c.status == RECEIVED)
            )
        if not left:
            return
        time.sleep(0.05)
    raise TimeoutError("the outbox did not empty")


@contextmanager
def _service(env: Env, fhir_url: str) -> Iterator[int]:
    """The service with an MLLP source, as ``trialbridge run`` runs it; its port."""
    stop = threading.Event()
    with FhirClient(fhir_url) as client:
        stages = Stages(
            ServiceStore(env.store), client, env.settings, env.mappings, env.registry, env.service
        )
        source = MllpSource(MllpConfig(enabled=True, port=0))
        service = Service(
            stages,
            Intake(env.store, env.registry),
            env.service,
            sources=[SourceSpec("mllp", source)],
            stop=stop,
        )
        runner = threading.Thread(target=service.run, daemon=True)
        runner.start()
        try:
            yield source.wait_ready(30)
        finally:
            stop.set()
            runner.join(60)


class OutageProxy:
    """An HTTP proxy to the FHIR server that answers 503 to everything while ``down``; it
    notes the first transaction forwarded after :meth:`back`."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.down = False
        self.refused = 0
        self.first_after = threading.Event()
        self._watching = False
        self._local = threading.local()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/fhir"

    def back(self) -> None:
        self._watching = True
        self.down = False

    def __enter__(self) -> OutageProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        session: requests.Session = self._local.session
        return session

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go in two writes: with Nagle's algorithm each answer waited
            # for the client's delayed ACK (~40 ms), and the push crawled at ~5 msg/s.
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                self._relay(None)

            def do_POST(self) -> None:
                self._relay(self.rfile.read(int(self.headers.get("Content-Length", 0))))

            def _relay(self, body: bytes | None) -> None:
                if proxy.down:
                    proxy.refused += 1
                    self._answer(503, b"", {})
                    return
                upstream = proxy.session().request(
                    self.command,
                    proxy.upstream + self.path.removeprefix("/fhir"),
                    data=body,
                    headers={k: v for k, v in self.headers.items() if k.lower() in _PASSED},
                    timeout=120,
                )
                if body is not None and proxy._watching and upstream.status_code < 300:
                    proxy.first_after.set()
                self._answer(upstream.status_code, upstream.content, {})

            def _answer(self, status: int, content: bytes, headers: dict[str, Any]) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(content)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


_PASSED = {"content-type", "accept", "prefer", "if-match", "if-none-exist"}
