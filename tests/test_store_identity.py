"""A store belongs to one FHIR server (issue 13): pushing with a store used against another
server is refused by name before anything is sent (it used to say "duplicate" and exit 0
without contacting the new server); the server's CapabilityStatement identity decides when
the same server is reached at a new address."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from adapter.errors import StoreError
from adapter.store import open_store
from adapter.store.identity import ServerIdentity, bind, recorded
from tests.messages import ALT, obx, oru
from tests.test_service_run import TRIALBRIDGE


def push(message: Path, fhir_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TRIALBRIDGE, "push", str(message), "--fhir-url", fhir_url],
        env=os.environ, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_store_refuses_another_fhir_server_before_sending_anything(
    fhir_url: str, tmp_path: Path, enrol: Callable[..., object], own_state_store: str
) -> None:
    enrol()
    message = tmp_path / "alt.hl7"
    message.write_text(oru(obx(1, ALT, "42", "U/L")))
    unreachable = push(message, "http://127.0.0.1:9/fhir")  # a wrong URL claims nothing
    assert unreachable.returncode == 1 and "cannot reach the FHIR server" in unreachable.stderr
    with open_store(own_state_store) as store:
        assert recorded(store) is None
    first = push(message, fhir_url)
    assert first.returncode == 0, first.stderr
    other = fhir_url.replace("127.0.0.1", "localhost")  # the server under another name
    again = push(message, other)
    assert again.returncode == 1
    assert f"belongs to the FHIR server {fhir_url}" in again.stderr
    assert f"not {other}" in again.stderr and "a new store (store.url, --store)" in again.stderr
    assert "duplicate" not in again.stdout
    with open_store(own_state_store) as store:
        mine = recorded(store)
    assert mine is not None and mine.base_url == fhir_url


@pytest.mark.parametrize(
    ("first", "then", "accepted"),
    [
        (("http://a/fhir/", None), ("HTTP://A/fhir", None), True),  # the same URL, written so
        (("http://a/fhir", "urn:x"), ("http://b/fhir", "urn:x"), True),  # a new address
        (("http://a/fhir", "urn:x"), ("http://a/fhir", "urn:y"), False),  # replaced behind it
        (("http://a/fhir", None), ("http://b/fhir", "urn:x"), False),  # unknown: by URL
    ],
)
def test_which_server_is_the_same_one(
    own_state_store: str,
    first: tuple[str, str | None],
    then: tuple[str, str | None],
    accepted: bool,
) -> None:
    with open_store(own_state_store) as store:
        bind(store, ServerIdentity(*first), "test")
        if accepted:
            bind(store, ServerIdentity(*then), "test")
            mine = recorded(store)
            assert mine is not None and mine.base_url == then[0].lower().rstrip("/")
        else:
            with pytest.raises(StoreError, match="belongs to the FHIR server http://a/fhir"):
                bind(store, ServerIdentity(*then), "test")
