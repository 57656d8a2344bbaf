"""/readyz while every push is refused for authentication (issue 18): the FHIR server's
/metadata is public, so it answers; readiness must still say that nothing is accepted, and
why, until a push is. Real servers: oidc-provider (``DevAuthServer``) and the dev FHIR server
enforcing its tokens; a client registered without the Provenance scope gets 403 on every
transaction, as a site that forgot one scope would."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from adapter.auth import load_auth
from adapter.config import load_settings
from adapter.dev_fhir import DevFhirServer
from adapter.dev_fhir.auth import WRITER_SCOPES, DevAuthServer, DevClient
from adapter.fhir_client import FhirClient
from adapter.intake import Intake
from adapter.mappings import load_mappings
from adapter.service.config import service_config
from adapter.service.scheduler import Service
from adapter.service.stages import Stages
from adapter.store import incoming, open_store
from adapter.store.service import ServiceStore
from adapter.trial.registry import Registry
from adapter.trial.study import load_study
from tests.messages import ALT, obx, oru
from tests.test_service_run import Run
from tests.test_service_support import wait_for

AUDIENCE = "urn:trialbridge:test-fhir"
WRITER = DevClient.generate("tb-writer", WRITER_SCOPES)
NO_PROVENANCE = DevClient.generate(
    "tb-no-provenance", WRITER_SCOPES.replace(" system/Provenance.crus", "")
)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[DevAuthServer, DevFhirServer]]:
    auth = DevAuthServer([WRITER, NO_PROVENANCE], audience=AUDIENCE)
    with auth, DevFhirServer(require_auth=auth.issuer, audience=AUDIENCE) as fhir:
        yield auth, fhir
    auth.close()


def auth_section(client: DevClient, auth: DevAuthServer, key_file: Path) -> dict[str, str]:
    return {
        "mode": "smart",
        "client_id": client.client_id,
        "token_url": auth.token_url,
        "scope": client.scope,
        "private_key_file": str(client.write_key(key_file)),
        "key_id": client.key_id,
        "algorithm": client.algorithm,
    }


def received(store_url: str) -> None:
    """One result message of the enrolled test patient, in the inbox."""
    text = oru(obx(1, ALT, "52", "U/L"), message_id="AUTH-1")
    with open_store(store_url) as store:
        store.receive(incoming(text.encode(), "auth-1.hl7"))


def test_readyz_says_auth_is_failing_until_a_push_is_accepted(
    servers: tuple[DevAuthServer, DevFhirServer],
    tmp_path: Path,
    own_state_store: str,
    enrol: Callable[..., object],
) -> None:
    auth, fhir = servers
    enrol()
    received(own_state_store)
    settings = load_settings()
    config = service_config({})
    refused = FhirClient(
        fhir.base_url, auth=load_auth(auth_section(NO_PROVENANCE, auth, tmp_path / "a.pem"))
    )
    with open_store(own_state_store) as store, refused:
        registry = Registry(store, load_study())
        mappings = load_mappings(settings.mappings_dir)
        stages = Stages(ServiceStore(store), refused, settings, mappings, registry, config)
        service = Service(stages, Intake(store, registry), config)
        assert service.ready()[0]  # nothing tried yet: /metadata answers
        stages.process_inbox(10)
        stages.push_outbox(10)
        ready, checks = service.ready()
        assert not ready
        assert checks["fhir"].startswith("auth failing: ")
        assert "HTTP 403" in checks["fhir"] and "missing system/Provenance.u" in checks["fhir"]
        with FhirClient(
            fhir.base_url, auth=load_auth(auth_section(WRITER, auth, tmp_path / "w.pem"))
        ) as fixed:
            stages.client = fixed  # the client's registration fixed: the next push is taken
            stages.push_outbox(10, ignore_schedule=True)
            assert service.ready() == (True, {**checks, "fhir": "ok"})


def test_a_missing_scope_turns_the_running_services_readyz_503_naming_it(
    servers: tuple[DevAuthServer, DevFhirServer],
    tmp_path: Path,
    own_state_store: str,
    enrol: Callable[..., object],
) -> None:
    """``trialbridge run`` as a process, its client registered without the Provenance scope.
    (A client the token endpoint refuses outright stops ``run`` at start-up, naming it.)"""
    auth, fhir = servers
    enrol()
    received(own_state_store)
    section = auth_section(NO_PROVENANCE, auth, tmp_path / "k.pem")
    env = {f"TRIALBRIDGE_FHIR_AUTH_{key.upper()}": value for key, value in section.items()}
    run = Run(own_state_store, fhir.base_url, tmp_path / "run.log", **env)
    try:

        def failing() -> Any:
            answer = run.get("/readyz")
            return (answer.status_code, answer.json()) if "auth" in answer.json()["fhir"] else None

        status, body = wait_for(failing, 60, "/readyz to say auth is failing")
        assert (status, body["ready"]) == (503, False)
        assert body["fhir"].startswith("auth failing: the FHIR server refused POST /")
        assert "missing system/Provenance.u" in body["fhir"]
        assert run.stop() == 0
    finally:
        if run.process.poll() is None:
            run.kill()
    secret = NO_PROVENANCE.private_key_pem.decode().splitlines()[1]
    assert secret not in (tmp_path / "run.log").read_text()
