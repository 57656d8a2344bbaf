"""Error texts name the configuration actually in use, not the repository's default file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from adapter.config import DEFAULT_CONFIG, load_settings
from adapter.errors import FhirError
from adapter.fhir_client import FhirClient

NOBODY = "http://127.0.0.1:9/fhir"  # the discard port: nothing listens


def test_an_unreachable_server_names_the_configuration_file_in_use(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    shutil.copy(DEFAULT_CONFIG, site)
    settings = load_settings(site)
    client = FhirClient.from_settings(settings, base_url=NOBODY, config_path=site, retries=0)
    with client, pytest.raises(FhirError) as caught:
        client.read("Patient", "x")
    assert f"check fhir.url in {site} and that the server is up" in str(caught.value)
    assert "config/trialbridge.yaml" not in str(caught.value)


def test_a_client_made_from_a_bare_url_says_the_configuration() -> None:
    with FhirClient(NOBODY, retries=0) as client, pytest.raises(FhirError) as caught:
        client.ping()
    assert "check fhir.url in the configuration and that the server is up" in str(caught.value)
