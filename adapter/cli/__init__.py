"""The ``trialbridge`` command line: a thin shell over the library.

Each command lives in its own module here, calls one library function, and turns
``TrialBridgeError`` into a clean message and a non-zero exit (no traceback).
"""

from __future__ import annotations

from importlib import import_module

import click

from adapter import __version__
from adapter.logs import LEVELS, configure_logging, get_logger


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="trialbridge")
@click.option(
    "--log-level",
    type=click.Choice(LEVELS, case_sensitive=False),
    default="warning",
    show_default=True,
    envvar="TRIALBRIDGE_LOG_LEVEL",
    help="Write log events of this level and above to stderr, as JSON lines (never patient "
    "data). The service runs with info.",
)
@click.pass_context
def main(ctx: click.Context, log_level: str) -> None:
    """TrialBridge carries LIS laboratory results (HL7v2 ORU^R01) into a clinical trial's
    FHIR R4 server: mapped to LOINC and UCUM, linked to the trial subject, scored, and
    traceable to the message they came from.

    Run ``trialbridge COMMAND --help`` for the details of each command.
    """
    configure_logging(log_level)
    get_logger("adapter.cli").info("command.start", command=ctx.invoked_subcommand)


_COMMAND_MODULES = (
    "config_cmd",
    "demo",
    "dev_fhir",
    "engineer",
    "export",
    "messages",
    "quarantine",
    "queue",
    "report",
    "score",
    "scoring",
    "service",
    "simulate",
    "smart",
    "sources",
    "trial",
)


def _register() -> None:
    # Imported here so each command module can import helpers from this package freely.
    for name in _COMMAND_MODULES:
        for command in import_module(f"adapter.cli.{name}").COMMANDS:
            main.add_command(command)


_register()
