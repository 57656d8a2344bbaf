"""The documentation cannot drift from the code: the configuration reference lists every key
of the shipped configuration, each one the code accepts, under the environment variable the
code reads; the CLI reference is rendered from the click commands themselves."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from adapter.config import DEFAULT_CONFIG, _apply_env
from adapter.deployment import check_deployment
from adapter.tools.config_reference import read_keys, render

ROOT = Path(__file__).resolve().parent.parent


def leaves(doc: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for key, value in doc.items():
        path = (*prefix, key)
        found += leaves(value, path) if isinstance(value, dict) and value else [path]
    return found


def test_the_shipped_configuration_holds_only_keys_the_code_accepts() -> None:
    failed = [c for c in check_deployment(DEFAULT_CONFIG) if c.error]
    assert failed == []


def test_the_reference_lists_every_key_with_the_variable_that_overrides_it() -> None:
    text = DEFAULT_CONFIG.read_text(encoding="utf-8")
    keys = {k.path: k for k in read_keys(text) if not k.is_section}
    raw = yaml.safe_load(text)
    expected = leaves(raw)
    assert sorted(keys) == sorted(expected)
    page = render(list(read_keys(text)))
    for path, key in keys.items():
        assert f"| `{'.'.join(path)}` | `{key.env}` |" in page
        overridden = copy.deepcopy(raw)
        _apply_env(overridden, {key.env: "from-the-environment"})
        value: Any = overridden
        for part in path:
            value = value[part]
        scalar = not isinstance(yaml.safe_load(key.default or '""'), dict | list)
        assert value == "from-the-environment" or not scalar, path


def test_the_cli_reference_page_renders_the_click_commands() -> None:
    page = (ROOT / "docs" / "reference" / "cli.md").read_text(encoding="utf-8")
    assert ":module: adapter.cli" in page and ":command: main" in page
