"""Issue 12's "Done when", as a hospital's feed would try it: ``trialbridge run`` as a real
process with its MLLP listener and a file drop, the local FHIR server. Among normal messages
of enrolled subjects come one of each poison message the issue lists (each of which used to
stop the flow, lose its ACK, block the file drop or flood the log). Every normal result
lands; every frame gets an ACK; each poison message is quarantined (visible in
``status --json`` and ``/metrics``), or — where the parser and mappers now know the case —
held with its reason, or refused at the door with a NAK or an ``error/`` file; the log stays
small and holds no note text. A message a broken mapping set aside is delivered once by
``quarantine retry`` after the mapping is fixed, ahead of the later result that waited."""

from __future__ import annotations

import json
import shutil
import socket
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from adapter.cli import main
from adapter.errors import SourceError
from adapter.sources.client import MllpClient
from adapter.store import Store, open_store
from adapter.store.schema import held_results, messages, quarantine
from adapter.store.service import ServiceStore
from adapter.trial.enrolment import EnrolledSubject
from tests.messages import ALT, TBIL, obx, oru
from tests.test_quarantine import MAPPINGS, alt_by_order
from tests.test_service_run import launch
from tests.test_service_support import wait_for

__all__ = ["launch"]

NOTE = "Patient very anxious about the result"  # note text: must never reach the log
BROKEN = '"[IU]/L": "1e999999"  # enzyme units'  # a conversion that overflows any value


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listening(port: int) -> MllpClient:
    def attempt() -> MllpClient | None:
        try:
            return MllpClient("127.0.0.1", port, timeout=30)
        except SourceError:
            return None

    client: MllpClient = wait_for(attempt, 60, f"the MLLP listener on port {port}")
    return client


def ack_code(ack: bytes) -> str:
    """MSA-1 of an acknowledgement ('' when there is none)."""
    for segment in ack.replace(b"\n", b"\r").split(b"\r"):
        if segment.startswith(b"MSA"):
            return segment[4:6].decode("ascii", "replace")
    return ""


def result(tag: str, n: int, mrn: str, value: str, *, status: str = "F", unit: str = "U/L",
           notes: tuple[str, ...] = ()) -> str:  # fmt: skip
    """A normal ORU of order ``{tag}{n}`` with ALT and bilirubin."""
    return oru(
        obx(1, ALT, value, unit, status=status), obx(2, TBIL, "1.1", "mg/dL"),
        mrn=mrn, message_id=f"{tag}-{n}", order=f"{tag}{n}", notes=notes,
    )  # fmt: skip


def poisons(tag: str, mrn: str, way: str) -> dict[str, bytes]:
    """One of each poison message of issue 12, for patient ``mrn``: message ids
    {tag}-{way}n (P by MLLP, F by the file drop)."""

    def one(n: int, **kw: Any) -> str:
        spec = {"code": ALT, "value": "42", "unit": "U/L", "observed": "20240115083000+0800"}
        spec.update({k: kw.pop(k) for k in list(kw) if k in spec})
        text = oru(
            obx(1, spec["code"], spec["value"], spec["unit"], observed=spec["observed"]),
            mrn=mrn, message_id=f"{tag}-{way}{n}", order=f"{tag}{way}{n}", **kw,
        )  # fmt: skip
        return text

    obr22 = one(5).replace("20240115093000+0800|||", "20241315093000+0800|||")
    micro = one(9).replace("ORU^R01^ORU_R01", "ORU^R01µ^ORU_R01")
    flood = one(10, notes=("\\\\" * 10_000,))  # 20 KB of empty escape sequences
    return {
        "OBX-14 year only": one(1, observed="2024").encode(),
        "OBX-14 hour 24": one(2, observed="20240115240000+0800").encode(),
        "OBX-14 day 32": one(3, observed="20240132080000+0800").encode(),
        "OBX-14 offset +48:00": one(4, observed="20240115080000+4800").encode(),
        "OBR-22 month 13": obr22.encode(),
        "NTE escape \\.brX\\": one(6, notes=(f"{NOTE} \\.brX\\ here",)).encode(),
        "40-digit value to convert": one(7, code=TBIL, value="1" * 40, unit="umol/L").encode(),
        "MSH-18 quopri": one(8, charset="quopri").encode(),
        "MSH-9 with µ": micro.encode("utf-8"),
        "20 KB of empty escapes": flood.encode(),
        "MSH-9 with ÿ, 8859/1": one(11, charset="8859/1")
        .replace("ORU^R01^ORU_R01", "ORU^R01ÿ^ORU_R01")
        .encode("latin-1"),
        "UTF-16 with a BOM": b"\xff\xfe" + one(12).encode("utf-16-le"),
    }


# What each poison message becomes now that the parser and mappers know these cases (issue
# 12, H1): held with the field named, mapped, or refused at the door (never stored: a NAK
# over MLLP, error/ with a reason file in the file drop).
OUTCOMES = {
    "OBX-14 year only": "held",
    "OBX-14 hour 24": "held",
    "OBX-14 day 32": "held",
    "OBX-14 offset +48:00": "held",
    "OBR-22 month 13": "held",
    "NTE escape \\.brX\\": "processed",
    "40-digit value to convert": "held",
    "MSH-18 quopri": "absent",
    "MSH-9 with µ": "processed",
    "20 KB of empty escapes": "processed",
    "MSH-9 with ÿ, 8859/1": "processed",
    "UTF-16 with a BOM": "processed",
}
FIELD = {
    "OBX-14 year only": "OBX-14",
    "OBX-14 hour 24": "OBX-14",
    "OBX-14 day 32": "OBX-14",
    "OBX-14 offset +48:00": "OBX-14",
    "OBR-22 month 13": "OBR-22",
    "40-digit value to convert": "OBX-5",
}


def held_reasons(store: Store, tag: str) -> dict[str, str]:
    """The held results' reasons per message (MSH-10), of this test's messages."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(messages.c.control_id, held_results.c.reason)
            .join(held_results, held_results.c.message_id == messages.c.id)
            .where(messages.c.control_id.startswith(f"{tag}-"))
        ).all()
    return {str(c): str(r) for c, r in rows}


def dropped(drop: Path, name: str, data: bytes) -> None:
    """A file as the LIS writes it in marker mode: the file, then NAME.done."""
    (drop / name).write_bytes(data)
    (drop / f"{name}.done").write_bytes(b"")


def fate(store: Store, control_id: str) -> str:
    """What became of a message: quarantined, held (a result held with its reason),
    processed, refused — or absent (refused at the door, never stored)."""
    with store.engine.connect() as conn:
        row = conn.scalar(select(messages.c.id).where(messages.c.control_id == control_id))
        if row is None:
            return "absent"
        open_entry = conn.scalar(
            select(func.count()).where(
                quarantine.c.message_id == row, quarantine.c.resolved_at.is_(None)
            )
        )
        held = conn.scalar(
            select(func.count()).where(
                held_results.c.message_id == row, held_results.c.resolved_at.is_(None)
            )
        )
        status = conn.scalar(select(messages.c.status).where(messages.c.id == row))
    return "quarantined" if open_entry else "held" if held else str(status)


def cli_json(store_url: str, *args: str) -> Any:
    result = CliRunner().invoke(main, [*args, "--store", store_url])
    assert result.stdout.lstrip().startswith(("{", "[")), result.output
    return json.loads(result.stdout)  # warnings, if any, go to standard error


@pytest.fixture(autouse=True)
def _quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIALBRIDGE_SERVICE_JOBS_SCORES_INTERVAL_SECONDS", "3600")


def test_poison_among_normal_messages_is_isolated_and_a_fixed_one_is_delivered_once(
    fhir_url: str,
    tmp_path: Path,
    own_state_store: str,
    enrol: Callable[..., EnrolledSubject],
    launch: Any,
) -> None:
    tag = "Q" + uuid.uuid4().hex[:5].upper()
    for n in (1, 2, 3):
        enrol(f"MRN00{n}", f"DDSC-T0{n}")
    mappings = tmp_path / "mappings"
    shutil.copytree(MAPPINGS, mappings)
    analytes = mappings / "analytes.yaml"
    fixed = analytes.read_text()
    assert '"[IU]/L": "1"          # enzyme units' in fixed
    analytes.write_text(fixed.replace('"[IU]/L": "1"          # enzyme units', BROKEN, 1))
    drop, port = tmp_path / "drop", free_port()
    drop.mkdir()
    env = {
        "TRIALBRIDGE_MAPPINGS_DIRECTORY": str(mappings),
        "TRIALBRIDGE_SOURCES_MLLP_ENABLED": "true",
        "TRIALBRIDGE_SOURCES_MLLP_PORT": str(port),
        "TRIALBRIDGE_SOURCES_FILE_DROP_ENABLED": "true",
        "TRIALBRIDGE_SOURCES_FILE_DROP_DIRECTORY": str(drop),
        "TRIALBRIDGE_SOURCES_FILE_DROP_POLL_SECONDS": "0.2",
        "TRIALBRIDGE_SOURCES_FILE_DROP_COMPLETE_WHEN": "marker",  # as the docs recommend
    }
    log = tmp_path / "run.log"
    run = launch(own_state_store, fhir_url, log, **env)

    # Normal results of three subjects, over MLLP and the file drop; then the poison, for
    # subject 3 (its normal results came first), each by both ways in.
    expected: dict[str, tuple[str, float]] = {}
    acks: list[str] = []
    poison = poisons(tag, "MRN003", "P")
    with listening(port) as lis:
        for n in range(1, 13):
            mrn = f"MRN00{1 + n % 3}"
            text = result(tag, n, mrn, str(30 + n), notes=(NOTE,))
            expected[f"{tag}{n}"] = ("final", float(30 + n))
            if n % 2:
                acks.append(ack_code(lis.request(text.encode())))
            else:
                dropped(drop, f"{tag}-{n}.hl7", text.encode())
        wait_for(lambda: not list(drop.glob("*.hl7")), 60, "the file drop to take the files")
        for data in poison.values():
            acks.append(ack_code(lis.request(data)))
        lis.send_raw(b"\xff\xfeM\x00S\x00H\x00|\x00\x1c\x0d")  # no start block, UTF-16
        acks.append(ack_code(lis.receive()))
        # The cause a mapping fix removes: subject 1's IU/L result, and a later correction
        # of another order of subject 1 that must wait behind it.
        acks.append(ack_code(lis.request(result(tag, 20, "MRN001", "41", unit="IU/L").encode())))
        acks.append(ack_code(lis.request(result(tag, 21, "MRN001", "45").encode())))
    for n, data in enumerate(poisons(tag, "MRN003", "F").values()):
        dropped(drop, f"{tag}-poison-{n}.hl7", data)
    assert len(acks) == 6 + len(poison) + 1 + 2 and all(acks), acks  # every frame answered
    assert set(acks) <= {"AA", "AE", "AR"}

    with open_store(own_state_store) as store:
        wait_for(lambda: ServiceStore(store).depths().held_back == 1, 60, "M21 held back")
        wait_for(
            lambda: alt_by_order(fhir_url, tag).keys() >= expected.keys(), 60, "normal results"
        )
        wait_for(lambda: not list(drop.glob("*.hl7")), 60, "the poison files taken")
        wait_for(lambda: ServiceStore(store).depths().inbox == 0, 60, "the inbox processed")
        fates = {name: fate(store, f"{tag}-P{n + 1}") for n, name in enumerate(poison)}
        filed = {name: fate(store, f"{tag}-F{n + 1}") for n, name in enumerate(poison)}
        reasons = held_reasons(store, tag)
    assert {k: v for k, v in alt_by_order(fhir_url, tag).items() if k in expected} == expected
    for n, name in enumerate(poison):
        # Quarantined is always right; where the parser and mappers now know the case, the
        # outcome they give (held with the field named, mapped, refused at the door).
        assert fates[name] in (OUTCOMES[name], "quarantined"), (name, fates[name])
        assert filed[name] == fates[name], name  # the same by the file drop
        if fates[name] == "held":
            assert FIELD[name] in reasons[f"{tag}-P{n + 1}"], reasons
    refused_at_door = [n for n, name in enumerate(poison) if fates[name] == "absent"]
    for n in refused_at_door:
        assert acks[6 + n] in ("AE", "AR"), acks  # a NAK, never AA for what was not kept
        assert (drop / "error" / f"{tag}-poison-{n}.hl7").exists()
        assert list((drop / "error").glob(f"{tag}-poison-{n}.hl7*reason*"))
    status = cli_json(own_state_store, "status", "--json")
    listed = {e["message"]: e for e in status["quarantine"]}
    assert listed[f"{tag}-20"]["held_back"] == 1  # M21 waits behind it
    assert listed[f"{tag}-20"]["subject"] == "DDSC-T01"
    assert {m for m in listed if m != f"{tag}-20"} == {
        f"{tag}-{w}{n + 1}" for n, name in enumerate(poison) if fates[name] == "quarantined"
        for w in "PF"
    }  # fmt: skip
    assert status["queues"]["quarantined"] == len(listed)

    def gauge() -> float:
        for line in run.get("/metrics").text.splitlines():
            if line.startswith('trialbridge_queue_depth{queue="quarantined"}'):
                return float(line.split()[-1])
        return -1.0

    wait_for(lambda: gauge() == len(listed), 30, "the quarantine gauge")
    assert 'trialbridge_messages_quarantined_total{stage="process"}' in run.get("/metrics").text
    assert f"{tag}21" not in alt_by_order(fhir_url, tag)  # still waiting

    # The mapping fixed (the service reloads it), the message retried: delivered once, and
    # the result that waited goes after it.
    analytes.write_text(fixed)
    [entry] = [e for e in status["quarantine"] if e["message"] == f"{tag}-20"]
    retried = CliRunner().invoke(
        main, ["quarantine", "retry", str(entry["id"]), "--store", own_state_store]
    )
    assert retried.exit_code == 0, retried.output
    wait_for(lambda: f"{tag}21" in alt_by_order(fhir_url, tag), 60, "the retried message")
    assert alt_by_order(fhir_url, tag)[f"{tag}20"] == ("final", 41.0)  # once (or it fails)
    assert run.stop() == 0

    text = log.read_text()
    assert len(text) < 100_000, len(text)  # no flood (20 KB of empty escapes: no line each)
    assert NOTE not in text and "anxious" not in text and "MRN00" not in text
    assert '"event":"job.failed"' not in text  # no job failed, let alone every second
