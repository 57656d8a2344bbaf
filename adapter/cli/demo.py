"""CLI command ``demo``: the main job on the embedded default, end to end."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import threading
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import TypeVar

import click
import yaml

from adapter.auth import load_auth
from adapter.cli._common import cli_errors, echo_json
from adapter.config import DEFAULT_CONFIG, Settings, load_settings
from adapter.demo import DemoResult, run_demo
from adapter.dev_fhir import DevFhirServer
from adapter.dev_fhir.auth import SecureDev, secure_dev
from adapter.fhir_client import FhirClient
from adapter.mappings import MappingSet, load_mappings

T = TypeVar("T")


def _progress(items: Iterable[T], label: str) -> Iterable[T]:
    with click.progressbar(list(items), label=label, file=sys.stderr) as bar:
        yield from bar


@click.command("demo")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-out/feed"),
    show_default=True,
    help="Folder for the sample LIS feed (its earlier *.hl7 files are replaced).",
)
@click.option("--port", type=int, default=0, show_default=True, help="Dev server port (0: any).")
@click.option("--keep-running", is_flag=True, help="Leave the FHIR server up until Ctrl-C.")
@click.option(
    "--secure",
    is_flag=True,
    help="Run the whole flow with SMART backend-services tokens: a local authorization "
    "server (oidc-provider) issues them and the FHIR server refuses requests without one. "
    "The clients' keys and the research staff's configuration go to OUT/../secure.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def demo(out: Path, port: int, keep_running: bool, secure: bool, as_json: bool) -> None:
    """Start the local FHIR server, write the sample LIS feed, push it, and show what landed.

    Prints the Observations per analyte on the server and one trial subject's results.

    Example: trialbridge demo --keep-running
    """
    with cli_errors():
        settings = load_settings(DEFAULT_CONFIG)
        mappings = load_mappings(settings.mappings_dir)
        if secure:
            with secure_dev(out.parent / "secure", port) as dev:
                _run_secure(dev, out, settings, mappings, as_json, keep_running)
            return
        with DevFhirServer(port=port) as server:
            click.echo(f"Local FHIR server: {server.base_url}", err=True)
            with FhirClient(server.base_url, timeout=settings.fhir_timeout) as client:
                result = run_demo(out, client, settings, mappings, _progress)
            _finish(result, server.base_url, as_json, keep_running)


def _finish(result: DemoResult, base_url: str, as_json: bool, keep_running: bool) -> None:
    if as_json:
        echo_json(asdict(result))
    else:
        _print(result)
        _print_next_steps(base_url, keep_running)
    if keep_running:
        click.echo(f"Serving {base_url} until Ctrl-C.", err=True)
        _wait_forever()


def _run_secure(
    dev: SecureDev,
    out: Path,
    settings: Settings,
    mappings: MappingSet,
    as_json: bool,
    keep_running: bool,
) -> None:
    base = dev.fhir.base_url
    click.echo(f"Local FHIR server: {base} (tokens from {dev.auth.issuer} required)", err=True)
    auth = load_auth(dev.writer)
    with FhirClient(base, auth=auth, timeout=settings.fhir_timeout) as client:
        result = run_demo(out, client, settings, mappings, _progress)
    research = _research_config(out.parent / "secure" / "research.yaml", base, dev.reader)
    if not as_json:
        issued = dev.auth.stats()["tokens_issued"]
        click.echo(
            f"Secure mode: every request carried a SMART access token from {dev.auth.issuer} "
            f"({issued} issued, scopes {dev.writer['scope']}); requests without one get 401."
        )
        click.echo(
            f"Research staff read with a read-only client (scope {dev.reader['scope']}): "
            f"trialbridge report --config {research} --study XHNKKY-DDSC --out report"
        )
    _finish(result, base, as_json, keep_running)


def _research_config(path: Path, base_url: str, section: dict[str, str]) -> Path:
    """A copy of the default configuration whose ``fhir`` is the secured dev server, read
    with the research staff's client."""
    config = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    config["fhir"]["url"] = base_url
    config["fhir"]["auth"] = section
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def _print(result: DemoResult) -> None:
    push = result.push
    click.echo(f"Sample feed: {result.files} files in {result.feed_dir}")
    click.echo(f"Enrolled {result.enrolled} subjects from enrolment.csv.")
    click.echo(
        f"{push.messages} messages: {push.pushed} pushed for enrolled subjects, "
        f"{push.dropped} dropped at the enrolment filter (other patients), "
        f"{push.refused} refused, {push.failed} failed; {push.observations} results written, "
        f"{push.held} held, {push.dropped_results} dated before baseline, "
        f"{push.skipped} older statuses ignored."
    )
    scores = result.scores
    click.echo(
        f"Recorded {result.assessments} clinical assessments; scores: {scores['computed']} "
        f"computed, {scores['not_computable']} not computable, {scores['withdrawn']} withdrawn."
    )
    click.echo("\nObservations on the FHIR server, per study analyte:")
    for key, count in result.landed_by_analyte.items():
        click.echo(f"  {key:<16} {count:>6}")
    click.echo(f"\nResults of {result.subject_id} (under its pseudonym; no name or MRN):")
    for row in result.subject_results:
        click.echo(
            f"  {row['visit']:<9} {row['date']:<26} {row['loinc']:<8} "
            f"{row['analyte'][:34]:<34} {row['value']:<14} {row['status']}"
        )
    click.echo("\nThe research staff's report, read back from the FHIR server:")
    for path in result.report_files:
        click.echo(f"  {path}")
    if result.export_files:
        folder = result.export_files[0].rsplit("/", 1)[0]
        click.echo(
            f"\nThe trial as CDISC SDTM datasets (Dataset-JSON and XPT, {len(result.export_files)} "
            f"files): {folder}/"
        )


def _print_next_steps(base_url: str, keep_running: bool) -> None:
    if keep_running:
        click.echo(f"\nExplore: {base_url}/Observation?code=http://loinc.org|1742-6")
    else:
        click.echo(
            "\nThe FHIR server stopped with the demo (`trialbridge demo --keep-running` keeps it)."
        )
    if not _venv_active():
        bin_dir = Path(sys.executable).parent
        click.echo(
            f"The trialbridge command is in {bin_dir}: run `. {bin_dir}/activate` first "
            f"(or call {bin_dir}/trialbridge)."
        )


def _venv_active() -> bool:
    """Whether `trialbridge` is on this shell's PATH: the demo's virtualenv was activated."""
    return os.environ.get("VIRTUAL_ENV") == sys.prefix or shutil.which("trialbridge") is not None


def _wait_forever() -> None:
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()


COMMANDS: list[click.Command] = [demo]
