"""How TrialBridge proves who it is to the FHIR server: ``fhir.auth`` in config/trialbridge.yaml.

Modes (``fhir.auth.mode``):

- ``none``   no credentials (a server on a closed network, the dev server);
- ``bearer`` a static token (``token_env`` or ``token_file``);
- ``basic``  HTTP basic (``username``, ``password_env`` or ``password_file``);
- ``smart``  SMART backend services: OAuth 2 client credentials with a private-key JWT
  assertion (RS384 or ES384, lifetime at most five minutes, a fresh ``jti`` each time),
  signed and sent with Authlib; the access token is cached until shortly before it expires;
- ``mtls``   mutual TLS only (``client_cert_file`` and ``client_key_file``).

The TLS files (``client_cert_file``, ``client_key_file``, ``ca_bundle_file``) combine with any
mode. Secrets are never in the configuration: each comes from an environment variable
(``*_env``) or a file (``*_file``, e.g. a systemd credential or a Kubernetes secret), and is
held in a :class:`Secret` whose ``repr`` is redacted, so it never reaches a log or an error.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from joserfc.jwk import ECKey, RSAKey
from requests.auth import AuthBase, _basic_auth_str

from adapter.errors import ConfigError, FhirAuthError, FhirError, FhirUnavailableError
from adapter.logs import get_logger

MODES = ("none", "bearer", "basic", "smart", "mtls")
ALGORITHMS = ("RS384", "ES384")
MAX_ASSERTION_LIFETIME = 300.0  # SMART backend services: "no more than five minutes"
REDACTED = "<redacted>"
_WHERE = "fhir.auth"

log = get_logger(__name__)


class Secret:
    """A credential that says nothing about itself when printed, logged or compared."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The value itself: only for the header or the signature that needs it."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED})"

    __str__ = __repr__


# Reading the configuration ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Source:
    """The ``fhir.auth`` section with its environment, for reading keys and secrets."""

    section: Mapping[str, Any]
    environ: Mapping[str, str]
    path: str

    def text(self, key: str, default: str = "") -> str:
        value = self.section.get(key)
        return default if value is None or str(value).strip() == "" else str(value).strip()

    def required(self, key: str, mode: str) -> str:
        value = self.text(key)
        if not value:
            raise ConfigError(f"{_WHERE}.{key} is required when mode is {mode!r}", path=self.path)
        return value

    def file(self, key: str) -> Path | None:
        value = self.text(key)
        if not value:
            return None
        path = Path(value).expanduser()
        if not path.is_file():
            raise ConfigError(f"{_WHERE}.{key}: no file at {path}", path=self.path)
        return path

    def number(self, key: str, default: float) -> float:
        value = self.text(key, str(default))
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{_WHERE}.{key} must be a number", path=self.path) from None

    def secret(self, name: str, *, required: bool = True) -> Secret | None:
        """The secret ``name`` from ``<name>_env`` (a variable) or ``<name>_file`` (a file)."""
        env_key, file_key = f"{name}_env", f"{name}_file"
        variable, path = self.text(env_key), self.text(file_key)
        if variable and path:
            raise ConfigError(f"give {_WHERE}.{env_key} or {file_key}, not both", path=self.path)
        if variable:
            return Secret(self._from_env(env_key, variable))
        if path:
            return Secret(self._from_file(file_key, Path(path).expanduser()))
        if required:
            raise ConfigError(
                f"{_WHERE}.{env_key} or {_WHERE}.{file_key} must name where the {name} is",
                path=self.path,
            )
        return None

    def _from_env(self, key: str, variable: str) -> str:
        value = self.environ.get(variable, "")
        if not value:
            raise ConfigError(
                f"{_WHERE}.{key} names the environment variable {variable}, which is not set",
                path=self.path,
            )
        return value

    def _from_file(self, key: str, path: Path) -> str:
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"{_WHERE}.{key}: cannot read {path} ({exc.strerror})", path=self.path
            ) from None
        if not value:
            raise ConfigError(f"{_WHERE}.{key}: {path} is empty", path=self.path)
        return value


# TLS ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The client certificate and key (mutual TLS) and the CA bundle that checks the server.

    The key file must not be encrypted (``requests`` cannot ask for a passphrase): keep it
    readable by the service user only."""

    client_cert: Path | None = None
    client_key: Path | None = None
    ca_bundle: Path | None = None

    def options(self) -> dict[str, Any]:
        """``verify`` and ``cert`` for each request. Given per request, not on the Session:
        requests lets ``REQUESTS_CA_BUNDLE`` (set on many hosts) override a Session's
        ``verify``, which would silently ignore ``ca_bundle_file``."""
        options: dict[str, Any] = {}
        if self.client_cert is not None:
            key = self.client_key
            options["cert"] = (str(self.client_cert), str(key)) if key else str(self.client_cert)
        if self.ca_bundle is not None:
            options["verify"] = str(self.ca_bundle)
        return options


def _tls(source: _Source) -> TlsFiles:
    tls = TlsFiles(
        client_cert=source.file("client_cert_file"),
        client_key=source.file("client_key_file"),
        ca_bundle=source.file("ca_bundle_file"),
    )
    if tls.client_key is not None and tls.client_cert is None:
        raise ConfigError(f"{_WHERE}.client_key_file needs client_cert_file", path=source.path)
    return tls


# HTTP authentication ------------------------------------------------------------------------


class BearerAuth(AuthBase):
    """``Authorization: Bearer <token>`` with a static token."""

    def __init__(self, token: Secret) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token.reveal()}"
        return request

    def __repr__(self) -> str:
        return f"BearerAuth(token={REDACTED})"


class BasicAuth(AuthBase):
    """HTTP basic authentication."""

    def __init__(self, username: str, password: Secret) -> None:
        self.username = username
        self._password = password

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        header = _basic_auth_str(self.username, self._password.reveal())
        request.headers["Authorization"] = header
        return request

    def __repr__(self) -> str:
        return f"BasicAuth(username={self.username!r}, password={REDACTED})"


@dataclass(frozen=True, slots=True)
class SmartClient:
    """A SMART backend-services client as registered with the authorization server."""

    client_id: str
    token_url: str
    scope: str
    algorithm: str = "RS384"
    key_id: str | None = None
    assertion_lifetime: float = MAX_ASSERTION_LIFETIME
    refresh_leeway: float = 30.0  # fetch a new token this long before the old one expires

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ConfigError(f"{_WHERE}.algorithm must be one of {', '.join(ALGORITHMS)}")
        if not 0 < self.assertion_lifetime <= MAX_ASSERTION_LIFETIME:
            raise ConfigError(
                f"{_WHERE}.assertion_lifetime_seconds must be more than 0 and at most "
                f"{MAX_ASSERTION_LIFETIME:.0f} (SMART backend services)"
            )


class _ShortLivedAssertion(PrivateKeyJWT):  # type: ignore[misc]
    """Authlib's ``private_key_jwt`` with a short lifetime, a ``kid`` and a new ``jti`` each
    time (Authlib's default lifetime is an hour, and a ``claims`` dict given to it once
    would keep the first ``jti``)."""

    def __init__(self, client: SmartClient) -> None:
        super().__init__(client.token_url, alg=client.algorithm)
        self.lifetime = int(client.assertion_lifetime)
        self.key_id = client.key_id

    def sign(self, auth: Any, token_endpoint: str) -> Any:
        header = {"typ": "JWT", **({"kid": self.key_id} if self.key_id else {})}
        return private_key_jwt_sign(
            auth.client_secret,
            client_id=auth.client_id,
            token_endpoint=token_endpoint,
            alg=self.alg,
            header=header,
            expires_in=self.lifetime,
        )


def load_private_key(pem: Secret, algorithm: str, password: Secret | None = None) -> Any:
    """The signing key for ``algorithm`` (an RSA key for RS384, a P-384 EC key for ES384)."""
    key_type = RSAKey if algorithm.startswith("RS") else ECKey
    secret = password.reveal() if password else None
    try:
        return key_type.import_key(pem.reveal(), password=secret)
    except Exception as exc:  # the libraries raise many types; none carries the key
        raise ConfigError(
            f"{_WHERE}.private_key_file is not a usable {key_type.__name__[:-3]} private key "
            f"for {algorithm} ({type(exc).__name__})"
        ) from None


class SmartBackendAuth(AuthBase):
    """SMART backend services: a cached access token, fetched with a signed JWT assertion.

    Thread-safe; ``fetches`` counts the tokens fetched (for tests and metrics)."""

    def __init__(
        self,
        client: SmartClient,
        private_key: Any,
        *,
        tls: TlsFiles | None = None,
        timeout: tuple[float, float] = (10.0, 30.0),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.timeout = timeout
        self.fetches = 0
        self._clock = clock
        self._lock = threading.Lock()
        self._token: Secret | None = None
        self._issued_at = self._expires_at = 0.0
        self._oauth = OAuth2Session(
            client.client_id,
            private_key,
            token_endpoint_auth_method=_ShortLivedAssertion.name,
            scope=client.scope,
        )
        self._oauth.register_client_auth_method(_ShortLivedAssertion(client))
        self._tls_options = (tls or TlsFiles()).options()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.access_token()}"
        return request

    def __repr__(self) -> str:
        return f"SmartBackendAuth(client_id={self.client.client_id!r}, token={REDACTED})"

    def access_token(self) -> str:
        """The cached access token, fetched anew when it is about to expire."""
        with self._lock:
            if self._token is None or self._clock() >= self._expires_at - self._leeway():
                self._fetch()
            assert self._token is not None
            return self._token.reveal()

    def invalidate(self) -> None:
        """Forget the cached token (the server answered 401): the next call fetches one."""
        with self._lock:
            self._token = None

    def close(self) -> None:
        self._oauth.close()

    def _leeway(self) -> float:
        lifetime = self._expires_at - self._issued_at if self._token else 0.0
        return min(self.client.refresh_leeway, lifetime / 2)

    def _fetch(self) -> None:
        issued = self._clock()
        token = self._request_token()
        access = token.get("access_token")
        if not access:
            raise FhirError("the SMART token endpoint answered without an access_token")
        expires_in = float(token.get("expires_in") or 300)
        self._token, self._issued_at = Secret(str(access)), issued
        self._expires_at = issued + expires_in
        self.fetches += 1
        log.info(
            "fhir.token.fetched",
            token_host=urlsplit(self.client.token_url).netloc,
            expires_in=expires_in,
            fetches=self.fetches,
        )

    def _request_token(self) -> dict[str, Any]:
        where = f"the SMART token endpoint {self.client.token_url}"
        try:
            token: dict[str, Any] = self._oauth.fetch_token(
                self.client.token_url,
                grant_type="client_credentials",
                timeout=self.timeout,
                **self._tls_options,
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise FhirUnavailableError(f"cannot reach {where} ({type(exc).__name__})") from None
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            refused = status is not None and 400 <= status < 500 and status != 429
            raise (FhirAuthError if refused else FhirError)(
                f"{where} failed", status=status
            ) from None
        except AuthlibBaseError as exc:
            transient = exc.error in ("temporarily_unavailable", "server_error")
            raise (FhirError if transient else FhirAuthError)(
                f"{where} refused client {self.client.client_id!r}: {exc.error}"
                + (f" ({exc.description})" if exc.description else "")
                + "; check fhir.auth (client_id, key_id, the registered public key, scope)",
                retryable=transient,
            ) from None
        return token


# The whole set-up ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientAuth:
    """The mode, the request authentication (or None) and the TLS files, ready to apply."""

    mode: str = "none"
    http: AuthBase | None = None
    tls: TlsFiles = field(default_factory=TlsFiles)

    def apply(self, session: requests.Session) -> None:
        """Authenticate every request of ``session`` (TLS files: :meth:`TlsFiles.options`)."""
        session.auth = self.http

    def invalidate(self) -> bool:
        """Drop a cached token, if this mode has one; True if there was something to drop."""
        if isinstance(self.http, SmartBackendAuth):
            self.http.invalidate()
            return True
        return False

    def close(self) -> None:
        if isinstance(self.http, SmartBackendAuth):
            self.http.close()


def load_auth(
    section: Mapping[str, Any] | None,
    *,
    path: str = "config/trialbridge.yaml",
    environ: Mapping[str, str] | None = None,
    timeout: tuple[float, float] = (10.0, 30.0),
) -> ClientAuth:
    """The credentials described by the ``fhir.auth`` section (``None`` or empty: none)."""
    source = _Source(section or {}, os.environ if environ is None else environ, path)
    mode = source.text("mode", "none").lower()
    if mode not in MODES:
        raise ConfigError(f"{_WHERE}.mode {mode!r} must be one of {', '.join(MODES)}", path=path)
    tls = _tls(source)
    if mode == "mtls" and tls.client_cert is None:
        raise ConfigError(f"{_WHERE}.client_cert_file is required when mode is 'mtls'", path=path)
    return ClientAuth(mode, _http_auth(mode, source, tls, timeout), tls)


def _http_auth(
    mode: str, source: _Source, tls: TlsFiles, timeout: tuple[float, float]
) -> AuthBase | None:
    if mode == "bearer":
        return BearerAuth(_must(source.secret("token")))
    if mode == "basic":
        return BasicAuth(source.required("username", mode), _must(source.secret("password")))
    if mode == "smart":
        return _smart(source, tls, timeout)
    return None


def _smart(source: _Source, tls: TlsFiles, timeout: tuple[float, float]) -> SmartBackendAuth:
    try:
        client = SmartClient(
            client_id=source.required("client_id", "smart"),
            token_url=source.required("token_url", "smart"),
            scope=source.required("scope", "smart"),
            algorithm=source.text("algorithm", "RS384").upper(),
            key_id=source.text("key_id") or None,
            assertion_lifetime=source.number("assertion_lifetime_seconds", 300),
            refresh_leeway=source.number("refresh_leeway_seconds", 30),
        )
    except ConfigError as exc:
        raise ConfigError(str(exc), path=source.path) from None
    pem = _must(source.secret("private_key"))
    key = load_private_key(
        pem, client.algorithm, source.secret("private_key_password", required=False)
    )
    return SmartBackendAuth(client, key, tls=tls, timeout=timeout)


def _must(secret: Secret | None) -> Secret:
    assert secret is not None  # source.secret(required=True) raised otherwise
    return secret
