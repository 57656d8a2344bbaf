"""CLI command that writes the sample LIS feed: ``simulate-lis``."""

from __future__ import annotations

from pathlib import Path

import click

from adapter.cli._common import cli_errors, echo_json
from adapter.simulate import SimConfig, simulate, write_feed


@click.command("simulate-lis")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write the feed into (created; must be empty unless --force).",
)
@click.option(
    "--seed",
    default=7,
    show_default=True,
    type=int,
    help="Random seed: the same seed writes byte-identical files.",
)
@click.option(
    "--other-patients",
    default=300,
    show_default=True,
    type=click.IntRange(min=1),
    help="Non-enrolled hospital patients sharing the feed (2-4 messages each).",
)
@click.option("--force", is_flag=True, help="Replace a feed written earlier into --out.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def simulate_lis(out: Path, seed: int, other_patients: int, force: bool, as_json: bool) -> None:
    """Write a realistic, seeded sample LIS feed of HL7 v2.5.1 ORU^R01 files.

    The feed holds the 22 subjects of XHNKKY-DDSC (visits at weeks 0, 1, 4, 8, 12, 24, 48:
    liver panel, PT, INR, creatinine, sodium) among many other hospital patients, with local
    codes and LOINC, SI and conventional units, a preliminary then final report, a corrected,
    a cancelled and an entered-in-error result, unmapped local codes and an FHS/BHS batch.
    Next to the *.hl7 files (named in sending order) it writes enrolment.csv (the
    coordinator's list), visits.csv (where each visit fell) and manifest.json (counts).

    Example: trialbridge simulate-lis --out /tmp/feed --seed 7
    """
    with cli_errors():
        summary = write_feed(
            simulate(SimConfig(seed=seed, other_patients=other_patients)), out, force=force
        )
    if as_json:
        echo_json(summary)
        return
    click.echo(
        f"Wrote {summary['files']} files ({summary['messages']} messages: "
        f"{summary['trial_messages']} of {summary['subjects']} trial subjects, "
        f"{summary['other_messages']} of other patients; {summary['results']} results) "
        f"to {out}"
    )


COMMANDS: list[click.Command] = [simulate_lis]
