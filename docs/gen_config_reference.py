"""Writes reference/configuration.md at build time (mkdocs-gen-files); the rendering is
:mod:`adapter.tools.config_reference`, tested by tests/test_docs.py."""

from pathlib import Path

import mkdocs_gen_files

from adapter.tools.config_reference import read_keys, render

CONFIG = Path(__file__).resolve().parent.parent / "config" / "trialbridge.yaml"

with mkdocs_gen_files.open("reference/configuration.md", "w") as page:
    page.write(render(read_keys(CONFIG.read_text(encoding="utf-8"))))
mkdocs_gen_files.set_edit_path("reference/configuration.md", "../config/trialbridge.yaml")
