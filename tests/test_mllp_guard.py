"""Who may write trial results through the MLLP port: a peer outside ``allowed_peers`` is
refused (127.0.0.2 is a second loopback address Linux routes), a client certificate not
signed by ``tls_ca`` is refused, and a listener beyond the loopback with neither guard does
not start. Over real sockets, with certificates made for the test, and the real process."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from adapter.errors import ConfigError, SourceError
from adapter.intake import Intake
from adapter.sources import Background, MllpSource
from adapter.sources.client import MllpClient
from adapter.sources.config import MllpConfig, Tls, sources_config
from adapter.sources.events import Recorder
from adapter.sources.framing import frame
from adapter.store import open_store
from adapter.trial.enrolment import EnrolledSubject
from adapter.trial.registry import Registry
from adapter.trial.study import load_study
from tests.test_service_mllp import free_port, listening
from tests.test_service_run import launch
from tests.test_sources_mllp import message, msa, stored

__all__ = ["launch"]
TRIALBRIDGE = str(Path(sys.executable).parent / "trialbridge")
OTHER_LOOPBACK = "127.0.0.2"


# Certificates -----------------------------------------------------------------------------


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _issue(
    folder: Path,
    stem: str,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    server: bool = False,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A key and a certificate (a CA when ``issuer`` is None), written as stem.pem/.key."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    signer_cert, signer_key = issuer if issuer else (None, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(stem))
        .issuer_name(signer_cert.subject if signer_cert else _name(stem))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), True)
    )
    if issuer is None:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        builder = builder.add_extension(usage, critical=True)
    elif server:
        san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    cert = builder.sign(signer_key, hashes.SHA256())
    (folder / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{stem}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca, server (signed by ca), lis (a client signed by ca), and rogue (a client signed
    by another CA, rogue-ca)."""
    folder = tmp_path_factory.mktemp("pki")
    ca = _issue(folder, "ca", None)
    _issue(folder, "server", ca, server=True)
    _issue(folder, "lis", ca)
    _issue(folder, "rogue", _issue(folder, "rogue-ca", None))
    return folder


# The listener in this process -------------------------------------------------------------


@pytest.fixture
def intake(own_state_store: str, enrol: Callable[..., EnrolledSubject]) -> Iterator[Intake]:
    enrol()
    with open_store(own_state_store) as store:
        yield Intake(store, Registry(store, load_study()))


def serve(intake: Intake, config: MllpConfig) -> tuple[Background, MllpSource, Recorder]:
    events = Recorder()
    source = MllpSource(config, events=events)
    return Background(lambda stop: source.serve(intake, stop)), source, events


def from_address(source: str, port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))


def closed_without_reply(sock: socket.socket) -> bool:
    """The listener closed ``sock`` without a byte (a reset when our frame was unread)."""
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def test_a_peer_outside_the_allow_list_is_refused_before_anything_is_read(
    intake: Intake,
) -> None:
    allowed = (ipaddress.ip_network("127.0.0.1/32"),)
    background, source, events = serve(intake, MllpConfig(port=0, allowed_peers=allowed))
    with background:
        port = source.wait_ready()
        with from_address(OTHER_LOOPBACK, port) as stranger:
            stranger.sendall(frame(message("STRANGER1")))
            assert closed_without_reply(stranger)  # no ACK: it was never read
        with from_address("127.0.0.1", port) as lis:
            lis.sendall(frame(message("LIS1")))
            assert msa(lis.recv(65536)[1:-2])[1:3] == ["AA", "LIS1"]
    assert events.named("mllp.refused") == [{"reason": "peer_not_allowed", "peer": OTHER_LOOPBACK}]
    assert stored(intake.store, "STRANGER1") == 0 and stored(intake.store, "LIS1") == 1


def test_a_client_certificate_not_signed_by_tls_ca_is_refused(intake: Intake, pki: Path) -> None:
    tls = Tls(pki / "server.pem", pki / "server.key", pki / "ca.pem")
    background, source, events = serve(intake, MllpConfig(port=0, tls=tls))

    def send(client_tls: Tls, control_id: str) -> list[str]:
        context = client_tls.client_context()
        with MllpClient("127.0.0.1", port, timeout=10, tls=context) as client:
            return msa(client.request(message(control_id)))

    with background:
        port = source.wait_ready()
        assert send(Tls(pki / "lis.pem", pki / "lis.key", pki / "ca.pem"), "MTLS1")[1] == "AA"
        with pytest.raises(SourceError):  # at the handshake or, in TLS 1.3, at the reply
            send(Tls(pki / "rogue.pem", pki / "rogue.key", pki / "ca.pem"), "ROGUE1")
        with pytest.raises(SourceError):
            send(Tls(ca=pki / "ca.pem"), "NOCERT1")  # no client certificate at all
    refused = events.named("mllp.refused")
    assert [e["reason"] for e in refused] == ["tls_handshake", "tls_handshake"]
    assert stored(intake.store) == 1


def test_mllp_send_presents_a_client_certificate(intake: Intake, pki: Path, tmp_path: Path) -> None:
    tls = Tls(pki / "server.pem", pki / "server.key", pki / "ca.pem")
    background, source, _ = serve(intake, MllpConfig(port=0, tls=tls))
    (tmp_path / "one.hl7").write_bytes(message("CLI1"))
    with background:
        port = str(source.wait_ready())

        def mllp_send(client: str) -> subprocess.CompletedProcess[str]:
            options = ["--ca", str(pki / "ca.pem"), "--cert", str(pki / f"{client}.pem")]
            options += ["--key", str(pki / f"{client}.key"), "--timeout", "10"]
            command = [TRIALBRIDGE, "mllp-send", str(tmp_path / "one.hl7"), "--port", port]
            return subprocess.run(command + options, capture_output=True, text=True, timeout=60)

        good, rogue = mllp_send("lis"), mllp_send("rogue")
    assert (good.returncode, good.stdout.strip()) == (0, "one.hl7#1: AA CLI1")
    assert rogue.returncode == 1 and "127.0.0.1:" in rogue.stderr, rogue.stderr
    assert stored(intake.store, "CLI1") == 1


# Listening beyond the loopback --------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::", "10.1.2.3", "lis-gateway.example"])
def test_listening_beyond_the_loopback_needs_a_guard(host: str, pki: Path) -> None:
    with pytest.raises(ConfigError, match=r"allowed_peers.*tls_ca.*allow_any"):
        sources_config({"mllp": {"enabled": True, "host": host}})
    guarded: list[dict[str, Any]] = [
        {"allowed_peers": ["10.20.30.0/24", "10.20.31.7"]},
        {"allowed_peers": "10.20.30.0/24,10.20.31.7"},  # as an environment override gives it
        {"tls_cert": str(pki / "server.pem"), "tls_key": str(pki / "server.key"),
         "tls_ca": str(pki / "ca.pem")},
        {"allow_any": "true"},
    ]  # fmt: skip
    for guard in guarded:
        config = sources_config({"mllp": {"enabled": True, "host": host, **guard}}).mllp
        assert config.exposure() is None
    for loopback in ("127.0.0.1", "::1", "localhost", "127.0.0.5"):
        assert sources_config({"mllp": {"enabled": True, "host": loopback}}).mllp.exposure() is None


def test_a_bad_allow_list_entry_is_named() -> None:
    with pytest.raises(ConfigError, match=r"sources\.mllp\.allowed_peers holds '10\.0\.0\.300'"):
        sources_config({"mllp": {"allowed_peers": ["10.0.0.0/8", "10.0.0.300"]}})


def test_an_unguarded_listener_built_by_hand_does_not_start(intake: Intake) -> None:
    background, source, _ = serve(intake, MllpConfig(enabled=True, host="0.0.0.0", port=0))
    with pytest.raises(ConfigError, match="beyond the loopback"), background:
        pass
    assert not source.ready.is_set()


# The real process -------------------------------------------------------------------------


def test_the_service_refuses_a_peer_and_an_unguarded_host(
    fhir_url: str, tmp_path: Path, own_state_store: str, launch: Any, intake: Intake
) -> None:
    port = free_port()
    env = {
        "TRIALBRIDGE_SOURCES_MLLP_ENABLED": "true",
        "TRIALBRIDGE_SOURCES_MLLP_PORT": str(port),
        "TRIALBRIDGE_SERVICE_JOBS_SCORES_INTERVAL_SECONDS": "3600",
    }
    unguarded = subprocess.run(
        [TRIALBRIDGE, "run", "--fhir-url", fhir_url, "--http-port", "0"],
        env={**_environ(), **env, "TRIALBRIDGE_SOURCES_MLLP_HOST": "0.0.0.0"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert unguarded.returncode != 0
    assert "sources.mllp.host 0.0.0.0 listens beyond the loopback" in unguarded.stderr
    log = tmp_path / "run.log"
    env["TRIALBRIDGE_SOURCES_MLLP_ALLOWED_PEERS"] = "127.0.0.1"
    run = launch(own_state_store, fhir_url, log, **env)
    with listening(port) as lis:
        assert msa(lis.request(message("SVC1")))[1:3] == ["AA", "SVC1"]
    with from_address(OTHER_LOOPBACK, port) as stranger:
        stranger.sendall(frame(message("SVC2")))
        assert closed_without_reply(stranger)
    metrics = run.get("/metrics").text
    assert run.stop() == 0
    text = log.read_text()
    assert "mllp.refused" in text and "peer_not_allowed" in text and "SVC2" not in text
    assert 'trialbridge_limits_hit_total{limit="peer_not_allowed",source="mllp"} 1.0' in metrics
    assert stored(intake.store, "SVC2") == 0 and stored(intake.store, "SVC1") == 1


def _environ() -> dict[str, str]:
    return dict(os.environ)


def test_allow_any_is_explicit_and_logged_as_a_warning(intake: Intake) -> None:
    config = MllpConfig(enabled=True, host="0.0.0.0", port=0, allow_any=True)
    background, source, events = serve(intake, config)
    with background:
        port = source.wait_ready()
        with from_address(OTHER_LOOPBACK, port) as anyone:
            anyone.sendall(frame(message("ANY1")))
            assert msa(anyone.recv(65536)[1:-2])[1:3] == ["AA", "ANY1"]
    [listening_event] = events.named("mllp.listening")
    assert listening_event["guard"] == "allow_any" and listening_event["host"] == "0.0.0.0"


def test_a_connection_stalled_in_its_tls_handshake_counts_and_does_not_hold_up_a_stop(
    intake: Intake, pki: Path
) -> None:
    tls = Tls(pki / "server.pem", pki / "server.key", pki / "ca.pem")
    config = MllpConfig(port=0, tls=tls, max_connections=1, half_frame_timeout_seconds=300)
    background, source, events = serve(intake, config)
    with background:  # stop() gives up after 30 s: the stalled handshake must not hold it
        port = source.wait_ready()
        stalled = socket.create_connection(("127.0.0.1", port), timeout=10)  # no ClientHello
        deadline = time.monotonic() + 10
        while not source._handshaking:
            assert time.monotonic() < deadline, "the stalled connection was never taken"
            time.sleep(0.02)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as second:
            assert closed_without_reply(second)
    stalled.close()
    assert [e["limit"] for e in events.named("mllp.limit")] == ["max_connections"]
