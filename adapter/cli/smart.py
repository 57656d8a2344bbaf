"""CLI command ``smart-jwks``: the public JWKS to register for SMART backend services."""

from __future__ import annotations

import os
from pathlib import Path

import click

from adapter.auth import ALGORITHMS, Secret, load_private_key
from adapter.cli._common import cli_errors, echo_json


@click.command("smart-jwks")
@click.option(
    "--key",
    "key_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The private key TrialBridge signs its assertions with (fhir.auth.private_key_file).",
)
@click.option("--kid", required=True, help="The key id (fhir.auth.key_id) to publish it under.")
@click.option(
    "--algorithm",
    type=click.Choice(ALGORITHMS),
    default="RS384",
    show_default=True,
    help="fhir.auth.algorithm: RS384 for an RSA key, ES384 for a P-384 key.",
)
@click.option(
    "--password-env",
    metavar="VAR",
    help="The environment variable holding the key's password, if the PEM is encrypted.",
)
def smart_jwks(key_file: Path, kid: str, algorithm: str, password_env: str | None) -> None:
    """Print the public JWKS of a SMART backend-services key, to register with the FHIR
    server's authorization server. Only the public part is printed.

    Example: trialbridge smart-jwks --key /etc/trialbridge/secrets/smart-key.pem --kid tb-2024-01
    """
    with cli_errors():
        password = os.environ.get(password_env) if password_env else None
        pem = Secret(key_file.read_text(encoding="utf-8"))
        key = load_private_key(pem, algorithm, Secret(password) if password else None)
        public = dict(key.as_dict(private=False))
        public.update(kid=kid, alg=algorithm, use="sig")
        echo_json({"keys": [public]})


COMMANDS: list[click.Command] = [smart_jwks]
