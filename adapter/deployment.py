"""A deployment's configuration as a whole: :func:`check_deployment` validates every file the
service would read (the configuration with each section, the study, the mappings, the
credentials it names) the way start-up does, and :func:`init_deployment` writes a skeleton to
edit (``trialbridge config check`` and ``trialbridge init``).

The skeleton ships inside the package (``adapter/skeleton``: in a checkout, links to
``config/`` and ``mappings/``, so what ``init`` writes is always what the checkout runs with).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapter.auth import load_auth
from adapter.config import config_section, load_settings
from adapter.errors import ConfigError, TrialBridgeError
from adapter.mappings import load_mappings
from adapter.scoring.settings import load_scoring_settings
from adapter.service.runner import load_service_config
from adapter.sources.config import load_sources_config
from adapter.trial.study import load_study

SKELETON = Path(__file__).resolve().parent / "skeleton"
CONFIG_NAME = "trialbridge.yaml"
# The checkout's configuration names its study relative to the checkout; in a deployment's
# folder the study sits next to the configuration.
_CHECKOUT_STUDY = "path: config/study.yaml"
_DEPLOYED_STUDY = "path: study.yaml"


@dataclass(frozen=True, slots=True)
class Checked:
    """One part of the deployment and what its check found (``error`` None: valid)."""

    part: str
    path: str
    summary: str = ""
    error: str | None = None


def check_deployment(config_path: Path) -> list[Checked]:
    """Validate everything ``trialbridge run`` reads; each part is checked even when an
    earlier one failed (except what depends on it)."""
    results: list[Checked] = []
    where = str(config_path)

    def check(part: str, path: str, work: Callable[[], str]) -> bool:
        try:
            summary = work()
        except TrialBridgeError as exc:
            results.append(Checked(part, path, error=str(exc)))
            return False
        results.append(Checked(part, path, summary))
        return True

    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        return [Checked("configuration", where, error=str(exc))]
    results.append(Checked("configuration", where, f"FHIR server {settings.fhir_url}"))
    check("service", where, lambda: _service(config_path))
    check("sources", where, lambda: _sources(config_path))
    check("scoring", where, lambda: _scoring(config_path))
    check("fhir.auth", where, lambda: _auth(config_path, settings.fhir_timeout))
    study_path, mappings_dir = str(settings.study_path), str(settings.mappings_dir)
    studied = check("study", study_path, lambda: _study(settings.study_path))
    mapped = check("mappings", mappings_dir, lambda: _mappings(settings.mappings_dir))
    if studied and mapped:
        check("study analytes", study_path, lambda: _analytes(settings.study_path, mappings_dir))
    return results


def _service(config_path: Path) -> str:
    config = load_service_config(config_path)
    return f"HTTP on {config.http_host}:{config.http_port}"


def _sources(config_path: Path) -> str:
    config = load_sources_config(config_path)
    enabled = [
        name
        for name, on in (
            ("file_drop", config.file_drop.enabled),
            ("mllp", config.mllp.enabled),
            ("query", config.query.enabled),
        )
        if on
    ]
    return f"enabled: {', '.join(enabled)}" if enabled else "none enabled"


def _scoring(config_path: Path) -> str:
    settings = load_scoring_settings(config_path)
    return f"pairing window {settings.pairing_window.total_seconds() / 3600:g} h"


def _auth(config_path: Path, timeout: float) -> str:
    section: dict[str, Any] = config_section("fhir", config_path)
    auth = load_auth(section.get("auth"), path=str(config_path), timeout=(timeout, timeout))
    try:
        return f"mode {section.get('auth', {}).get('mode', 'none') or 'none'}"
    finally:
        auth.close()


def _study(path: Path) -> str:
    study = load_study(path)
    return (
        f"{study.identifier}: {len(study.arms)} arm(s), {len(study.analytes)} analyte(s), "
        f"{len(study.scores)} score(s), {len(study.visits)} visit(s)"
    )


def _mappings(directory: Path) -> str:
    mappings = load_mappings(directory)
    return f"version {mappings.version}, {len(mappings.analytes)} analyte(s)"


def _analytes(study_path: Path, mappings_dir: str) -> str:
    study = load_study(study_path)
    study.check_analytes(load_mappings(Path(mappings_dir)).analytes, f"{mappings_dir}")
    return "every study analyte is in the mappings"


# init ------------------------------------------------------------------------------------


def init_deployment(directory: Path, *, force: bool = False) -> list[Path]:
    """Write the skeleton into ``directory``: ``trialbridge.yaml`` (paths relative to it),
    ``study.yaml`` (and the other files of ``config/``) and ``mappings/``. Existing files
    are kept unless ``force``; returns the files written."""
    plan = _skeleton_files(directory)
    existing = [target for _, target in plan if target.exists()]
    if existing and not force:
        names = ", ".join(str(p) for p in existing)
        raise ConfigError(f"would overwrite {names}; edit them, or pass --force")
    written = []
    for source, target in plan:
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.name == CONFIG_NAME and source.parent.name == "config":
            text = source.read_text(encoding="utf-8")
            target.write_text(text.replace(_CHECKOUT_STUDY, _DEPLOYED_STUDY), encoding="utf-8")
        else:
            shutil.copyfile(source, target)
        written.append(target)
    return written


def _skeleton_files(directory: Path) -> list[tuple[Path, Path]]:
    config = sorted((SKELETON / "config").glob("*.yaml"))
    mappings = sorted((SKELETON / "mappings").glob("*.yaml"))
    if not any(p.name == CONFIG_NAME for p in config) or not mappings:
        raise ConfigError(f"the package's skeleton is missing or incomplete ({SKELETON})")
    return [(p, directory / p.name) for p in config] + [
        (p, directory / "mappings" / p.name) for p in mappings
    ]
