"""Commands for interface engineers: ``explain``, ``mappings check``, ``mappings diff`` and
``check --conformance``. Each is a thin shell over :mod:`adapter.tools`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import simplejson

from adapter.cli._common import (
    CONFIG,
    FILES,
    JSON,
    cli_errors,
    echo_json,
    enrolment_gate,
    message_files,
)
from adapter.config import Settings, load_settings
from adapter.mappings import MappingSet, load_mappings
from adapter.tools.conformance import check_conformance
from adapter.tools.diff import diff_translations, old_mappings
from adapter.tools.explain import explain
from adapter.tools.findings import KIND_TITLES, KINDS
from adapter.tools.lint import lint_directory
from adapter.tools.regression import run_suite
from adapter.translate import Translation, dry_run, translate


def _dumps(data: Any) -> str:
    return simplejson.dumps(data, use_decimal=True, indent=2, ensure_ascii=False)


@click.command("explain")
@FILES
@CONFIG
@JSON
def explain_command(files: tuple[Path, ...], config_path: Path, as_json: bool) -> None:
    """Show, for each OBX, the rule that matched, the conversion, the status decision and
    the Observation it becomes; or why it was held.

    Exit status 1 if a message is refused (the reason names the segment and field).

    Example: trialbridge explain ../shared/corpus/hl7/mirth_small_CMP_local_codes_bad_dates.hl7
    """
    with cli_errors():
        settings = load_settings(config_path)
        mappings = load_mappings(settings.mappings_dir)
        with enrolment_gate(settings) as gate:
            explained = [
                explain(item, mappings, settings.identifiers)
                for path in message_files(files)
                for item in dry_run(path.read_bytes(), str(path), settings, mappings, gate)
            ]
        if as_json:
            click.echo(_dumps([e.as_dict() for e in explained]))
        else:
            for explanation in explained:
                _print_explanation(explanation.as_dict())
        refused = [e for e in explained if e.refused]
        if refused:
            raise click.ClickException(
                "; ".join(f"{e.source}: refused: {e.refused}" for e in refused)
            )


def _print_explanation(data: dict[str, Any]) -> None:
    if data["refused"]:
        return
    click.echo(f"{data['source']}: message {data['message_id']} from {data['sender']}")
    click.echo(f"  enrolment filter: {data['filter']}")
    for entry in data["results"]:
        values = "~".join(entry["values"])
        click.echo(
            f"  {entry['location']} {entry['code']} = {values} {entry['unit']} "
            f"(OBX-11 {entry['status']})"
        )
        if "held" in entry:
            click.echo(f"    held:        {entry['held']}")
            continue
        rule = entry["rule"]
        matched = rule["matched"]
        click.echo(
            f"    rule:        {rule['analyte']} (LOINC {rule['loinc']}), matched "
            f"{matched['code']} ({matched['system'] or 'no system'}) for {rule['scope']} "
            f"at {rule['where']}"
        )
        click.echo(f"    conversion:  {entry['conversion']}")
        click.echo(f"    status:      {entry['status_decision']}")
        if "superseded_by" in entry:
            click.echo(f"    superseded:  by {entry['superseded_by']} (same identity)")
        observation = _dumps(entry["observation"]).replace("\n", "\n      ")
        click.echo(f"    Observation: {observation}")


@click.group("mappings")
def mappings_group() -> None:
    """Check, compare and test the mapping files in mappings/."""


@mappings_group.command("check")
@click.argument(
    "directory", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@CONFIG
@JSON
def check_mappings_command(directory: Path | None, config_path: Path, as_json: bool) -> None:
    """Lint analytes.yaml and units.yaml: schema, duplicate or conflicting codes, LOINC check
    digits, UCUM units and aliases, and conversions to each canonical unit.

    Every finding is printed as FILE:LINE: LEVEL: MESSAGE. Exit status 1 if there is an
    error; warnings alone exit 0. DIRECTORY defaults to the configured mappings directory.

    Example: trialbridge mappings check mappings/
    """
    with cli_errors():
        target = _shown(directory or load_settings(config_path).mappings_dir)
        findings = lint_directory(target)
        errors = sum(1 for f in findings if f.level == "error")
        if as_json:
            echo_json({"directory": str(target), "findings": [f.as_dict() for f in findings]})
        else:
            for finding in findings:
                click.echo(str(finding))
            click.echo(f"{errors} error(s), {len(findings) - errors} warning(s) in {target}")
        if errors:
            raise click.ClickException(f"{errors} error(s) in the mappings")


def _shown(path: Path) -> Path:
    """``path`` relative to the working directory when it is under it (as a person types it)."""
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path


@mappings_group.command("diff")
@click.argument("messages", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--against",
    required=True,
    help="The old mappings: a git revision (HEAD~1, a tag) or a mappings directory.",
)
@click.option(
    "--mappings",
    "current_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The new mappings directory (default: the configured one).",
)
@CONFIG
@JSON
def diff_mappings_command(
    messages: Path, against: str, current_dir: Path | None, config_path: Path, as_json: bool
) -> None:
    """Run every *.hl7 message in MESSAGES through the old and the current mappings and show
    what would change, result by result: newly mapped, no longer mapped, different analyte,
    different value or unit, different held reason.

    Example: trialbridge mappings diff --against HEAD~1 demo-out/feed
    """
    with cli_errors():
        settings = load_settings(config_path)
        current = current_dir or settings.mappings_dir
        old, new = old_mappings(against, current), load_mappings(current)
        paths = message_files((messages,))
        diff = diff_translations(_run(paths, settings, old), _run(paths, settings, new))
        if as_json:
            echo_json({"against": against, **diff.as_dict()})
            return
        for change in diff.changes:
            click.echo(str(change))
        counts = ", ".join(f"{n} {kind}" for kind, n in diff.counts().items()) or "no change"
        click.echo(f"{diff.results} result(s) in {len(paths)} file(s) compared: {counts}")


@mappings_group.command("test")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--update",
    is_flag=True,
    help="Write each NAME.expected.yaml from today's output (review the diff), check nothing.",
)
@click.option(
    "--mappings",
    "mappings_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The mappings directory to test (default: the configured one).",
)
@CONFIG
@JSON
def test_mappings_command(
    directory: Path, update: bool, mappings_dir: Path | None, config_path: Path, as_json: bool
) -> None:
    """Run every *.hl7 under DIRECTORY through the mappings and compare each with the
    NAME.expected.yaml next to it: which OBX maps to which analyte, value, unit and status,
    which are held and why. Every difference is printed as FILE: MESSAGE OBX[n].FIELD:
    expected X, got Y.

    Exit status 1 when anything differs (or an expected file is missing).

    Example: trialbridge mappings test tests/mapping-suite
    """
    with cli_errors():
        settings = load_settings(config_path)
        mappings = load_mappings(mappings_dir or settings.mappings_dir)
        suite = run_suite(directory, settings, mappings, update=update)
        if as_json:
            echo_json(suite.as_dict())
        else:
            for difference in suite.differences:
                click.echo(str(difference))
            for written in suite.written:
                click.echo(f"wrote {written}")
            click.echo(
                f"{suite.files} file(s), {suite.messages} message(s), {suite.results} result(s): "
                + (f"{len(suite.written)} expected file(s) written" if update else
                   f"{len(suite.differences)} difference(s)")
            )  # fmt: skip
        if suite.differences:
            raise click.ClickException(f"{len(suite.differences)} difference(s) from expected")


def _run(paths: list[Path], settings: Settings, mappings: MappingSet) -> list[Translation]:
    return [
        item
        for path in paths
        for item in translate(path.read_bytes(), str(path), settings, mappings)
    ]


@click.command("check")
@FILES
@click.option(
    "--conformance",
    is_flag=True,
    required=True,
    help="Check structure and datatypes against the HL7 version in MSH-12 (hl7apy).",
)
@CONFIG
@JSON
def check_command(
    files: tuple[Path, ...], conformance: bool, config_path: Path, as_json: bool
) -> None:
    """Check each message's structure and datatypes against the HL7 version it declares
    (MSH-12), offline, with hl7apy. Each problem names its segment and field, and is sorted
    by what it means: it will make TrialBridge hold a result (judged by running TrialBridge's
    parse and map stages over it, every code mapped), a LIS can ignore it, or it comes from
    the validator's own limits. A v2.7 truncation character in MSH-2 is removed for
    validation (the report says so).

    Exit status 1 when a message is not conformant (errors other than the validator's limits;
    warnings alone pass).

    Example: trialbridge check --conformance ../shared/corpus/hl7/pyhl7_sample_glucose_SN_FN.hl7
    """
    with cli_errors():
        settings = load_settings(config_path)
        report = []
        for path in message_files(files):
            for result in check_conformance(path.read_bytes(), settings.forced_charset):
                report.append({"file": str(path), **result.as_dict()})
        if as_json:
            echo_json(report)
        else:
            for entry in report:
                _print_conformance(entry)
        failing = sum(1 for entry in report if not entry["conformant"])
        if failing:
            raise click.ClickException(f"{failing} message(s) not conformant")


def _print_conformance(entry: dict[str, Any]) -> None:
    verdict = "conformant" if entry["conformant"] else "NOT conformant"
    counts = entry["counts"]
    summary = (
        f"{counts['holds']} hold a result, {counts['ignorable']} a LIS can ignore, "
        f"{counts['validator']} validator limit(s)"
        + (f", {counts['real']} the receiver may refuse" if counts["real"] else "")
    )
    click.echo(
        f"{entry['file']}#{entry['position']}: message {entry['message_id'] or '?'} "
        f"(v{entry['version'] or '?'}): {verdict} ({summary})"
    )
    for kind in KINDS:
        problems = [p for p in entry["problems"] if p["kind"] == kind]
        if problems:
            click.echo(f"  {KIND_TITLES[kind]}:")
        for problem in problems:
            click.echo(f"    {problem['location']}: {problem['level']}: {problem['message']}")
            click.echo(f"      -> {problem['why']}")


COMMANDS: list[click.Command] = [explain_command, mappings_group, check_command]
