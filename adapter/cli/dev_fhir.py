"""CLI command ``dev-fhir``: the local FHIR R4 server for tests and the demo."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
