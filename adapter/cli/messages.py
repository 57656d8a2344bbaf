"""CLI commands that turn HL7v2 messages into FHIR: ``map`` and ``push``."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
