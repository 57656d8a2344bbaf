"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapter.dev_fhir import DevFhirServer


@pytest.fixture(scope="session")
def dev_fhir_server() -> Iterator[DevFhirServer]:
    """The local FHIR R4 server, started once per test session on a free port."""
    with DevFhirServer(port=0) as server:
        yield server


@pytest.fixture
def fhir_url(dev_fhir_server: DevFhirServer) -> str:
    """The FHIR base URL of the dev server, with an empty store for this test."""
    dev_fhir_server.reset()
    return dev_fhir_server.base_url
