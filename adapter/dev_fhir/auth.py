"""The local authorization server for tests and the secure demo, seen from Python.

``auth.mjs`` runs ``oidc-provider`` (npm: a certified OpenID Connect / OAuth 2.0 server that
nobody here wrote, so TrialBridge's SMART backend-services client meets someone else's
reading of the specs) with clients that authenticate by ``private_key_jwt`` and use the
``client_credentials`` grant; it issues short-lived JWT access tokens with SMART v2 system
scopes for one audience, the FHIR server::

    client = DevClient.generate("trialbridge", "system/Observation.cu system/*.rs")
    with DevAuthServer([client], audience=fhir_base) as auth, \\
         DevFhirServer(require_auth=auth.issuer, audience=fhir_base) as fhir:
        ...  # fhir.auth mode smart: token_url=auth.token_url, the client's key file

Loopback only; the keys live in memory (a new signing key each start).
"""

from __future__ import annotations

import json
import re
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc.jwk import ECKey, RSAKey

from adapter.dev_fhir import SERVER_DIR, DevFhirServer
from adapter.errors import DevServerError

AUTH_SCRIPT = SERVER_DIR / "auth.mjs"
READY = re.compile(r"^dev-auth ready on (?P<url>http://\S+) \(token endpoint \S+\)\s*$")
#: What TrialBridge writes and reads (SMART v2 scopes): the README's `mode: smart` example.
WRITER_SCOPES = (
    "system/Patient.crus system/Observation.crus system/ResearchSubject.crus "
    "system/ResearchStudy.crus system/Provenance.crus"
)
READER_SCOPES = "system/*.rs"
#: The audience of the dev servers' tokens: the FHIR server's identifier (its URL is only
#: known once it listens, after the authorization server has started).
DEV_AUDIENCE = "urn:trialbridge:dev-fhir"


@dataclass(frozen=True)
class DevClient:
    """A client registered with the dev authorization server: its id, key pair and scopes."""

    client_id: str
    private_key_pem: bytes
    key_id: str
    algorithm: str
    scope: str

    @classmethod
    def generate(cls, client_id: str, scope: str, algorithm: str = "RS384") -> DevClient:
        """A new key pair (RSA 2048 for RS384, P-384 for ES384) under a new key id."""
        private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
        if algorithm == "ES384":
            private = ec.generate_private_key(ec.SECP384R1())
        else:
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cls(client_id, pem, f"{client_id}-{uuid.uuid4().hex[:8]}", algorithm, scope)

    def public_jwk(self) -> dict[str, Any]:
        """The public key as a JWK, as the client registers it (its JWKS holds this one)."""
        key = (ECKey if self.algorithm.startswith("ES") else RSAKey).import_key(
            self.private_key_pem
        )
        jwk: dict[str, Any] = dict(key.as_dict(private=False))
        jwk.update(kid=self.key_id, alg=self.algorithm, use="sig")
        return jwk

    def write_key(self, path: Path) -> Path:
        """Write the private key (PEM, mode 0600) where ``fhir.auth.private_key_file`` names it."""
        path.write_bytes(self.private_key_pem)
        path.chmod(0o600)
        return path

    def registration(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "jwks": {"keys": [self.public_jwk()]},
            "scope": self.scope,
        }


class DevAuthServer(DevFhirServer):
    """Runs ``auth.mjs`` (oidc-provider) as a child process; ``issuer`` and ``token_url`` say
    where it listens. ``token_ttl`` is the access tokens' lifetime in seconds."""

    script = AUTH_SCRIPT
    ready_pattern = READY
    what = "the dev authorization server"

    def __init__(
        self,
        clients: list[DevClient] | list[dict[str, Any]],
        *,
        audience: str,
        token_ttl: int = 300,
        port: int = 0,
        stderr: IO[str] | None = None,
    ) -> None:
        super().__init__(port=port, stderr=stderr)
        self.clients = clients
        self.token_audience = audience
        self.token_ttl = token_ttl
        self._folder = tempfile.TemporaryDirectory(prefix="tb-dev-auth-")

    @property
    def issuer(self) -> str:
        return self.base_url

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    def _arguments(self) -> list[str]:
        registrations = Path(self._folder.name) / "clients.json"
        listed = [c.registration() if isinstance(c, DevClient) else c for c in self.clients]
        registrations.write_text(json.dumps(listed))
        return [
            "--clients",
            str(registrations),
            "--audience",
            self.token_audience,
            "--token-ttl",
            str(self.token_ttl),
        ]

    def stats(self) -> dict[str, Any]:
        """``tokens_issued`` and the last ``refusals`` (error, description) of the server."""
        try:
            response = requests.get(f"{self.base_url}/dev/stats", timeout=10)
        except requests.RequestException as exc:
            raise DevServerError(
                f"cannot read the dev authorization server's stats: {exc}"
            ) from exc
        stats: dict[str, Any] = response.json()
        return stats

    def close(self) -> None:
        self.stop()
        self._folder.cleanup()


@dataclass(frozen=True)
class SecureDev:
    """A dev FHIR server that demands tokens, its authorization server, and the two
    clients' ``fhir.auth`` sections (TrialBridge writing, research staff reading)."""

    fhir: DevFhirServer
    auth: DevAuthServer
    writer: dict[str, str]
    reader: dict[str, str]


@contextmanager
def secure_dev(folder: Path, port: int = 0) -> Iterator[SecureDev]:
    """Start both servers; write the clients' private keys into ``folder`` (mode 0600)."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = DevClient.generate("trialbridge", WRITER_SCOPES)
    reader = DevClient.generate("research-staff", READER_SCOPES, algorithm="ES384")
    auth = DevAuthServer([writer, reader], audience=DEV_AUDIENCE)
    try:
        with (
            auth,
            DevFhirServer(port=port, require_auth=auth.issuer, audience=DEV_AUDIENCE) as fhir,
        ):
            sections = [
                smart_section(c, auth.token_url, c.write_key(folder / f"{c.client_id}.pem"))
                for c in (writer, reader)
            ]
            yield SecureDev(fhir, auth, *sections)
    finally:
        auth.close()


def smart_section(client: DevClient, token_url: str, key_file: Path) -> dict[str, str]:
    """The ``fhir.auth`` section that makes TrialBridge this client (README ``mode: smart``)."""
    return {
        "mode": "smart",
        "client_id": client.client_id,
        "token_url": token_url,
        "scope": client.scope,
        "private_key_file": str(key_file),
        "key_id": client.key_id,
        "algorithm": client.algorithm,
    }


__all__ = [
    "DEV_AUDIENCE",
    "READER_SCOPES",
    "WRITER_SCOPES",
    "DevAuthServer",
    "DevClient",
    "SecureDev",
    "secure_dev",
    "smart_section",
]
