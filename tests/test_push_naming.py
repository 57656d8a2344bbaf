"""``trialbridge push`` names a failed message by its file and MSH-10 (the service, by MSH-10
alone: file names are never stored or logged), and counts messages, not transactions."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from adapter.cli import main
from adapter.config import load_settings
from adapter.fhir_client import FhirClient
from adapter.mappings import load_mappings
from adapter.service.config import service_config
from adapter.service.stages import Stages
from adapter.service.summary import PushSummary
from adapter.store import incoming, open_store
from adapter.store.service import ServiceStore
from tests.messages import ALT, obx, oru

NOBODY = "http://127.0.0.1:9/fhir"  # the discard port: nothing listens


def message(message_id: str) -> str:
    return oru(obx(1, ALT, "42", "U/L"), message_id=message_id, order=message_id)


def push(folder: Path, url: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["push", str(folder), "--fhir-url", url])
    return result.exit_code, result.stdout, result.stderr


def test_a_failed_message_is_named_by_its_file_and_msh10_and_a_retry_counts_it_once(
    tmp_path: Path, fhir_url: str, enrol: Callable[..., object]
) -> None:
    enrol()
    feed = tmp_path / "feed"
    feed.mkdir()
    (feed / "alt-1.hl7").write_text(message("MSG-ALT-1"))
    code, _, errors = push(feed, NOBODY)
    assert code == 1
    assert f"{feed / 'alt-1.hl7'}: message MSH-10 MSG-ALT-1 (inbox row 1) (results): " in errors
    code, out, _ = push(feed, fhir_url)  # the server is up: the retry goes
    assert code == 0
    assert out.startswith("1 message(s): 1 pushed, 0 dropped (not enrolled), 0 duplicate(s)")
    assert "earlier push" not in out


def test_a_message_left_by_an_earlier_push_is_counted_apart(
    tmp_path: Path, fhir_url: str, enrol: Callable[..., object]
) -> None:
    enrol()
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
    (tmp_path / "first" / "a.hl7").write_text(message("MSG-A"))
    (tmp_path / "second" / "b.hl7").write_text(message("MSG-B"))
    assert push(tmp_path / "first", NOBODY)[0] == 1
    code, out, _ = push(tmp_path / "second", fhir_url)
    assert code == 0
    assert out.startswith("1 message(s): 1 pushed,")
    assert "plus 1 message(s) an earlier push left in the outbox" in out
    result = CliRunner().invoke(
        main, ["push", str(tmp_path / "second"), "--fhir-url", fhir_url, "--json"]
    )
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert (summary["messages"], summary["pushed"], summary["duplicates"]) == (1, 0, 1)
    assert "sent_messages" not in summary


def test_the_service_names_a_failed_message_by_msh10_only(own_state_store: str) -> None:
    """The service's stages know no file names (never stored): the status text says MSH-10."""
    settings = load_settings()
    mappings = load_mappings(settings.mappings_dir)
    with open_store(own_state_store) as store, FhirClient(NOBODY, retries=0) as client:
        store.receive(incoming(message("MSG-SVC").encode(), "secret-name.hl7"))
        stages = Stages(ServiceStore(store), client, settings, mappings, None, service_config({}))
        stages.process_inbox(10)
        summary = PushSummary()
        stages.push_outbox(10, summary)
    assert summary.errors[0].startswith("message MSH-10 MSG-SVC (inbox row 1) (results): ")
    assert "secret-name" not in summary.errors[0]
