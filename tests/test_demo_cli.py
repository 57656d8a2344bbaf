"""The demo's closing lines tell a new user what they can do next (issue 17)."""

from __future__ import annotations

import sys

import pytest

from adapter.cli.demo import _print_next_steps


def test_after_the_demo_the_user_is_told_the_server_stopped_and_how_to_run_commands(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    _print_next_steps("http://127.0.0.1:1234/fhir", keep_running=False)
    out = capsys.readouterr().out
    assert "Explore:" not in out  # the server is gone: no link to it
    assert "--keep-running" in out
    assert f"run `. {sys.prefix}/bin/activate` first" in out


def test_with_keep_running_the_link_is_given_and_an_active_venv_needs_no_hint(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIRTUAL_ENV", sys.prefix)
    _print_next_steps("http://127.0.0.1:1234/fhir", keep_running=True)
    out = capsys.readouterr().out
    assert "Explore: http://127.0.0.1:1234/fhir/Observation?code=" in out
    assert "activate" not in out
