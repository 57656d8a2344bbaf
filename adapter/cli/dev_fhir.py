"""CLI command ``dev-fhir``: the local FHIR R4 server for tests and the demo."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import IO

import click

from adapter.cli._common import cli_errors
from adapter.dev_fhir import DevFhirServer
from adapter.dev_fhir.auth import WRITER_SCOPES, DevAuthServer


def _inheritable_stderr() -> IO[str] | None:
    """Our stderr if the child can write to it directly (not under a test runner's capture)."""
    try:
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    return sys.stderr


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@click.command("dev-fhir")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="TCP port to listen on; 0 picks a free one (the ready line says which).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Keep it local: the server has no authentication.",
)
@click.option(
    "--data",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Keep the store in this JSON file across restarts: loaded at start, "
    "rewritten atomically after every change. Without it, the store lives in memory only.",
)
@click.option(
    "--require-auth",
    "issuer",
    metavar="ISSUER",
    help="Demand a SMART access token from this issuer (e.g. trialbridge dev-auth's URL) on "
    "every request but GET /metadata: 401 without a valid one, 403 naming a missing scope.",
)
@click.option(
    "--audience",
    help="The audience the tokens must carry [default: this server's base URL].",
)
@click.option(
    "--log-requests/--quiet",
    default=True,
    show_default=True,
    help="Log one line per request on standard error.",
)
def dev_fhir(
    port: int,
    host: str,
    data: Path | None,
    issuer: str | None,
    audience: str | None,
    log_requests: bool,
) -> None:
    """Run a local FHIR R4 server for tests and the demo, in the foreground.

    The FHIR API is at http://HOST:PORT/fhir (CapabilityStatement at /fhir/metadata); it
    supports read, vread, create, update, delete, history, search with paging, conditional
    create/update and batch/transaction Bundles, and checks required code bindings.
    POST /admin/reset empties the store. Once listening it prints one line on standard
    output, e.g. "dev-fhir ready on http://127.0.0.1:8080/fhir", and runs until Ctrl-C or
    SIGTERM.

    It installs its Node.js dependencies (npm ci) on first use; it needs Node.js 20 or newer.
    A development tool, not for real patient data; without --require-auth it asks for no
    credentials.

    Example: trialbridge dev-fhir --port 8080 --data var/dev-fhir.json
    """
    with cli_errors():
        if data is not None:
            data.parent.mkdir(parents=True, exist_ok=True)
        server = DevFhirServer(
            port=port,
            host=host,
            data=data,
            log_requests=log_requests,
            stderr=_inheritable_stderr(),
            require_auth=issuer,
            audience=audience,
        )
        _serve(server, "dev-fhir")


def _serve(server: DevFhirServer, name: str) -> None:
    """Run a dev server in the foreground until it exits, Ctrl-C or SIGTERM."""
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        server.start()
        click.echo(f"{name} ready on {server.base_url}")
        sys.stdout.flush()
        status = server.wait()
    except KeyboardInterrupt:
        status = 0
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)
    if status not in (0, -signal.SIGINT, -signal.SIGTERM):
        raise click.ClickException(f"{server.what} stopped with exit status {status}")


@click.command("dev-auth")
@click.option("--client-id", required=True, help="The client to register, e.g. trialbridge.")
@click.option(
    "--jwks",
    "jwks_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The client's public keys as a JWKS file (the one you would register with the "
    "hospital's authorization server).",
)
@click.option(
    "--scope",
    default=WRITER_SCOPES,
    show_default=True,
    help="The SMART system scopes the client may be granted.",
)
@click.option(
    "--audience",
    required=True,
    help="The FHIR server the tokens are for (what dev-fhir --audience expects).",
)
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True)
@click.option(
    "--token-ttl", type=click.IntRange(1, 3600), default=300, show_default=True, help="Seconds."
)
def dev_auth(
    client_id: str, jwks_file: Path, scope: str, audience: str, port: int, token_ttl: int
) -> None:
    """Run a local SMART authorization server (oidc-provider) for tests and trials, on the
    loopback, in the foreground.

    One client, authenticating with private_key_jwt (RS384/ES384 keys from --jwks) and the
    client_credentials grant, gets short-lived JWT access tokens for --audience. The token
    endpoint is ISSUER/token; pair it with dev-fhir --require-auth ISSUER --audience AUD.

    Example: trialbridge dev-auth --client-id tb --jwks jwks.json --audience urn:tb:fhir
    """
    with cli_errors():
        try:
            jwks = json.loads(jwks_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            message = f"{jwks_file}: not a JWKS ({exc})"
            raise click.BadParameter(message, param_hint="--jwks") from None
        if not isinstance(jwks, dict) or not jwks.get("keys"):
            raise click.BadParameter(f"{jwks_file}: no 'keys' in it", param_hint="--jwks")
        registration = {"client_id": client_id, "jwks": jwks, "scope": scope}
        server = DevAuthServer(
            [registration], audience=audience, token_ttl=token_ttl, port=port,
            stderr=_inheritable_stderr(),
        )  # fmt: skip
        try:
            _serve(server, "dev-auth")
        finally:
            server.close()


COMMANDS: list[click.Command] = [dev_fhir, dev_auth]
