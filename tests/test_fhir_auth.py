"""FhirClient against real HTTP servers on loopback: authentication (bearer, basic, SMART
backend services, mutual TLS), retries with backoff and Retry-After, and no secret in logs or
errors."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from adapter.auth import (
    ClientAuth,
    Secret,
    SmartBackendAuth,
    SmartClient,
    load_auth,
    load_private_key,
)
from adapter.errors import ConfigError, FhirError, FhirUnavailableError
from adapter.fhir_client import FhirClient, retry_after

OK = {"resourceType": "Bundle", "type": "searchset", "entry": []}
BAD_REQUEST = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "invalid", "diagnostics": "status 'bogus' unknown"}],
}
TOKEN = "s3cret-bearer-tok"
PASSWORD = "pa55-w0rd-xyz"


# A scripted FHIR server ---------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: dict[str, Any] = field(default_factory=lambda: OK)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    peer: Any = None


class Handler(BaseHTTPRequestHandler):
    server: Server

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
        seen = Seen(self.command, self.path, dict(self.headers), body, time.monotonic(), peer)
        self.server.seen.append(seen)
        reply = self.server.respond(seen)
        data = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        for name, value in {"Content-Type": "application/fhir+json", **reply.headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, respond: Callable[[Seen], Reply]) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.respond = respond
        self.seen: list[Seen] = []

    @property
    def url(self) -> str:
        scheme = "https" if isinstance(self.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://127.0.0.1:{self.server_address[1]}/fhir"


def script(*replies: Reply) -> Callable[[Seen], Reply]:
    """Answer with each reply in turn, then the last one again."""
    queue = list(replies)
    return lambda seen: queue.pop(0) if len(queue) > 1 else queue[0]


@contextmanager
def serve(
    respond: Callable[[Seen], Reply], port: int = 0, tls: ssl.SSLContext | None = None
) -> Iterator[Server]:
    server = Server(port, respond)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Waits(list[float]):
    """A sleep that records each wait (and really waits, when asked)."""

    def __init__(self, real: bool = False) -> None:
        super().__init__()
        self.real = real

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        if self.real:
            time.sleep(seconds)


# Bearer and basic ---------------------------------------------------------------------------


def test_a_bearer_token_from_the_environment_arrives(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    auth = load_auth({"mode": "bearer", "token_env": "FHIR_TOKEN"}, environ={"FHIR_TOKEN": TOKEN})
    with serve(script(Reply())) as server, FhirClient(server.url, auth=auth) as client:
        client.search("Observation", {"code": "1742-6"})
    assert server.seen[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in repr(auth) + repr(client) + caplog.text


def test_a_bearer_token_from_a_file_and_a_refusal_that_names_no_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    (tmp_path / "token").write_text(TOKEN + "\n")
    auth = load_auth({"mode": "bearer", "token_file": str(tmp_path / "token")})
    denied = Reply(401, {"resourceType": "OperationOutcome", "issue": [{"code": "login"}]})
    with (
        serve(script(denied)) as server,
        FhirClient(server.url, auth=auth) as client,
        pytest.raises(FhirError) as refused,
    ):
        client.read("Patient", "1")
    assert server.seen[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert refused.value.status == 401 and not refused.value.retryable
    assert "check fhir.auth" in str(refused.value)
    assert TOKEN not in str(refused.value) + caplog.text


def test_basic_credentials_arrive_and_stay_out_of_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    environ = {"FHIR_PASSWORD": PASSWORD}
    auth = load_auth(
        {"mode": "basic", "username": "trialbridge", "password_env": "FHIR_PASSWORD"},
        environ=environ,
    )
    with serve(script(Reply())) as server, FhirClient(server.url, auth=auth) as client:
        client.read("Patient", "1")
    header = server.seen[0].headers["Authorization"]
    assert header.startswith("Basic ")
    import base64

    assert base64.b64decode(header.removeprefix("Basic ")).decode() == f"trialbridge:{PASSWORD}"
    assert PASSWORD not in repr(auth) + caplog.text


def test_missing_secrets_are_config_errors_that_name_where_not_what(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="FHIR_TOKEN, which is not set"):
        load_auth({"mode": "bearer", "token_env": "FHIR_TOKEN"}, environ={})
    with pytest.raises(ConfigError, match=r"token_env or fhir\.auth\.token_file"):
        load_auth({"mode": "bearer"}, environ={})
    with pytest.raises(ConfigError, match="must be one of"):
        load_auth({"mode": "kerberos"}, environ={})
    (tmp_path / "key.pem").write_text("not a key " + PASSWORD)
    smart = {
        "mode": "smart", "client_id": "tb", "token_url": "https://x/token",
        "scope": "system/*.cruds", "private_key_file": str(tmp_path / "key.pem"),
    }  # fmt: skip
    with pytest.raises(ConfigError) as bad_key:
        load_auth(smart, environ={})
    assert "private_key_file" in str(bad_key.value) and PASSWORD not in str(bad_key.value)
    with pytest.raises(ConfigError, match="at most 300"):
        load_auth({**smart, "assertion_lifetime_seconds": "3600"}, environ={})
    assert repr(Secret(PASSWORD)) == "Secret(<redacted>)"


def test_the_default_configuration_has_no_credentials() -> None:
    from adapter.config import load_settings

    with FhirClient.from_settings(load_settings(), retries=0) as client:
        assert client.auth.mode == "none" and client.session.auth is None
        assert client.retries == 0


# SMART backend services ---------------------------------------------------------------------


class TokenEndpoint:
    """A tiny authorization server: checks the JWT assertion against the registered public key
    and issues short-lived tokens; the FHIR side accepts only tokens it issued and not revoked."""

    def __init__(self, public_key: Any, client_id: str, algorithm: str) -> None:
        self.key, self.client_id, self.algorithm = public_key, client_id, algorithm
        self.issued: list[str] = []
        self.revoked: set[str] = set()
        self.jtis: set[str] = set()
        self.lifetimes: list[int] = []
        self.url = ""

    def respond(self, seen: Seen) -> Reply:
        if seen.path.endswith("/token"):
            return self._token(parse_qs(seen.body.decode()))
        token = seen.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.issued or token in self.revoked:
            return Reply(401, {"resourceType": "OperationOutcome", "issue": [{"code": "login"}]})
        return Reply()

    def _token(self, form: dict[str, list[str]]) -> Reply:
        assert form["grant_type"] == ["client_credentials"]
        assert form["client_assertion_type"] == [
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        ]
        assert form["scope"] == ["system/Observation.cu system/Patient.cu"]
        decoded = jwt.decode(form["client_assertion"][0], self.key, algorithms=[self.algorithm])
        claims = decoded.claims
        assert decoded.header["alg"] == self.algorithm and decoded.header["kid"] == "tb-key-1"
        assert claims["iss"] == claims["sub"] == self.client_id and claims["aud"] == self.url
        assert claims["exp"] - claims["iat"] <= 300 and claims["exp"] > time.time()
        assert claims["jti"] not in self.jtis
        self.jtis.add(claims["jti"])
        self.lifetimes.append(claims["exp"] - claims["iat"])
        token = f"access-{len(self.issued) + 1}-s3cret"
        self.issued.append(token)
        body = {"access_token": token, "token_type": "bearer", "expires_in": 300}
        return Reply(200, body, {"Content-Type": "application/json"})


def rsa_key_files(tmp_path: Path) -> tuple[Path, Any]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "smart-key.pem"
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return path, RSAKey.import_key(public)


def smart_config(key_file: Path, token_url: str) -> dict[str, str]:
    return {
        "mode": "smart",
        "client_id": "trialbridge-ddsc",
        "token_url": token_url,
        "scope": "system/Observation.cu system/Patient.cu",
        "private_key_file": str(key_file),
        "key_id": "tb-key-1",
        "algorithm": "RS384",
    }


def test_smart_backend_services_token_is_fetched_cached_and_refreshed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key_file, public = rsa_key_files(tmp_path)
    endpoint = TokenEndpoint(public, "trialbridge-ddsc", "RS384")
    with serve(endpoint.respond) as server:
        endpoint.url = server.url.removesuffix("/fhir") + "/token"
        auth = load_auth(smart_config(key_file, endpoint.url))
        assert isinstance(auth.http, SmartBackendAuth)
        now = [time.time()]
        auth.http._clock = lambda: now[0]
        with FhirClient(server.url, auth=auth, retries=0) as client:
            for _ in range(3):
                client.read("Patient", "1")
            assert auth.http.fetches == 1  # cached
            now[0] += 269  # 300 s token, refreshed 30 s before expiry
            client.read("Patient", "1")
            assert auth.http.fetches == 1
            now[0] += 2
            client.read("Patient", "1")
            assert auth.http.fetches == 2
            endpoint.revoked.add(endpoint.issued[-1])  # the server forgets the token: 401
            client.read("Patient", "1")
            assert auth.http.fetches == 3
    assert endpoint.lifetimes == [300, 300, 300] and len(endpoint.jtis) == 3
    fhir_calls = [s for s in server.seen if s.path.startswith("/fhir")]
    first, second, third = endpoint.issued
    used = [s.headers["Authorization"].removeprefix("Bearer ") for s in fhir_calls]
    assert used == [first] * 4 + [second] * 2 + [third]
    for token in endpoint.issued:
        assert token not in caplog.text
    assert "fhir.token.fetched" in caplog.text


def test_smart_with_an_es384_key_and_a_refusing_token_endpoint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    private = ec.generate_private_key(ec.SECP384R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSWORD.encode()),
    ).decode()
    key = load_private_key(Secret(pem), "ES384", Secret(PASSWORD))
    public = ECKey.import_key(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    endpoint = TokenEndpoint(public, "tb", "ES384")
    refusal = Reply(400, {"error": "invalid_client", "error_description": "unknown kid"})
    scope = "system/Observation.cu system/Patient.cu"
    with serve(endpoint.respond) as server:
        endpoint.url = server.url.removesuffix("/fhir") + "/token"
        smart = SmartBackendAuth(SmartClient("tb", endpoint.url, scope, "ES384", "tb-key-1"), key)
        with FhirClient(server.url, auth=ClientAuth("smart", smart), retries=0) as client:
            client.read("Patient", "1")
    assert smart.fetches == 1 and endpoint.lifetimes == [300]
    with serve(script(refusal)) as server:
        smart = SmartBackendAuth(SmartClient("tb", server.url + "/token", scope, "ES384"), key)
        with (
            FhirClient(server.url, auth=ClientAuth("smart", smart), retries=0) as client,
            pytest.raises(FhirError) as refused,
        ):
            client.read("Patient", "1")
    assert "invalid_client (unknown kid)" in str(refused.value)
    assert not refused.value.retryable
    assert PASSWORD not in caplog.text + str(refused.value)


# Mutual TLS ---------------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str, key: Any, issuer: tuple[x509.Name, Any] | None, *, ca: bool = False
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        import ipaddress

        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: Any) -> tuple[Path, Path]:
    cert_path, key_path = path.with_suffix(".crt"), path.with_suffix(".key")
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all from the CA."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("TrialBridge test CA", ca_key, None, ca=True)
    files = {}
    files["ca"], _ = _write(tmp_path / "ca", ca, ca_key)
    for who in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(f"trialbridge-{who}", key, (ca.subject, ca_key))
        files[f"{who}_cert"], files[f"{who}_key"] = _write(tmp_path / who, cert, key)
    return files


def mtls_server_context(pki: dict[str, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki["server_cert"], pki["server_key"])
    context.load_verify_locations(pki["ca"])
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def test_mutual_tls_presents_the_client_certificate(pki: dict[str, Path]) -> None:
    auth = load_auth(
        {
            "mode": "mtls",
            "client_cert_file": str(pki["client_cert"]),
            "client_key_file": str(pki["client_key"]),
            "ca_bundle_file": str(pki["ca"]),
        }
    )
    with (
        serve(script(Reply()), tls=mtls_server_context(pki)) as server,
        FhirClient(server.url, auth=auth, retries=0) as client,
    ):
        client.read("Patient", "1")
    subject = dict(item[0] for item in server.seen[0].peer["subject"])
    assert subject["commonName"] == "trialbridge-client"


def test_without_the_client_certificate_the_server_refuses(pki: dict[str, Path]) -> None:
    auth = load_auth({"ca_bundle_file": str(pki["ca"])})
    with (
        serve(script(Reply()), tls=mtls_server_context(pki)) as server,
        FhirClient(server.url, auth=auth, retries=0) as client,
        pytest.raises(FhirUnavailableError),
    ):
        client.read("Patient", "1")
    assert server.seen == []


def test_a_server_certificate_from_an_unknown_ca_is_not_retried(pki: dict[str, Path]) -> None:
    waits = Waits()
    with (
        serve(script(Reply()), tls=mtls_server_context(pki)) as server,
        FhirClient(server.url, retries=3, sleep=waits) as client,
        pytest.raises(FhirUnavailableError, match="TLS") as failed,
    ):
        client.read("Patient", "1")
    assert not failed.value.retryable and waits == [] and client.attempts == 1


# Retries ------------------------------------------------------------------------------------


def test_503_with_retry_after_seconds_is_waited_out_then_succeeds() -> None:
    waits = Waits(real=True)
    busy = Reply(503, BAD_REQUEST, {"Retry-After": "1"})
    with (
        serve(script(busy, Reply())) as server,
        FhirClient(server.url, retries=3, sleep=waits) as client,
    ):
        assert client.read("Patient", "1") == OK
    assert len(server.seen) == 2 and client.attempts == 2
    assert waits == [1.0]
    assert server.seen[1].at - server.seen[0].at >= 0.95


def test_retry_after_as_an_http_date() -> None:
    waits = Waits(real=True)
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
    busy = Reply(429, BAD_REQUEST, {"Retry-After": email.utils.format_datetime(when, True)})
    with (
        serve(script(busy, Reply())) as server,
        FhirClient(server.url, retries=3, sleep=waits) as client,
    ):
        client.read("Patient", "1")
    [wait] = waits
    assert 0.5 < wait <= 2.0 and len(server.seen) == 2
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # past dates: no wait
    assert retry_after("soon") is None and retry_after("120") == 120.0


def test_429_and_5xx_without_retry_after_back_off_exponentially_with_jitter() -> None:
    waits = Waits()
    replies = [Reply(429), Reply(502), Reply(500), Reply()]
    with (
        serve(script(*replies)) as server,
        FhirClient(server.url, retries=3, backoff=0.5, sleep=waits) as client,
    ):
        client.transaction({"resourceType": "Bundle", "type": "transaction", "entry": []})
    assert len(server.seen) == 4 and [s.method for s in server.seen] == ["POST"] * 4
    assert len(waits) == 3
    assert all(0 <= wait <= 0.5 * 2**n for n, wait in enumerate(waits))


def test_retries_run_out_and_the_error_says_it_is_retryable() -> None:
    waits = Waits()
    with (
        serve(script(Reply(503, BAD_REQUEST))) as server,
        FhirClient(server.url, retries=2, sleep=waits) as client,
        pytest.raises(FhirError) as failed,
    ):
        client.read("Patient", "1")
    assert len(server.seen) == 3 and len(waits) == 2
    assert failed.value.status == 503 and failed.value.retryable
    assert failed.value.retry_after is None


def test_a_retry_after_beyond_the_cap_is_left_to_the_outbox() -> None:
    waits = Waits()
    with (
        serve(script(Reply(503, BAD_REQUEST, {"Retry-After": "3600"}))) as server,
        FhirClient(server.url, retries=3, max_retry_after=60, sleep=waits) as client,
        pytest.raises(FhirError) as failed,
    ):
        client.read("Patient", "1")
    assert len(server.seen) == 1 and waits == []
    assert failed.value.retryable and failed.value.retry_after == 3600.0


def test_connection_refused_then_the_server_comes_up() -> None:
    port = free_port()
    started: list[Any] = []

    def start_server(seconds: float) -> None:
        started.append(serve(script(Reply()), port=port))
        started[-1].__enter__()

    with FhirClient(f"http://127.0.0.1:{port}/fhir", retries=3, sleep=start_server) as client:
        try:
            assert client.read("Patient", "1") == OK
        finally:
            for context in started:
                context.__exit__(None, None, None)
    assert client.attempts == 2 and len(started) == 1


def test_unreachable_is_retryable_when_retries_are_spent() -> None:
    waits = Waits()
    with (
        FhirClient(f"http://127.0.0.1:{free_port()}/fhir", retries=1, sleep=waits) as client,
        pytest.raises(FhirUnavailableError) as failed,
    ):
        client.read("Patient", "1")
    assert failed.value.retryable and len(waits) == 1 and client.attempts == 2


def test_400_is_never_retried_and_carries_the_outcome() -> None:
    waits = Waits()
    with (
        serve(script(Reply(400, BAD_REQUEST), Reply())) as server,
        FhirClient(server.url, retries=3, sleep=waits) as client,
        pytest.raises(FhirError) as refused,
    ):
        client.transaction({"resourceType": "Bundle", "type": "transaction"})
    assert len(server.seen) == 1 and waits == []
    assert refused.value.status == 400 and not refused.value.retryable
    assert "status 'bogus' unknown" in str(refused.value)


def test_every_call_has_a_connect_and_a_read_timeout() -> None:
    def slow(seen: Seen) -> Reply:
        time.sleep(1.0)
        return Reply()

    with serve(slow) as server, FhirClient(server.url, timeout=0.2, retries=0) as client:
        assert client.connect_timeout == 0.2
        with pytest.raises(FhirUnavailableError, match="ReadTimeout") as failed:
            client.read("Patient", "1")
    assert failed.value.retryable
