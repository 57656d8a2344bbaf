"""Setting the service up from the configuration, running it, and the operator's queries
(status, dead letters, replay) — what the ``run``/``status``/``dead-letter``/``replay``
commands call."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import make_url

from adapter.config import Settings, config_section
from adapter.errors import ConfigError
from adapter.fhir_client import FhirClient
from adapter.intake import Intake
from adapter.mappings import load_mappings
from adapter.service.config import ServiceConfig, service_config
from adapter.service.health import HEALTH
from adapter.service.http import Endpoint, Probe
from adapter.service.quarantine import entry_json
from adapter.service.reload import MappingsWatcher, ReloadingStages, with_mappings
from adapter.service.scheduler import LEASE, Recompute, Service, SourceSpec
from adapter.service.sourcefacts import source_facts
from adapter.service.status import Limits, Status
from adapter.store import Store, open_store
from adapter.store.identity import ServerIdentity, bind, recorded
from adapter.store.service import ServiceStore
from adapter.trial.registry import Registry
from adapter.trial.study import load_study


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What ``trialbridge run`` was given on top of the configuration file."""

    config_path: Path
    fhir_url: str | None = None
    store_url: str | None = None
    http_port: int | None = None


SourcesFactory = Callable[[Settings, Path], Sequence[SourceSpec]]
RecomputeFactory = Callable[[FhirClient, Registry, Path], Recompute | None]


def load_service_config(config_path: Path) -> ServiceConfig:
    section = config_section("service", config_path)
    return service_config(section, f"{config_path}: service", config_path)


def run_service(
    settings: Settings,
    options: RunOptions,
    stop: threading.Event,
    *,
    sources: SourcesFactory | None = None,
    recompute: RecomputeFactory | None = None,
    on_ready: Callable[[Service, int], None] = lambda _service, _port: None,
) -> None:
    """Run the service in this thread until ``stop`` is set; then finish and return."""
    config = load_service_config(options.config_path)
    mappings = load_mappings(settings.mappings_dir)
    url = options.store_url or settings.store_url
    with (
        open_store(url) as store,
        # No retries inside the client: the outbox schedules the next attempt itself.
        FhirClient.from_settings(
            settings, base_url=options.fhir_url, config_path=options.config_path, retries=0
        ) as client,
    ):
        bind_store(store, client, url)
        study = load_study(settings.study_path)
        study.check_analytes(mappings.analytes, str(settings.mappings_dir))
        registry = Registry(store, study)
        # Mappings changed on disk reach the next batch (adapter/service/reload.py).
        watcher = MappingsWatcher(settings.mappings_dir, mappings)
        stages = ReloadingStages(
            ServiceStore(store), client, settings, mappings, registry, config, watcher=watcher
        )
        service = Service(
            stages,
            Intake(store, registry),
            config,
            sources=sources(settings, options.config_path) if sources else (),
            recompute=recompute(client, registry, options.config_path) if recompute else None,
            stop=stop,
        )
        port = config.http_port if options.http_port is None else options.http_port
        probe = Probe(service.healthy, with_mappings(service.ready, watcher))
        endpoint = _endpoint(config.http_host, port, probe)
        try:
            endpoint.start()
            service.start_listeners()  # every listener listens, or start-up fails here
            on_ready(service, endpoint.port)
            service.run()
        finally:
            endpoint.stop()


def bind_store(store: Store, client: FhirClient, store_url: str) -> None:
    """Refuse a store that belongs to another FHIR server (:mod:`adapter.store.identity`).
    The server is recorded on the first use in which it answers: a wrong or unreachable URL
    (nothing can be sent to it) does not claim the store."""
    answered, identity = server_identity(client)
    if not answered and recorded(store) is None:
        return
    where = make_url(store_url).render_as_string(hide_password=True)
    bind(store, ServerIdentity(client.base_url, identity), where)


def server_identity(client: FhirClient) -> tuple[bool, str | None]:
    """Whether the server answered at all, and its own name for itself: its
    CapabilityStatement's ``implementation.url`` (else ``url``), when it publishes one."""
    try:
        answer = client.session.get(
            f"{client.base_url}/metadata", timeout=10, headers={"Accept": "application/fhir+json"}
        )
    except requests.RequestException:
        return False, None
    try:
        document = answer.json() if answer.status_code == 200 else {}
    except ValueError:
        return True, None
    if not isinstance(document, dict) or document.get("resourceType") != "CapabilityStatement":
        return True, None
    found = (document.get("implementation") or {}).get("url") or document.get("url")
    return True, str(found) if found else None


def _endpoint(host: str, port: int, probe: Probe) -> Endpoint:
    """The HTTP endpoint, bound; a port that is taken is a start-up error naming the key."""
    try:
        return Endpoint(host, port, probe)
    except OSError as exc:
        raise ConfigError(
            f"service.http: cannot listen on {host}:{port}: {exc.strerror or exc} — free the "
            "port (another program or a second TrialBridge holds it), or set service.http.port "
            "(TRIALBRIDGE_SERVICE_HTTP_PORT, or trialbridge run --http-port)"
        ) from exc


@contextmanager
def service_store(settings: Settings, store_url: str | None) -> Iterator[ServiceStore]:
    with open_store(store_url or settings.store_url) as store:
        yield ServiceStore(store)


def current_status(store: ServiceStore, config_path: Path | None = None) -> Status:
    """The status as the store has it, with what the configured sources' folders and
    watermarks say (when ``config_path`` is given)."""
    config = load_service_config(config_path) if config_path else service_config({})
    return Status(
        store.now(),
        store.depths(),
        store.job_runs(),
        store.lease_holder(LEASE),
        reconciliations=_reconciliations(store),
        health={k: json.loads(v) for k, v in store.store.states(HEALTH).items()},
        sources=source_facts(store, config_path) if config_path else {},
        limits=Limits(
            pending_seconds=config.pending_alert_seconds,
            silent_seconds=dict(config.silent),
            stale_seconds=max(3 * config.lease_seconds, 30.0),
        ),
        quarantine=[entry_json(e) for e in store.quarantine_entries()],
    )


def _reconciliations(store: ServiceStore) -> dict[str, dict[str, Any]]:
    """The LIS query's reconciliation records: source state ``reconciliation`` (written by
    adapter.sources.query_source), keyed by the query source's name."""
    return {name: json.loads(v) for name, v in store.store.states("reconciliation").items()}
