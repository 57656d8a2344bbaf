"""The one seam to a FHIR R4 server: a pooled ``requests`` Session with timeouts, retries and
authentication.

Works against any R4 server (HAPI, Azure, Google, Medplum, the dev server); server quirks
belong in the dev server, not here. Every call has a connect and a read timeout. Connection
errors, timeouts, 429 and 5xx are retried with exponential backoff and full jitter, honouring
the server's ``Retry-After`` (seconds or an HTTP date) up to a cap; our writes are conditional,
so retrying a POST is harmless. Any other 4xx is raised at once. Errors come back as
:class:`FhirError` carrying the server's OperationOutcome text, whether the request may be
retried later and the server's ``Retry-After``, so the outbox can schedule the next attempt.
Credentials (``fhir.auth``) are described in :mod:`adapter.auth`.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import simplejson
from requests.adapters import HTTPAdapter

from adapter.auth import ClientAuth, load_auth
from adapter.config import DEFAULT_CONFIG, Settings, config_section
from adapter.errors import FhirError, FhirUnavailableError
from adapter.logs import get_logger

FHIR_JSON = "application/fhir+json"
log = get_logger(__name__)


class FhirClient:
    """A small client: transaction, search (with paging) and read.

    ``retries`` is how many times a failed call is tried again (0: once only). The wait before
    retry *n* is uniform in [0, min(max_backoff, backoff * 2**n)], or the server's
    ``Retry-After`` when it sent one; a ``Retry-After`` longer than ``max_retry_after`` is not
    waited out here: the error is raised with it, for the outbox to schedule."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        auth: ClientAuth | None = None,
        connect_timeout: float | None = None,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_retry_after: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.connect_timeout = min(timeout, 10.0) if connect_timeout is None else connect_timeout
        self.retries = max(0, retries)
        self.backoff, self.max_backoff, self.max_retry_after = backoff, max_backoff, max_retry_after
        self.auth = auth or ClientAuth()
        # where fhir.url and fhir.auth were read from, for the error texts' hints (set by
        # from_settings; a client made from a bare URL says "the configuration")
        self.config_name = "the configuration"
        self.attempts = 0  # requests sent, retries included (for tests and metrics)
        self._sleep = sleep
        self.session = requests.Session()
        adapter = HTTPAdapter(max_retries=0, pool_maxsize=4)  # retried here, not by urllib3
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"Accept": FHIR_JSON})
        self.auth.apply(self.session)
        self._tls = self.auth.tls.options()
        _settle_environment(self.session, self.base_url, self._tls)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        base_url: str | None = None,
        config_path: Path = DEFAULT_CONFIG,
        **options: Any,
    ) -> FhirClient:
        """The client the configuration describes: ``fhir.url``, timeouts, retries and the
        credentials of ``fhir.auth`` (read from ``config_path``, environment overrides
        applied). ``options`` go to the constructor (e.g. ``retries=0``)."""
        section = config_section("fhir", config_path)
        timeouts = (min(settings.fhir_timeout, 10.0), settings.fhir_timeout)
        auth = load_auth(section.get("auth"), path=str(config_path), timeout=timeouts)
        options.setdefault("timeout", settings.fhir_timeout)
        options.setdefault("retries", settings.fhir_retries)
        client = cls(base_url or settings.fhir_url, auth=auth, **options)
        client.config_name = str(config_path)
        return client

    def close(self) -> None:
        """Release pooled connections."""
        self.session.close()
        self.auth.close()

    def __enter__(self) -> FhirClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FhirClient({self.base_url!r}, auth={self.auth.mode!r})"

    def transaction(self, bundle: dict[str, Any] | str) -> dict[str, Any]:
        """POST a transaction (or batch) Bundle to the base; return the response Bundle.

        ``bundle`` may be its JSON text already (the outbox's), sent as it is."""
        body = bundle if isinstance(bundle, str) else simplejson.dumps(bundle, use_decimal=True)
        return self._request("POST", self.base_url, data=body.encode("utf-8"))

    def search(self, resource_type: str, params: dict[str, str] | str) -> list[dict[str, Any]]:
        """Every resource matching a search, following ``next`` links across pages.

        ``params`` is a dict, or a query string already escaped (for ``,``-joined tokens).
        """
        page = self._request("GET", f"{self.base_url}/{resource_type}", params=params)
        resources = [e["resource"] for e in page.get("entry", []) if "resource" in e]
        while next_url := _next_link(page):
            page = self._request("GET", next_url)
            resources.extend(e["resource"] for e in page.get("entry", []) if "resource" in e)
        return resources

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        """GET one resource by id."""
        return self._request("GET", f"{self.base_url}/{resource_type}/{resource_id}")

    def ping(self) -> None:
        """``GET metadata`` once, no retries: raises :class:`FhirError` unless the server
        answers (the push's cheap check that the server is back after an outage)."""
        self._attempt("GET", f"{self.base_url}/metadata")

    def _request(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        response = self._with_retries(method, url, **kwargs)
        result: dict[str, Any] = response.json()
        return result

    def _with_retries(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        path, retry, reauthorised = _short(url, self.base_url), 0, False
        while True:
            try:
                return self._attempt(method, url, **kwargs)
            except FhirError as exc:
                if exc.status == 401 and not reauthorised and self.auth.invalidate():
                    reauthorised = True  # a revoked or expired token: fetch one, try again
                    continue
                wait = self._wait(retry, exc)
                if wait is None:
                    _log_failure(method, path, exc, retry + 1)
                    raise
                log.warning(
                    "fhir.retry", method=method, path=path, status=exc.status,
                    error=type(exc.__cause__ or exc).__name__, attempt=retry + 1, wait=wait,
                )  # fmt: skip
                self._sleep(wait)
                retry += 1

    def _wait(self, retry: int, exc: FhirError) -> float | None:
        """Seconds to wait before retrying, or None when the error must be raised now."""
        if not exc.retryable or retry >= self.retries:
            return None
        if exc.retry_after is not None:
            return exc.retry_after if exc.retry_after <= self.max_retry_after else None
        return random.uniform(0, min(self.max_backoff, self.backoff * 2**retry))  # noqa: S311

    def _attempt(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        headers = {"Content-Type": FHIR_JSON} if "data" in kwargs else {}
        timeout = (self.connect_timeout, self.timeout)
        self.attempts += 1
        started = time.monotonic()
        try:
            response = self.session.request(
                method, url, headers=headers, timeout=timeout, **self._tls, **kwargs
            )
        except requests.exceptions.SSLError as exc:
            raise FhirUnavailableError(
                f"TLS with the FHIR server at {self.base_url} failed; check fhir.auth "
                f"(ca_bundle_file, client_cert_file, client_key_file) in {self.config_name}",
                retryable=False,
            ) from exc
        except requests.RequestException as exc:
            raise FhirUnavailableError(
                f"cannot reach the FHIR server at {self.base_url} ({type(exc).__name__}); "
                f"check fhir.url in {self.config_name} and that the server is up",
                retryable=isinstance(exc, requests.ConnectionError | requests.Timeout),
            ) from exc
        elapsed = round((time.monotonic() - started) * 1000, 1)
        log.debug(
            "fhir.request", method=method, path=_short(url, self.base_url),
            status=response.status_code, ms=elapsed,
        )  # fmt: skip
        if response.status_code >= 400:
            raise _refusal(method, url, self.base_url, response, self.config_name)
        return response


def _settle_environment(session: requests.Session, base_url: str, tls: dict[str, Any]) -> None:
    """Read the environment's proxies, CA bundle and .netrc for the server once, here.

    requests reads them again for every request (all of ``os.environ`` and a stat of
    ~/.netrc: ~0.3 ms, a tenth of a small transaction's time on the dev server); the
    settings are the same, taken when the client is made."""
    no_proxy = session.proxies.get("no_proxy")
    for scheme, proxy in requests.utils.get_environ_proxies(base_url, no_proxy).items():
        session.proxies.setdefault(scheme, proxy)
    ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if ca_bundle and "verify" not in tls:  # ca_bundle_file (fhir.auth) wins, as before
        tls["verify"] = ca_bundle
    if session.auth is None:
        session.auth = requests.utils.get_netrc_auth(base_url)
    session.trust_env = False


def _refusal(
    method: str, url: str, base: str, response: requests.Response, config_name: str
) -> FhirError:
    status = response.status_code
    hint = f"; check fhir.auth in {config_name}" if status in (401, 403) else ""
    return FhirError(
        f"the FHIR server refused {method} {_short(url, base)}{hint}",
        status=status,
        outcome=outcome_text(response),
        retry_after=retry_after(response.headers.get("Retry-After")),
    )


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _log_failure(method: str, path: str, exc: FhirError, attempts: int) -> None:
    log.warning(
        "fhir.failed", method=method, path=path, status=exc.status, attempts=attempts,
        retryable=exc.retryable, retry_after=exc.retry_after,
        error=type(exc.__cause__ or exc).__name__,
    )  # fmt: skip


def outcome_text(response: requests.Response) -> str:
    """The human text of an OperationOutcome answer (or the start of whatever came back)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return str(body)[:300]
    texts = []
    for issue in body.get("issue", []):
        text = issue.get("diagnostics") or issue.get("details", {}).get("text") or issue.get("code")
        where = ", ".join(issue.get("expression", []) or issue.get("location", []))
        texts.append(f"{text} ({where})" if where else str(text))
    return "; ".join(texts)


def _next_link(bundle: dict[str, Any]) -> str | None:
    for link in bundle.get("link", []):
        if link.get("relation") == "next":
            return str(link["url"])
    return None


def _short(url: str, base: str) -> str:
    """The path of ``url`` under the base, without its query (which may name identifiers)."""
    path = url[len(base) :] or "/" if url.startswith(base) else urlsplit(url).path
    return path.split("?", 1)[0]
