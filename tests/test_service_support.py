"""Support for the service tests (no tests here): a simulated feed, a FHIR proxy that fails
on purpose (real sockets), and waiting on conditions with deadlines."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
import simplejson
from click.testing import CliRunner

from adapter.cli import main
from adapter.store import Incoming, incoming
from adapter.trial.registry import Registry
from adapter.trial.study import load_study


def wait_for(condition: Callable[[], Any], timeout: float = 60.0, what: str = "") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what or condition}")


def simulated_feed(folder: Path) -> Path:
    result = CliRunner().invoke(main, ["simulate-lis", "--out", str(folder)])
    assert result.exit_code == 0, result.output
    return folder


def feed_messages(folder: Path) -> list[Incoming]:
    return [
        m for path in sorted(folder.glob("*.hl7")) for m in incoming(path.read_bytes(), path.name)
    ]


def enrol_feed(store_url: str, folder: Path, fhir_url: str) -> None:
    args = ["subjects", "import", str(folder / "enrolment.csv"), "--fhir-url", fhir_url]
    result = CliRunner().invoke(main, args, env={"TRIALBRIDGE_STORE_URL": store_url})
    assert result.exit_code == 0, result.output


def registry_of(store: Any) -> Registry:
    return Registry(store, load_study())


def observations(fhir_url: str) -> list[dict[str, Any]]:
    """Every Observation of lab results on the server (scores left out), all pages."""
    found: list[dict[str, Any]] = []
    url: str | None = f"{fhir_url}/Observation?_count=1000"
    while url:
        page = requests.get(url, timeout=30).json()
        found += [e["resource"] for e in page.get("entry", [])]
        url = next(
            (link["url"] for link in page.get("link", []) if link["relation"] == "next"), None
        )
    return [o for o in found if o["identifier"][0]["system"] == "urn:trialbridge:lis-result"]


def snapshot(fhir_url: str) -> dict[str, tuple[str, str]]:
    """Lab Observations by identifier: status and value; fails on a duplicated identifier."""
    shot: dict[str, tuple[str, str]] = {}
    for o in observations(fhir_url):
        key = o["identifier"][0]["value"]
        assert key not in shot, f"duplicated Observation {key}"
        shot[key] = (o["status"], str(o.get("valueQuantity", {}).get("value")))
    return shot


class FlakyProxy:
    """An HTTP proxy to the FHIR server that first answers with the statuses in ``failures``
    (one per request, with ``Retry-After``), then forwards. It logs the Provenance id of each
    transaction it forwarded, in order."""

    def __init__(self, upstream: str, failures: list[int], retry_after: str = "0") -> None:
        self.upstream = upstream.rstrip("/")
        self.failures = list(failures)
        self.retry_after = retry_after
        self.forwarded: list[str] = []
        self.refused = 0
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/fhir"

    def __enter__(self) -> FlakyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _next_failure(self) -> int | None:
        with self._lock:
            if self.failures:
                self.refused += 1
                return self.failures.pop(0)
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._relay(None)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._relay(body)

            def _relay(self, body: bytes | None) -> None:
                failure = proxy._next_failure()
                if failure is not None:
                    self.send_response(failure)
                    self.send_header("Retry-After", proxy.retry_after)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                path = self.path.removeprefix("/fhir")
                upstream = requests.request(
                    self.command,
                    proxy.upstream + path,
                    data=body,
                    headers={"Content-Type": "application/fhir+json"},
                    timeout=60,
                )
                if body and upstream.status_code < 300:
                    proxy._log(body)
                self.send_response(upstream.status_code)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(upstream.content)))
                self.end_headers()
                self.wfile.write(upstream.content)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def _log(self, body: bytes) -> None:
        bundle = simplejson.loads(body)
        for entry in bundle.get("entry", []):
            if entry["resource"]["resourceType"] == "Provenance":
                with self._lock:
                    self.forwarded.append(entry["resource"]["id"])


def provenance_ids(bundle_json: str) -> Iterator[str]:
    bundle = simplejson.loads(bundle_json)
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Provenance":
            yield entry["resource"]["id"]
