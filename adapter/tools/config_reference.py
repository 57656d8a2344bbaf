"""The configuration reference, rendered from the shipped configuration file
(``config/trialbridge.yaml``): every key, its environment variable, its default and the comment
the file gives it. ``docs/gen_config_reference.py`` writes it into the documentation site at
build time, and ``tests/test_docs.py`` checks that every key it lists is one the code accepts
and that its variable is the one the code reads, so the page cannot drift from either.

We parse the comments ourselves because YAML loaders drop them; the file's layout (a
comment block above a key, or a comment at the end of its line) is the convention kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

_KEY = re.compile(
    r"^(?P<indent> *)(?P<key>[A-Za-z_][\w-]*):(?P<value>[^#]*?)\s*(?:#\s?(?P<note>.*))?$"
)


@dataclass(frozen=True)
class Key:
    path: tuple[str, ...]
    default: str
    note: str
    is_section: bool

    @property
    def env(self) -> str:
        return "TRIALBRIDGE_" + "_".join(self.path).upper().replace("-", "_")


def read_keys(text: str) -> list[Key]:
    """Every key of the file in order, with the comment above it or at the end of its line."""
    keys: list[Key] = []
    stack: list[tuple[int, str]] = []
    pending: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        match = _KEY.match(line)
        if not match:
            pending = [] if not stripped else pending
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        value = match["value"].strip()
        path = (*[key for _, key in stack], match["key"])
        note = " ".join([*pending, match["note"] or ""]).strip()
        keys.extend(_expanded(path, value, note))
        if not value:
            stack.append((indent, match["key"]))
        pending = []
    return keys


def _expanded(path: tuple[str, ...], value: str, note: str) -> list[Key]:
    """A key, or for a flow mapping (``{a: 1, b: 2}``) the section and each of its keys, which
    the environment overrides one by one."""
    if not value.startswith("{"):
        return [Key(path, value, note, is_section=not value)]
    parsed = yaml.safe_load(value)
    inner = [Key((*path, str(k)), _text(v), note, False) for k, v in parsed.items()]
    return [Key(path, "", note, True), *inner]


def _text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|")


def render(keys: list[Key]) -> str:
    out = [
        "# Configuration reference",
        "",
        "Generated from `config/trialbridge.yaml`, the file TrialBridge loads when none is",
        "named. Every key can be set from the environment instead: the variable is",
        "`TRIALBRIDGE_` followed by the key's path in upper case, joined with `_`.",
        "Secrets are never values here: `*_env` keys name an environment variable,",
        "`*_file` keys a file.",
        "",
    ]
    for key in keys:
        if len(key.path) == 1:
            out += (
                [f"## `{key.path[0]}`", "", key.note, ""]
                if key.note
                else [f"## `{key.path[0]}`", ""]
            )
            out += ["| key | environment variable | default | meaning |", "|---|---|---|---|"]
            continue
        if key.is_section:
            out.append(f"| **`{'.'.join(key.path)}`** | | | {_cell(key.note)} |")
            continue
        default = _cell(key.default) or '""'
        out.append(f"| `{'.'.join(key.path)}` | `{key.env}` | `{default}` | {_cell(key.note)} |")
    return "\n".join(out) + "\n"
