"""SMART backend services against a real authorization server (``oidc-provider``, npm) and
the dev FHIR server enforcing its tokens (``--require-auth``): TrialBridge's client meets an
implementation nobody here wrote. Everything runs as real processes on the loopback."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from joserfc import jwt
from joserfc.jwk import RSAKey

from adapter.auth import SmartBackendAuth, load_auth
from adapter.cli import main
from adapter.dev_fhir import DevFhirServer
from adapter.dev_fhir.auth import READER_SCOPES, WRITER_SCOPES, DevAuthServer, DevClient
from adapter.errors import FhirError
from adapter.fhir_client import FhirClient
from adapter.store import open_store
from adapter.store.schema import outbox
from tests.conftest import push_texts
from tests.messages import ALT, obx, oru

AUDIENCE = "urn:trialbridge:test-fhir"
WRITER = DevClient.generate("trialbridge-ddsc", WRITER_SCOPES)
NO_PROVENANCE = DevClient.generate(
    "no-provenance", WRITER_SCOPES.replace(" system/Provenance.crus", "")
)
RESEARCH = DevClient.generate("research", READER_SCOPES, algorithm="ES384")


class Servers:
    def __init__(self, auth: DevAuthServer, fhir: DevFhirServer) -> None:
        self.auth, self.fhir = auth, fhir

    def issued(self) -> int:
        return int(self.auth.stats()["tokens_issued"])

    def refusals(self) -> list[str]:
        return [r["description"] for r in self.auth.stats()["refusals"]]


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    auth = DevAuthServer([WRITER, NO_PROVENANCE, RESEARCH], audience=AUDIENCE)
    with auth, DevFhirServer(require_auth=auth.issuer, audience=AUDIENCE) as fhir:
        yield Servers(auth, fhir)
    auth.close()


def smart(client: DevClient, servers: Servers, key_file: Path, **changes: Any) -> FhirClient:
    section = {
        "mode": "smart",
        "client_id": client.client_id,
        "token_url": servers.auth.token_url,
        "scope": client.scope,
        "private_key_file": str(client.write_key(key_file)),
        "key_id": client.key_id,
        "algorithm": client.algorithm,
        **changes,
    }
    return FhirClient(servers.fhir.base_url, auth=load_auth(section), retries=0)


def message(mrn: str, message_id: str) -> str:
    return oru(obx(1, ALT, "52", "U/L"), mrn=mrn, message_id=message_id, order=message_id)


def test_a_transaction_lands_with_a_token_that_is_cached_and_fetched_anew_after_a_401(
    servers: Servers, tmp_path: Path
) -> None:
    before = servers.issued()
    with smart(WRITER, servers, tmp_path / "key.pem") as client:
        summary = push_texts(client, message("SM001", "SMART-1"), message("SM001", "SMART-2"))
        assert (summary.pushed, summary.failed) == (2, 0)
        assert servers.issued() == before + 1  # one token for every request so far
        requests.post(servers.fhir.base_url.removesuffix("/fhir") + "/admin/revoke-tokens")
        found = client.search("Observation", {"identifier": "urn:trialbridge:lis-result|"})
        assert servers.issued() == before + 2  # the 401 made it fetch a new one, once
    with smart(RESEARCH, servers, tmp_path / "research.pem") as reader:
        observations = reader.search("Observation", {"code": "http://loinc.org|1742-6"})
    assert found is not None
    assert len(observations) >= 2


def test_a_token_is_refreshed_shortly_before_it_expires(servers: Servers, tmp_path: Path) -> None:
    with smart(WRITER, servers, tmp_path / "key.pem") as client:
        auth = client.auth.http
        assert isinstance(auth, SmartBackendAuth)
        now = [time.time()]
        auth._clock = lambda: now[0]
        client.search("Patient", {"_count": "1"})
        assert auth.fetches == 1
        now[0] += 269  # the server's tokens live 300 s; refreshed 30 s before they expire
        client.search("Patient", {"_count": "1"})
        assert auth.fetches == 1
        now[0] += 2
        client.search("Patient", {"_count": "1"})
        assert auth.fetches == 2


def refused(client: FhirClient) -> str:
    with pytest.raises(FhirError) as caught:
        client.search("Patient", {"_count": "1"})
    return str(caught.value)


def test_a_wrong_key_and_an_unknown_kid_are_refused_with_a_clear_error_and_no_secret(
    servers: Servers, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    impostor = replace(DevClient.generate(WRITER.client_id, WRITER.scope), key_id=WRITER.key_id)
    with smart(impostor, servers, tmp_path / "wrong.pem") as client:
        wrong_key = refused(client)
    with smart(WRITER, servers, tmp_path / "key.pem", key_id="no-such-kid") as client:
        unknown_kid = refused(client)
    for error in (wrong_key, unknown_kid):
        assert "refused client 'trialbridge-ddsc': invalid_client" in error
        assert "check fhir.auth" in error
    secrets = [impostor.private_key_pem.decode(), WRITER.private_key_pem.decode()]
    for text in (wrong_key, unknown_kid, caplog.text):
        assert not any(line in text for s in secrets for line in s.splitlines()[1:-1])


def assertion(client: DevClient, token_url: str, **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "iss": client.client_id,
        "sub": client.client_id,
        "aud": token_url,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + 300,
        **claims,
    }
    key = RSAKey.import_key(client.private_key_pem)
    header = {"alg": client.algorithm, "kid": client.key_id, "typ": "JWT"}
    return jwt.encode(header, payload, key, algorithms=[client.algorithm])


def ask(servers: Servers, signed: str) -> requests.Response:
    form = {
        "grant_type": "client_credentials",
        "scope": "system/Patient.rs",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": signed,
    }
    return requests.post(servers.auth.token_url, data=form, timeout=10)


def test_a_replayed_and_an_expired_assertion_are_refused_by_the_server(servers: Servers) -> None:
    signed = assertion(WRITER, servers.auth.token_url)
    assert ask(servers, signed).status_code == 200
    replayed = ask(servers, signed)
    assert (replayed.status_code, replayed.json()["error"]) == (401, "invalid_client")
    past = int(time.time()) - 600
    expired = ask(servers, assertion(WRITER, servers.auth.token_url, iat=past, exp=past + 300))
    assert (expired.status_code, expired.json()["error"]) == (401, "invalid_client")
    reasons = " | ".join(servers.refusals())
    assert "client assertion tokens must only be used once" in reasons
    assert "jwt expired" in reasons


def test_a_missing_scope_is_a_403_naming_it_and_the_outbox_waits(
    servers: Servers, tmp_path: Path, own_state_store: str
) -> None:
    with smart(NO_PROVENANCE, servers, tmp_path / "key.pem") as client:
        summary = push_texts(client, message("SM002", "SMART-3"))
    assert (summary.pushed, summary.failed) == (0, 1)
    assert "HTTP 403" in summary.errors[0]
    assert "missing system/Provenance.u" in summary.errors[0]
    with open_store(own_state_store) as store, store.engine.connect() as conn:
        statuses = [row.status for row in conn.execute(outbox.select())]
    assert statuses == ["pending"]  # waits for a fixed configuration: not a dead letter


def test_without_a_token_the_server_answers_401_with_www_authenticate(servers: Servers) -> None:
    response = requests.get(f"{servers.fhir.base_url}/Patient", timeout=10)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="dev-fhir"')
    assert response.json()["resourceType"] == "OperationOutcome"
    metadata = requests.get(f"{servers.fhir.base_url}/metadata", timeout=10)
    assert metadata.status_code == 200  # the CapabilityStatement stays public


def test_research_staff_read_with_a_read_only_token_and_cannot_write(
    servers: Servers, tmp_path: Path
) -> None:
    with smart(RESEARCH, servers, tmp_path / "research.pem") as reader:
        assert isinstance(reader.search("ResearchSubject", {"_count": "5"}), list)
        with pytest.raises(FhirError) as caught:
            reader.transaction(
                {
                    "resourceType": "Bundle",
                    "type": "transaction",
                    "entry": [
                        {
                            "resource": {"resourceType": "Patient"},
                            "request": {"method": "POST", "url": "Patient"},
                        }
                    ],
                }
            )
    assert caught.value.status == 403
    assert "missing system/Patient.c" in str(caught.value)


def test_smart_jwks_prints_the_public_key_to_register(tmp_path: Path) -> None:
    key_file = WRITER.write_key(tmp_path / "key.pem")
    result = CliRunner().invoke(
        main, ["smart-jwks", "--key", str(key_file), "--kid", WRITER.key_id]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"keys": [WRITER.public_jwk()]}
    assert "PRIVATE" not in result.output and '"d"' not in result.output
