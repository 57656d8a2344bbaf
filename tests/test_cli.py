"""Every command reads well: --help works and shows an example, and errors are one clean
line without a traceback."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from adapter.cli import main


def commands(group: click.Group = main, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        if isinstance(command, click.Group):
            yield from commands(command, path)
        else:
            yield path


ALL = list(commands())


def test_the_command_set() -> None:
    names = {" ".join(path) for path in ALL}
    expected = {"map", "push", "demo", "dev-fhir", "enrol", "subjects import", "withdraw",
                "vital-status", "unmapped", "reprocess", "explain", "mappings check",
                "mappings diff", "check", "report", "score", "simulate-lis"}  # fmt: skip
    assert expected <= names


@pytest.mark.parametrize("path", ALL, ids=[" ".join(p) for p in ALL])
def test_every_command_has_help_with_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output
    assert "trialbridge " + " ".join(path) in result.output.replace("\n", " ")


def test_a_library_error_is_one_clean_line() -> None:
    result = CliRunner().invoke(main, ["map", "/nonexistent.hl7"])
    assert result.exit_code == 2 and "does not exist" in result.output
    assert "Traceback" not in result.output


def test_top_level_help_lists_every_command() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in main.commands:
        assert name in result.output
