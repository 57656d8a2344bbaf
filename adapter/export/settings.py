"""``config/sdtm.yaml``: the submission facts the SDTM export needs beyond the study file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from adapter.errors import ConfigError

DEFAULT_SDTM = Path(__file__).resolve().parent.parent.parent / "config" / "sdtm.yaml"
_COUNTRY = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True, slots=True)
class SdtmSettings:
    country: str  # ISO 3166-1 alpha-3
    site_id: str


def load_sdtm_settings(path: Path = DEFAULT_SDTM) -> SdtmSettings:
    """Read and check the file; errors name the file and the key."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the SDTM settings: {exc.strerror}", path=str(path)) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", path=str(path)) from exc
    if not isinstance(doc, dict):
        raise ConfigError("the SDTM settings must be a mapping", path=str(path))
    country = str(doc.get("country", ""))
    if not _COUNTRY.match(country):
        raise ConfigError(
            f"country: {country!r} must be an ISO 3166-1 alpha-3 code such as CHN",
            path=str(path),
        )
    site = str(doc.get("site_id", "")).strip()
    if not site or len(site) > 20 or not site.isascii():
        raise ConfigError(
            "site_id: give the site's identifier (ASCII, 1-20 characters)", path=str(path)
        )
    return SdtmSettings(country, site)
