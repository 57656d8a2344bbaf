"""The interface engineer's mapping files (``mappings/``), loaded and validated.

``analytes.yaml`` maps what the LIS sends in OBX-3 to the study's analytes (LOINC code and
canonical UCUM unit, with exact conversion factors); ``units.yaml`` maps the unit strings
labs write in OBX-6 to UCUM. Errors name the file and line, so a typo is found at start-up
rather than as a wrong number in the trial's data.

A code entry may be scoped to the sender (``application``: MSH-3.1, ``facility``: MSH-4.1),
so two LIS whose local codes overlap map to different analytes, and a code sent without a
coding system (OBX-3.3 empty, which HL7 v2.5.1 allows: CWE.3 is optional) can be mapped for
the one LIS that sends it. When several entries match, the most specific scope wins:
application and facility, then application, then facility, then any sender.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from adapter.errors import ConfigError

DEFAULT_MAPPINGS_DIR = Path(__file__).resolve().parent.parent / "mappings"
_LOINC = re.compile(r"^\d{1,7}-\d$")
_LINE = "__line__"
VALUE_KINDS = ("quantity", "text", "coded")


@dataclass(frozen=True, slots=True)
class Factor:
    """An exact conversion factor, kept as written: ``multiply / divide`` ("1/17.1")."""

    multiply: Decimal
    divide: Decimal = Decimal(1)

    def apply(self, value: Decimal) -> Decimal:
        """``value`` in the canonical unit, to as many significant digits as it was sent.

        Multiplying before dividing keeps exact results exact (51.3 / 17.1 = 3); the
        significant-digit rule keeps 5.847953216... from posing as a measurement.
        """
        if self.multiply == 1 and self.divide == 1:
            return value
        exact = value * self.multiply / self.divide
        return round_significant(exact, max(significant_digits(value), 2))


UNIT_FACTOR = Factor(Decimal(1))  # the canonical unit itself: nothing to convert


def significant_digits(value: Decimal) -> int:
    """How many significant digits a value was written with (0.50 -> 2, 120 -> 3)."""
    digits = value.as_tuple().digits
    stripped = len(digits) - next((i for i, d in enumerate(digits) if d), len(digits))
    return max(stripped, 1)


def round_significant(value: Decimal, digits: int) -> Decimal:
    """``value`` rounded half away from zero to ``digits`` significant digits."""
    if value == 0:
        return value
    exponent = value.adjusted() - digits + 1
    return value.quantize(Decimal(1).scaleb(exponent), rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class Analyte:
    """One study analyte: its LOINC code, canonical unit and the LIS codes that mean it."""

    key: str
    display: str
    loinc: str
    loinc_display: str
    unit: str  # canonical UCUM code ("" for text and coded analytes)
    factors: Mapping[str, Factor]  # other UCUM unit -> factor to the canonical unit
    value: str = "quantity"  # what OBX-5 must carry: quantity, text or coded
    line: int | None = None  # where the analyte is defined in analytes.yaml

    def factor_from(self, ucum: str) -> Factor | None:
        """The factor that turns a value in ``ucum`` into the canonical unit, if known."""
        if ucum == self.unit:
            return UNIT_FACTOR
        return self.factors.get(ucum)


@dataclass(frozen=True, slots=True)
class CodeRule:
    """One entry of an analyte's ``codes`` list, and the line it is written on."""

    system: str  # "" for a bare code (sent with OBX-3.3 empty)
    code: str
    analyte: str  # the analyte key
    line: int | None
    application: str = ""  # MSH-3.1 this entry is scoped to ("" for any)
    facility: str = ""  # MSH-4.1 this entry is scoped to ("" for any)

    @property
    def specificity(self) -> int:
        """Application and facility (3) beat application (2), facility (1), any sender (0)."""
        return 2 * bool(self.application) + bool(self.facility)

    def applies_to(self, application: str, facility: str) -> bool:
        """Whether a message from ``application`` at ``facility`` is in this entry's scope."""
        return (not self.application or self.application.upper() == application.upper()) and (
            not self.facility or self.facility.upper() == facility.upper()
        )

    def scope_text(self) -> str:
        """The scope in words, as ``explain`` shows it."""
        parts = [f"application {self.application}"] if self.application else []
        parts += [f"facility {self.facility}"] if self.facility else []
        return ", ".join(parts) or "any sender"


def _code_key(system: str, code: str) -> tuple[str, str]:
    return system.strip().upper(), code.strip().upper()


@dataclass(frozen=True, slots=True)
class MappingSet:
    """Everything in ``mappings/``: analytes by LIS code, and unit aliases."""

    version: str
    analytes: Mapping[str, Analyte]
    unit_aliases: Mapping[str, str] = field(default_factory=dict)  # lower-case text -> UCUM
    # (system upper, code upper) -> the entries for that code, the most specific scope first
    rules: Mapping[tuple[str, str], tuple[CodeRule, ...]] = field(default_factory=dict)
    directory: Path | None = None  # where the files were read from
    # The version plus a content hash of the files as loaded (see mappings_fingerprint):
    # computed once at load, not for every message.
    fingerprint: str = ""

    @property
    def provenance_version(self) -> str:
        """What the Provenance of a transaction names as the mappings that made it."""
        return self.fingerprint or self.version

    def rule_for(
        self, system: str, code: str, application: str = "", facility: str = ""
    ) -> CodeRule | None:
        """The ``codes`` entry an OBX-3 coding from ``application``/``facility`` (MSH-3.1,
        MSH-4.1) matches, the most specific scope first; None when none does."""
        for rule in self.rules.get(_code_key(system, code), ()):
            if rule.applies_to(application, facility):
                return rule
        return None

    def analyte_for(
        self, system: str, code: str, application: str = "", facility: str = ""
    ) -> Analyte | None:
        """The analyte an OBX-3 coding from that sender means, or None when not mapped."""
        rule = self.rule_for(system, code, application, facility)
        return self.analytes[rule.analyte] if rule else None

    def ucum_for(self, unit_text: str) -> str | None:
        """The UCUM code for what a lab wrote in OBX-6, or None when unknown."""
        return self.unit_aliases.get(unit_text.strip().lower())


class _LineLoader(yaml.SafeLoader):
    """A YAML loader that records the line of every mapping under ``__line__``."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping[_LINE] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_mappings(directory: Path = DEFAULT_MAPPINGS_DIR) -> MappingSet:
    """Load and validate ``analytes.yaml`` and ``units.yaml`` from ``directory``."""
    analytes_path = directory / "analytes.yaml"
    units_path = directory / "units.yaml"
    analytes_doc = _read_yaml(analytes_path)
    units_doc = _read_yaml(units_path)
    aliases = _unit_aliases(units_doc, units_path)
    analytes = _analytes(analytes_doc, analytes_path, set(aliases.values()))
    rules = _index_codes(analytes, analytes_path)
    by_key = {a.key: a for a, _ in analytes}
    version = str(_require(analytes_doc, "version", analytes_path))
    return MappingSet(
        version=version,
        analytes=by_key,
        unit_aliases=aliases,
        rules=rules,
        directory=directory,
        fingerprint=mappings_fingerprint(directory, version),
    )


def mappings_fingerprint(directory: Path, declared_version: str) -> str:
    """The mappings' declared version plus a content hash of every file in the directory, so
    an edit that forgot to bump the version is still told apart."""
    return f"{declared_version}+sha256:{content_digest(directory)}"


def content_digest(directory: Path) -> str:
    """A hash of every ``*.yaml`` file in ``directory`` (names and bytes): what the running
    service compares to notice a change (content, not mtime: a copy that keeps the mtime, or
    a clock step, must not hide an edit)."""
    return snapshot_digest(read_snapshot(directory))


def read_snapshot(directory: Path) -> dict[str, bytes]:
    """Every ``*.yaml`` file of ``directory``, by name (raises OSError)."""
    return {path.name: path.read_bytes() for path in sorted(directory.glob("*.yaml"))}


def snapshot_digest(files: Mapping[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name] + b"\0")
    return digest.hexdigest()[:16]


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the mapping file: {exc.strerror}", path=str(path)) from exc
    try:
        doc = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(f"not valid YAML: {exc}", path=str(path), line=line) from exc
    if not isinstance(doc, dict):
        raise ConfigError("the file must hold a mapping at the top level", path=str(path), line=1)
    return doc


def _require(node: dict[str, Any], key: str, path: Path) -> Any:
    if node.get(key) in (None, ""):
        raise ConfigError(f"'{key}' is required here", path=str(path), line=node.get(_LINE))
    return node[key]


def _unit_aliases(doc: dict[str, Any], path: Path) -> dict[str, str]:
    aliases = _require(doc, "aliases", path)
    if not isinstance(aliases, dict):
        raise ConfigError("'aliases' must map unit text to UCUM", path=str(path))
    return {str(text).strip().lower(): str(ucum) for text, ucum in aliases.items() if text != _LINE}


def _analytes(
    doc: dict[str, Any], path: Path, known_units: set[str]
) -> list[tuple[Analyte, list[dict[str, Any]]]]:
    section = _require(doc, "analytes", path)
    if not isinstance(section, dict):
        raise ConfigError("'analytes' must be a mapping of analyte keys", path=str(path))
    return [
        _analyte(str(key), node, path, known_units) for key, node in section.items() if key != _LINE
    ]


def _analyte(
    key: str, node: Any, path: Path, known_units: set[str]
) -> tuple[Analyte, list[dict[str, Any]]]:
    if not isinstance(node, dict):
        raise ConfigError(f"analyte '{key}' must be a mapping", path=str(path))
    loinc = str(_require(node, "loinc", path))
    if not _LOINC.match(loinc):
        raise ConfigError(
            f"analyte '{key}': LOINC code {loinc!r} is malformed (expected e.g. 1742-6)",
            path=str(path),
            line=node.get(_LINE),
        )
    value = str(node.get("value", "quantity"))
    if value not in VALUE_KINDS:
        raise ConfigError(
            f"analyte '{key}': value {value!r} must be one of {', '.join(VALUE_KINDS)}",
            path=str(path),
            line=node.get(_LINE),
        )
    unit = str(_require(node, "unit", path)) if value == "quantity" else str(node.get("unit", ""))
    codes = _require(node, "codes", path)
    if not isinstance(codes, list):
        raise ConfigError(f"analyte '{key}': 'codes' must be a list", path=str(path))
    analyte = Analyte(
        key=key,
        display=str(node.get("display", key)),
        loinc=loinc,
        loinc_display=str(node.get("loinc_display", node.get("display", key))),
        unit=unit,
        factors=_factors(key, node, path, known_units),
        value=value,
        line=node.get(_LINE),
    )
    return analyte, codes


def _factors(key: str, node: dict[str, Any], path: Path, known: set[str]) -> dict[str, Factor]:
    convert = node.get("convert") or {}
    factors: dict[str, Factor] = {}
    for ucum, text in convert.items():
        if ucum == _LINE:
            continue
        if ucum not in known:
            raise ConfigError(
                f"analyte '{key}': conversion from {ucum!r}, which no alias in units.yaml "
                "produces, can never apply",
                path=str(path),
                line=convert.get(_LINE),
            )
        factors[str(ucum)] = _parse_factor(str(text), key, path, convert.get(_LINE))
    return factors


def _parse_factor(text: str, key: str, path: Path, line: int | None) -> Factor:
    """``"1/17.1"`` or ``"10"`` -> Factor, exactly (a division is kept as written)."""
    try:
        numerator, _, denominator = text.partition("/")
        factor = Factor(Decimal(numerator.strip()), Decimal(denominator.strip() or "1"))
        if factor.divide == 0 or factor.multiply <= 0:
            raise ZeroDivisionError
        return factor
    except (InvalidOperation, ZeroDivisionError) as exc:
        raise ConfigError(
            f"analyte '{key}': conversion factor {text!r} is not a number like '10' or '1/17.1'",
            path=str(path),
            line=line,
        ) from exc


def _index_codes(
    analytes: list[tuple[Analyte, list[dict[str, Any]]]], path: Path
) -> dict[tuple[str, str], tuple[CodeRule, ...]]:
    index: dict[tuple[str, str, str, str], CodeRule] = {}
    for analyte, codes in analytes:
        for entry in codes:
            rule = _code_rule(analyte, entry, path)
            key = (
                *_code_key(rule.system, rule.code),
                rule.application.upper(),
                rule.facility.upper(),
            )
            earlier = index.get(key)
            if earlier is not None and earlier.analyte != analyte.key:
                raise ConfigError(
                    f"code {rule.code} ({rule.system or 'no system'}, {rule.scope_text()}) is "
                    f"mapped to both '{earlier.analyte}' (line {earlier.line}) and '{analyte.key}'",
                    path=str(path),
                    line=rule.line,
                )
            index.setdefault(key, rule)
    grouped: dict[tuple[str, str], list[CodeRule]] = {}
    for (system, code, _, _), rule in index.items():
        grouped.setdefault((system, code), []).append(rule)
    return {
        key: tuple(sorted(rules, key=lambda r: -r.specificity)) for key, rules in grouped.items()
    }


_CODE_KEYS = frozenset({"system", "code", "application", "facility", _LINE})


def _code_rule(analyte: Analyte, entry: Any, path: Path) -> CodeRule:
    line = entry.get(_LINE) if isinstance(entry, dict) else analyte.line
    if not isinstance(entry, dict) or not entry.get("code"):
        raise ConfigError(
            f"analyte '{analyte.key}': each code needs 'code' (and 'system' unless the LIS "
            "sends it without one; then scope it with 'application'/'facility')",
            path=str(path),
            line=line,
        )
    unknown = sorted(str(k) for k in set(entry) - _CODE_KEYS)
    if unknown:
        raise ConfigError(
            f"analyte '{analyte.key}': unknown key '{unknown[0]}' in a code "
            "(expected: system, code, application, facility)",
            path=str(path),
            line=line,
        )
    return CodeRule(
        system=str(entry.get("system") or "").strip(),
        code=str(entry["code"]).strip(),
        analyte=analyte.key,
        line=line,
        application=str(entry.get("application") or "").strip(),
        facility=str(entry.get("facility") or "").strip(),
    )
