"""The MLLP listener over real sockets into a real SQLite store: ACK only after commit."""

from __future__ import annotations

import codecs
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from adapter.errors import StoreError
from adapter.intake import Intake
from adapter.sources import Background, MllpSource
from adapter.sources.client import MllpClient
from adapter.sources.config import MllpConfig, Tls
from adapter.sources.framing import FrameDecoder, frame
from adapter.store import Store, open_store
from adapter.store.schema import messages
from adapter.trial.enrolment import EnrolledSubject
from adapter.trial.registry import Registry
from adapter.trial.study import load_study
from tests.messages import ALT, obx, oru


def message(control_id: str, mrn: str = "MRN001", value: str = "42") -> bytes:
    return oru(obx(1, ALT, value, "U/L"), message_id=control_id, mrn=mrn).encode()


def msa(ack: bytes) -> list[str]:
    return next(s for s in ack.decode("latin-1").split("\r") if s.startswith("MSA")).split("|")


def stored(store: Store, control_id: str | None = None) -> int:
    query = select(func.count()).select_from(messages)
    if control_id is not None:
        query = query.where(messages.c.control_id == control_id)
    with store.engine.connect() as conn:
        return int(conn.scalar(query) or 0)


@pytest.fixture
def intake(own_state_store: str, enrol: Callable[..., EnrolledSubject]) -> Iterator[Intake]:
    enrol()
    with open_store(own_state_store) as store:
        yield Intake(store, Registry(store, load_study()))


def listen(intake: Intake, config: MllpConfig | None = None) -> tuple[Background, MllpSource]:
    source = MllpSource(config or MllpConfig(port=0))
    return Background(lambda stop: source.serve(intake, stop)), source


@pytest.fixture
def port(intake: Intake) -> Iterator[int]:
    background, source = listen(intake)
    with background:
        yield source.wait_ready()


def test_aa_only_after_the_message_is_in_the_store(intake: Intake, port: int) -> None:
    with MllpClient("127.0.0.1", port, timeout=10) as client:
        for i in range(20):
            ack = client.request(message(f"C{i:03d}"))
            assert msa(ack)[1:3] == ["AA", f"C{i:03d}"]
            assert stored(intake.store, f"C{i:03d}") == 1  # committed before the ACK left


def test_the_ack_header(port: int) -> None:
    with MllpClient("127.0.0.1", port, timeout=10) as client:
        msh = client.request(message("HDR1")).decode().split("\r")[0].split("|")
    assert msh[2:6] == ["TRIALBRIDGE", "NTCH", "NTC-LIS", "NTCH"]
    assert msh[8] == "ACK^R01^ACK" and msh[11] == "2.5.1"
    assert msh[9] and msh[9] != "HDR1"


def test_a_patient_not_enrolled_is_acked_and_forgotten(intake: Intake, port: int) -> None:
    with MllpClient("127.0.0.1", port, timeout=10) as client:
        assert msa(client.request(message("OTHER1", mrn="X999")))[1:3] == ["AA", "OTHER1"]
    assert stored(intake.store) == 0


def test_enrolment_and_withdrawal_by_another_process_apply_to_the_next_message(
    intake: Intake, port: int, enrol: Callable[..., EnrolledSubject], fhir_url: str
) -> None:
    """The gate runs on the listener's cached index: a change committed elsewhere must still
    decide the very next message (the registry is re-read after any commit to the store)."""
    with MllpClient("127.0.0.1", port, timeout=10) as client:
        assert msa(client.request(message("LATE1", mrn="MRN002")))[1] == "AA"
        assert stored(intake.store, "LATE1") == 0  # not enrolled yet: forgotten
        enrol("MRN002", "DDSC-T02")
        assert msa(client.request(message("LATE2", mrn="MRN002")))[1] == "AA"
        assert stored(intake.store, "LATE2") == 1
        withdraw = [str(Path(sys.executable).parent / "trialbridge"), "withdraw", "DDSC-T02"]
        subprocess.run([*withdraw, "--fhir-url", fhir_url], check=True, capture_output=True)
        assert msa(client.request(message("LATE3", mrn="MRN002")))[1] == "AA"
        assert stored(intake.store, "LATE3") == 0  # withdrawn by the CLI: forgotten again


def test_a_frame_holding_two_messages_is_refused_whole(intake: Intake, port: int) -> None:
    two = message("TWO1") + b"\r" + message("TWO2")
    with MllpClient("127.0.0.1", port, timeout=10) as client:
        nak = client.request(two).decode("latin-1").split("\r")
    assert msa(nak[1].encode())[1:3] == ["AE", "TWO1"]  # content: not to be resent as is
    assert nak[2].split("|")[3].startswith("100^")
    assert stored(intake.store) == 0  # neither is acknowledged as stored: the sender splits


@pytest.mark.parametrize(
    ("payload", "code", "error"),
    [
        (b"not hl7 at all", "AE", "100"),
        (message("BAD1").replace(b"ORU^R01^ORU_R01", b"ORM^O01"), "AR", "200"),  # 2.9.2.1
        (message("BAD2").replace(b"|BAD2|", b"||"), "AE", "101"),
        (message("BAD3").replace(b"|42|", b"|4\xff2|"), "AE", "102"),
    ],
)
def test_bad_input_gets_a_nak_naming_it_and_the_connection_goes_on(
    intake: Intake, port: int, payload: bytes, code: str, error: str
) -> None:
    with MllpClient("127.0.0.1", port, timeout=10) as client:
        nak = client.request(payload).decode("latin-1").split("\r")
        assert nak[1].split("|")[1] == code
        assert nak[2].split("|")[3].startswith(f"{error}^")
        assert msa(client.request(message("AFTER1")))[1:3] == ["AA", "AFTER1"]
    assert stored(intake.store) == 1


def test_a_bad_frame_then_a_good_message_on_the_same_connection(intake: Intake, port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"\x0bcut short" + b"stray bytes\x1c\r" + frame(message("GOOD1")))
        replies = read_frames(sock, 2)
    assert msa(replies[0])[1] == "AE"
    assert msa(replies[1])[1:3] == ["AA", "GOOD1"]
    assert stored(intake.store, "GOOD1") == 1


def read_frames(sock: socket.socket, count: int) -> list[bytes]:
    decoder = FrameDecoder()
    frames: list[bytes] = []
    while len(frames) < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        frames += [f for f in decoder.feed(chunk) if isinstance(f, bytes)]
    return frames


def test_several_peers_at_once_on_persistent_connections(intake: Intake, port: int) -> None:
    errors: list[str] = []

    def peer(number: int) -> None:
        with MllpClient("127.0.0.1", port, timeout=20) as client:
            for i in range(50):
                control_id = f"P{number}-{i:03d}"
                answer = msa(client.request(message(control_id, value=str(i))))
                if answer[1:3] != ["AA", control_id]:
                    errors.append(f"{control_id}: {answer}")

    threads = [threading.Thread(target=peer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert stored(intake.store) == 200


def test_pipelined_frames_are_acked_in_order(intake: Intake, port: int) -> None:
    ids = [f"PIPE{i:03d}" for i in range(100)]
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(b"".join(frame(message(c, value=str(i))) for i, c in enumerate(ids)))
        acks = read_frames(sock, 100)
    assert [msa(a)[2] for a in acks] == ids
    assert stored(intake.store) == 100


def test_a_resend_of_an_unacked_message_lands_once(intake: Intake, port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(frame(message("RESEND1")))  # the sender gives up before the ACK
    with MllpClient("127.0.0.1", port, timeout=10) as client:
        assert msa(client.request(message("RESEND1")))[1:3] == ["AA", "RESEND1"]
        assert msa(client.request(message("RESEND1")))[1:3] == ["AA", "RESEND1"]
    assert stored(intake.store, "RESEND1") == 1


def test_stop_acks_only_what_was_committed_then_closes(intake: Intake) -> None:
    background, source = listen(intake)
    ids = [f"STOP{i:03d}" for i in range(300)]
    with background:
        port = source.wait_ready()
        sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        sock.sendall(b"".join(frame(message(c, value=str(i))) for i, c in enumerate(ids)))
        first = read_frames(sock, 1)
    acks = first + read_frames(sock, len(ids))  # until the listener closes the connection
    sock.close()
    acked = [msa(a)[2] for a in acks]
    assert acked == ids[: len(acked)]
    assert all(stored(intake.store, c) == 1 for c in acked)


def test_a_store_failure_is_an_ar_and_the_listener_keeps_going(intake: Intake, port: int) -> None:
    """HL7 v2.5.1 2.9.2.2 c): a failure unrelated to the content is AR, and the same
    message is accepted when sent again."""
    commit = intake.commit
    calls = {"n": 0}

    def failing_once(batch: list[object], verdicts: list[str]) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("disk full")
        return commit(batch, verdicts)  # type: ignore[arg-type]

    intake.commit = failing_once  # type: ignore[assignment,method-assign]
    with MllpClient("127.0.0.1", port, timeout=10) as client:
        nak = client.request(message("FAIL1")).decode().split("\r")
        assert nak[1].startswith("MSA|AR|FAIL1|")
        assert nak[2].split("|")[3].startswith("207^")
        assert msa(client.request(message("FAIL1")))[1:3] == ["AA", "FAIL1"]
    assert stored(intake.store, "FAIL1") == 1


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_tls(intake: Intake, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    background, source = listen(intake, MllpConfig(port=0, tls=Tls(cert, key)))
    with background:
        port = source.wait_ready()
        context = Tls(ca=cert).client_context()
        with MllpClient("127.0.0.1", port, timeout=10, tls=context) as client:
            assert msa(client.request(message("TLS1")))[1:3] == ["AA", "TLS1"]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
            plain.sendall(frame(message("PLAIN1")))  # no TLS: refused, the listener lives on
            with pytest.raises(OSError):
                if not plain.recv(100):
                    raise ConnectionResetError
        untrusted = ssl.create_default_context()
        with pytest.raises(Exception, match="certificate verify failed"):
            MllpClient("127.0.0.1", port, timeout=10, tls=untrusted)
        with MllpClient("127.0.0.1", port, timeout=10, tls=context) as client:
            assert msa(client.request(message("TLS2")))[1:3] == ["AA", "TLS2"]
    assert stored(intake.store) == 2


def err(ack: bytes) -> list[str]:
    return next(s for s in ack.decode("latin-1").split("\r") if s.startswith("ERR")).split("|")


@pytest.mark.parametrize(
    "payload",
    [
        message("MU1").replace(b"ORU^R01^ORU_R01", "ORU^µ".encode()),  # UTF-8, as declared
        oru(obx(1, ALT, "42", "U/L"), message_id="MU1", charset="8859/1")
        .replace("ORU^R01^ORU_R01", "ORU^ÿ")
        .encode("latin-1"),
    ],
    ids=["micro-utf8", "y-diaeresis-latin1"],
)
def test_a_trigger_outside_ascii_is_acked_every_time(
    intake: Intake, port: int, payload: bytes
) -> None:
    """µ and ÿ upper-case to letters outside Latin-1: the ACK used to fail after the commit,
    and every resend had its connection dropped (a lock-step LIS stuck forever)."""
    with MllpClient("127.0.0.1", port, timeout=10) as client:
        for _ in range(2):  # the resend is answered too, on the same connection
            ack = client.request(payload)
            assert msa(ack)[1:3] == ["AA", "MU1"]
            assert ack.split(b"\r")[0].split(b"|")[8] == b"ACK"  # no trigger echoed
        assert msa(client.request(message("AFTER2")))[1:3] == ["AA", "AFTER2"]
    assert stored(intake.store, "MU1") == 1


def test_unframed_bytes_with_a_utf16_bom_get_an_ae_and_the_connection_goes_on(
    intake: Intake, port: int
) -> None:
    wide = codecs.BOM_UTF16_LE + message("WIDE1").decode().encode("utf-16-le") + b"\x00"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(wide + b"\x1c\r" + frame(wide) + frame(message("GOOD2")))
        replies = read_frames(sock, 3)
    unframed, framed, good = replies  # each answered, neither of the first two to be resent
    assert msa(unframed)[1] == "AE" and "no start block" in msa(unframed)[3]
    assert err(unframed)[3:5] == ["100^Segment sequence error^HL70357", "E"]
    assert msa(framed)[1] == "AE" and "byte-order mark" in msa(framed)[3]
    assert err(framed)[2:5] == ["MSH^1^18", "102^Data type error^HL70357", "E"]
    assert msa(good)[1:3] == ["AA", "GOOD2"]
    assert stored(intake.store) == 1


@pytest.mark.parametrize("charset", ["quopri", "punycode", "base64"])
def test_an_msh18_naming_a_non_text_codec_is_an_ae_not_an_invitation_to_resend(
    intake: Intake, port: int, charset: str
) -> None:
    payload = oru(obx(1, ALT, "42", "U/L"), message_id="CS1", charset=charset).encode()
    with MllpClient("127.0.0.1", port, timeout=10) as client:
        ack = client.request(payload)
    assert msa(ack)[1:3] == ["AE", "CS1"]
    assert err(ack)[2:4] == ["MSH^1^18", "102^Data type error^HL70357"]
    assert "again" not in ack.decode("latin-1")
    assert stored(intake.store) == 0


def test_mllp_send_prints_where_and_which_error(port: int, tmp_path: Path) -> None:
    order = message("ORD1").replace(b"ORU^R01^ORU_R01", b"ORM^O01")
    (tmp_path / "order.hl7").write_bytes(order)
    (tmp_path / "result.hl7").write_bytes(message("RES1"))
    command = [str(Path(sys.executable).parent / "trialbridge"), "mllp-send"]
    command += [str(tmp_path / "result.hl7"), str(tmp_path / "order.hl7"), "--port", str(port)]
    sent = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert sent.stdout.splitlines() == [
        "result.hl7#1: AA RES1",
        "order.hl7#1: AR ORD1 [MSH^1^9 200] message type ORM is not ORU or ADT: route only "
        "ORU and ADT messages here",
    ]
    assert sent.returncode == 1 and "1 message(s) were not accepted" in sent.stderr


def test_a_registry_that_cannot_be_read_is_ar_and_a_message_that_breaks_the_gate_is_ae(
    intake: Intake, port: int
) -> None:
    """2.9.2.2 c) versus b): the store failing is not the message's fault (AR: resend it
    later); an exception that this message's own bytes cause would come again (AE)."""
    triage = intake.triage
    state = {"store_down": True}

    def gate(raws: list[bytes]) -> list[str]:
        if state["store_down"]:
            raise StoreError("the state store is locked")
        if any(b"|POISON|" in raw for raw in raws):
            raise IndexError("a bug on these bytes")
        return triage(raws)

    intake.triage = gate  # type: ignore[assignment,method-assign]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(frame(message("DOWN1")))
        [down] = read_frames(sock, 1)
        state["store_down"] = False
        sock.sendall(frame(message("DOWN1")) + frame(message("POISON")) + frame(message("OK1")))
        resent, poison, ok = read_frames(sock, 3)
    assert msa(down)[1:3] == ["AR", "DOWN1"] and "send the same message later" in msa(down)[3]
    assert err(down)[3].startswith("207^")
    assert msa(resent)[1:3] == ["AA", "DOWN1"]
    assert msa(poison)[1:3] == ["AE", "POISON"] and "do not resend it" in msa(poison)[3]
    assert msa(ok)[1:3] == ["AA", "OK1"]
    assert stored(intake.store) == 2
