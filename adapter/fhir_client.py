"""The one seam to a FHIR R4 server: a pooled ``requests`` Session with retries and timeouts.

Works against any R4 server (HAPI, Azure, Google, Medplum, the dev server); server quirks
belong in the dev server, not here. Errors come back as :class:`FhirError` carrying the
server's OperationOutcome text.
"""

from __future__ import annotations

from typing import Any

import requests
import simplejson
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from adapter.errors import FhirError, FhirUnavailableError

FHIR_JSON = "application/fhir+json"


class FhirClient:
    """A small client: transaction, search (with paging) and read."""

    def __init__(self, base_url: str, *, timeout: float = 30.0, retries: int = 3) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        # Our transactions are conditional and so idempotent: POST may be retried too.
        retry = Retry(
            total=retries,
            backoff_factor=0.5,
            status_forcelist=(429, 502, 503, 504),
            allowed_methods=frozenset({"GET", "POST", "PUT"}),
            raise_on_status=False,
        )
        adapter = HTTPAdapter(max_retries=retry, pool_maxsize=4)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"Accept": FHIR_JSON})

    def close(self) -> None:
        """Release pooled connections."""
        self.session.close()

    def __enter__(self) -> FhirClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transaction(self, bundle: dict[str, Any]) -> dict[str, Any]:
        """POST a transaction (or batch) Bundle to the base; return the response Bundle."""
        body = simplejson.dumps(bundle, use_decimal=True)
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

    def _request(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        headers = {"Content-Type": FHIR_JSON} if "data" in kwargs else {}
        try:
            response = self.session.request(
                method, url, headers=headers, timeout=self.timeout, **kwargs
            )
        except requests.RequestException as exc:
            raise FhirUnavailableError(
                f"cannot reach the FHIR server at {self.base_url} ({type(exc).__name__}); "
                "check fhir.url in config/trialbridge.yaml and that the server is up"
            ) from exc
        if response.status_code >= 400:
            raise FhirError(
                f"the FHIR server refused {method} {_short(url, self.base_url)}",
                status=response.status_code,
                outcome=outcome_text(response),
            )
        result: dict[str, Any] = response.json()
        return result


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
    return url[len(base) :] or "/" if url.startswith(base) else url
