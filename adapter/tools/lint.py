"""``trialbridge mappings check``: lint ``mappings/`` before it goes live.

Works on the YAML node tree (every key and value keeps its line), so a finding can point at
the exact line, and every problem in the files is reported, not only the first. Checks:

* schema: unknown keys, wrong types, missing fields, duplicate keys (YAML keeps the last);
* codes: the same OBX-3 code twice, or mapped to two analytes (in the same sender scope); a
  bare code (no system) mapped without a sender scope (``application``/``facility``);
* LOINC codes malformed or with a wrong Mod 10 check digit (:mod:`adapter.tools.loinc`);
* units that are not valid UCUM, in ``unit``, ``convert`` and the aliases of ``units.yaml``;
* conversions: a factor that contradicts dimensional analysis (g/L -> g/dL must be 1/10), a
  conversion no alias can produce, commensurable alias units with no conversion (their
  results would be held). Molar <-> mass factors need a molar mass and are accepted as written.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

import yaml

from adapter.mappings import VALUE_KINDS
from adapter.tools.loinc import loinc_problem
from adapter.tools.ucum import UcumConverter, same_factor, ucum_problem

Level = Literal["error", "warning"]
_STR = "tag:yaml.org,2002:str"
_ANALYTE_KEYS = frozenset(
    {"display", "loinc", "loinc_display", "unit", "convert", "codes", "value"}
)
_LOINC_SYSTEMS = frozenset({"LN", "LOINC"})
_SCOPE = ("application", "facility")
_CODE_KEYS = frozenset({"system", "code", *_SCOPE})


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: where, how bad, and what."""

    file: str
    line: int
    level: Level
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.level}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Sink:
    """Collects findings for one file."""

    file: str
    findings: list[Finding] = field(default_factory=list)

    def add(self, node: yaml.Node, level: Level, message: str) -> None:
        self.findings.append(Finding(self.file, node.start_mark.line + 1, level, message))


@dataclass(frozen=True, slots=True)
class _Alias:
    text: str
    ucum: str
    line: int
    valid: bool


def lint_directory(directory: Path, converter: UcumConverter | None = None) -> list[Finding]:
    """Lint ``analytes.yaml`` and ``units.yaml`` in ``directory`` (the thin I/O shell)."""
    texts = {}
    for name in ("analytes.yaml", "units.yaml"):
        path = directory / name
        try:
            texts[name] = path.read_text(encoding="utf-8")
        except OSError as exc:
            return [Finding(str(path), 0, "error", f"cannot read the file: {exc.strerror}")]
    return lint_mappings(
        texts["analytes.yaml"],
        texts["units.yaml"],
        analytes_file=str(directory / "analytes.yaml"),
        units_file=str(directory / "units.yaml"),
        converter=converter or UcumConverter(),
    )


def lint_mappings(
    analytes_text: str,
    units_text: str,
    *,
    analytes_file: str = "analytes.yaml",
    units_file: str = "units.yaml",
    converter: UcumConverter,
) -> list[Finding]:
    """Every finding in the two files, sorted by file and line."""
    units, analytes = _Sink(units_file), _Sink(analytes_file)
    aliases = _lint_units(_compose(units_text, units), units)
    _lint_analytes(_compose(analytes_text, analytes), analytes, aliases, converter)
    return sorted(analytes.findings + units.findings, key=lambda f: (f.file, f.line))


def _compose(text: str, sink: _Sink) -> yaml.Node | None:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        sink.findings.append(Finding(sink.file, line, "error", f"not valid YAML: {exc}"))
        return None
    if not isinstance(node, yaml.MappingNode):
        sink.findings.append(Finding(sink.file, 1, "error", "the top level must be a mapping"))
        return None
    return node


def _pairs(node: yaml.MappingNode, sink: _Sink, where: str) -> Iterator[tuple[str, yaml.Node]]:
    """The (key, value node) pairs of a mapping; duplicate keys are reported."""
    seen: dict[str, int] = {}
    for key_node, value in node.value:
        key = str(key_node.value)
        if key in seen:
            sink.add(
                key_node,
                "error",
                f"{where}: '{key}' is repeated (first on line "
                f"{seen[key]}); YAML keeps only the last",
            )
        seen[key] = key_node.start_mark.line + 1
        yield key, value


def _string(node: yaml.Node, sink: _Sink, what: str) -> str | None:
    if isinstance(node, yaml.ScalarNode) and node.tag == _STR and node.value != "":
        return str(node.value)
    if isinstance(node, yaml.ScalarNode) and node.value not in ("", "~", "null"):
        sink.add(node, "warning", f"{what} {node.value!r} should be a quoted string")
        return str(node.value)
    sink.add(node, "error", f"{what} must be a non-empty string")
    return None


# --- units.yaml ---------------------------------------------------------------------------


def _lint_units(root: yaml.Node | None, sink: _Sink) -> list[_Alias]:
    if not isinstance(root, yaml.MappingNode):
        return []
    section: yaml.Node | None = None
    for key, value in _pairs(root, sink, "units.yaml"):
        if key == "aliases":
            section = value
        else:
            sink.add(value, "error", f"unknown key '{key}' (expected: aliases)")
    if not isinstance(section, yaml.MappingNode):
        sink.add(root, "error", "'aliases' is required and must map unit text to UCUM")
        return []
    return _aliases(section, sink)


def _aliases(section: yaml.MappingNode, sink: _Sink) -> list[_Alias]:
    aliases: dict[str, _Alias] = {}
    for text, node in _pairs(section, sink, "aliases"):
        ucum = _scalar_text(node)
        if ucum is None:
            sink.add(node, "error", f"alias {text!r} must map to a UCUM code (a string)")
            continue
        problem = ucum_problem(ucum)
        if problem:
            sink.add(
                node, "error", f"alias {text!r} maps to {ucum!r}, which is not UCUM: {problem}"
            )
        alias = _Alias(text, ucum, node.start_mark.line + 1, problem is None)
        folded = text.strip().lower()
        earlier = aliases.get(folded)
        if earlier and earlier.text != text:
            level: Level = "error" if earlier.ucum != ucum else "warning"
            sink.add(
                node,
                level,
                f"alias {text!r} is the same text as {earlier.text!r} "
                f"(line {earlier.line}) once case is ignored; the last one wins",
            )
        aliases[folded] = alias
    return list(aliases.values())


def _scalar_text(node: yaml.Node) -> str | None:
    if isinstance(node, yaml.ScalarNode):
        return str(node.value)
    return None


# --- analytes.yaml ------------------------------------------------------------------------


@dataclass
class _Codes:
    """Where each (SYSTEM, CODE) was first seen, to find duplicates and conflicts."""

    seen: dict[tuple[str, str, str, str], tuple[str, int]] = field(default_factory=dict)


def _lint_analytes(
    root: yaml.Node | None, sink: _Sink, aliases: list[_Alias], converter: UcumConverter
) -> None:
    if not isinstance(root, yaml.MappingNode):
        return
    parts = dict(_pairs(root, sink, "analytes.yaml"))
    for key in sorted(set(parts) - {"version", "analytes"}):
        sink.add(parts[key], "error", f"unknown key '{key}' (expected: version, analytes)")
    if "version" not in parts:
        sink.add(root, "error", "'version' is required (it is recorded on every Provenance)")
    else:
        _string(parts["version"], sink, "version")
    section = parts.get("analytes")
    if not isinstance(section, yaml.MappingNode):
        sink.add(section or root, "error", "'analytes' is required and must be a mapping")
        return
    codes = _Codes()
    for key, node in _pairs(section, sink, "analytes"):
        _lint_analyte(key, node, sink, aliases, converter, codes)


def _lint_analyte(
    key: str,
    node: yaml.Node,
    sink: _Sink,
    aliases: list[_Alias],
    converter: UcumConverter,
    codes: _Codes,
) -> None:
    if not isinstance(node, yaml.MappingNode):
        sink.add(node, "error", f"analyte '{key}' must be a mapping")
        return
    fields = dict(_pairs(node, sink, f"analyte '{key}'"))
    for name in sorted(set(fields) - _ANALYTE_KEYS):
        sink.add(
            fields[name],
            "error",
            f"analyte '{key}': unknown key '{name}' (expected: {', '.join(sorted(_ANALYTE_KEYS))})",
        )
    kind = _value_kind(key, fields, sink)
    for name in ("display", "loinc_display"):
        if name in fields:
            _string(fields[name], sink, f"analyte '{key}': {name}")
    _lint_loinc(key, fields, node, sink)
    _lint_codes(key, fields.get("codes"), node, sink, codes)
    unit = _lint_unit(key, fields, node, sink, aliases, kind)
    _lint_convert(key, fields.get("convert"), sink, aliases, converter, unit)
    if unit and kind == "quantity":
        _missing_conversions(key, fields, node, sink, aliases, converter, unit)


def _value_kind(key: str, fields: dict[str, yaml.Node], sink: _Sink) -> str:
    if "value" not in fields:
        return "quantity"
    kind = _string(fields["value"], sink, f"analyte '{key}': value")
    if kind not in VALUE_KINDS:
        sink.add(
            fields["value"],
            "error",
            f"analyte '{key}': value {kind!r} must be one of {', '.join(VALUE_KINDS)}",
        )
        return "quantity"
    return kind


def _lint_loinc(key: str, fields: dict[str, yaml.Node], node: yaml.Node, sink: _Sink) -> None:
    if "loinc" not in fields:
        sink.add(node, "error", f"analyte '{key}': 'loinc' is required")
        return
    code = _string(fields["loinc"], sink, f"analyte '{key}': loinc")
    problem = loinc_problem(code) if code else None
    if problem:
        sink.add(fields["loinc"], "error", f"analyte '{key}': {problem}")


def _lint_codes(
    key: str, node: yaml.Node | None, parent: yaml.Node, sink: _Sink, codes: _Codes
) -> None:
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        sink.add(
            node or parent,
            "error",
            f"analyte '{key}': 'codes' is required and must be a "
            "non-empty list of {system, code} (optionally application, facility)",
        )
        return
    for entry in node.value:
        if not isinstance(entry, yaml.MappingNode):
            sink.add(entry, "error", f"analyte '{key}': each code must be {{system, code}}")
            continue
        parts = dict(_pairs(entry, sink, f"analyte '{key}' code"))
        for name in sorted(set(parts) - _CODE_KEYS):
            sink.add(
                parts[name],
                "error",
                f"analyte '{key}': unknown key '{name}' in a code "
                "(expected: system, code, application, facility)",
            )
        if "code" not in parts:
            sink.add(entry, "error", f"analyte '{key}': a code needs code")
            continue
        scope = {
            n: _string(parts[n], sink, f"analyte '{key}': {n}") or "" for n in _SCOPE if n in parts
        }
        system = (
            _string(parts["system"], sink, f"analyte '{key}': system") if "system" in parts else ""
        )
        code = _string(parts["code"], sink, f"analyte '{key}': code")
        if code and system is not None:
            _one_code(
                key,
                _Code(system, code, scope.get("application", ""), scope.get("facility", "")),
                entry,
                sink,
                codes,
            )


@dataclass(frozen=True, slots=True)
class _Code:
    """One code entry: the coding and the sender scope (MSH-3.1 / MSH-4.1) it applies to."""

    system: str
    code: str
    application: str
    facility: str

    def ident(self) -> tuple[str, str, str, str]:
        return (
            self.system.strip().upper(),
            self.code.strip().upper(),
            self.application.strip().upper(),
            self.facility.strip().upper(),
        )

    def text(self) -> str:
        scope = [f"application {self.application}"] if self.application else []
        scope += [f"facility {self.facility}"] if self.facility else []
        return f"{self.code} ({', '.join([self.system or 'no system', *scope])})"


def _one_code(key: str, entry_code: _Code, entry: yaml.Node, sink: _Sink, codes: _Codes) -> None:
    system, code = entry_code.system, entry_code.code
    if system.upper() in _LOINC_SYSTEMS and (problem := loinc_problem(code)):
        sink.add(entry, "error", f"analyte '{key}': {problem}")
    if not system and not (entry_code.application or entry_code.facility):
        sink.add(
            entry,
            "warning",
            f"analyte '{key}': code {code} has no system (a bare code, OBX-3.3 empty) and no "
            "scope: every LIS that sends a bare "
            f"{code} would map to '{key}'; add application: (MSH-3) and/or facility: (MSH-4)",
        )
    ident = entry_code.ident()
    line = entry.start_mark.line + 1
    if ident in codes.seen:
        other, other_line = codes.seen[ident]
        if other == key:
            sink.add(
                entry,
                "warning",
                f"analyte '{key}': code {entry_code.text()} is listed twice "
                f"(also line {other_line})",
            )
        else:
            sink.add(
                entry,
                "error",
                f"code {entry_code.text()} is mapped to both '{other}' "
                f"(line {other_line}) and '{key}'",
            )
        return
    codes.seen[ident] = (key, line)


def _lint_unit(
    key: str,
    fields: dict[str, yaml.Node],
    node: yaml.Node,
    sink: _Sink,
    aliases: list[_Alias],
    kind: str,
) -> str | None:
    if "unit" not in fields:
        if kind == "quantity":
            sink.add(node, "error", f"analyte '{key}': 'unit' (canonical UCUM) is required")
        return None
    unit = _string(fields["unit"], sink, f"analyte '{key}': unit")
    if unit is None:
        return None
    if problem := ucum_problem(unit):
        sink.add(fields["unit"], "error", f"analyte '{key}': unit {unit!r} is not UCUM: {problem}")
        return None
    if aliases and unit not in {a.ucum for a in aliases}:
        sink.add(
            fields["unit"],
            "warning",
            f"analyte '{key}': no alias in units.yaml gives "
            f"{unit!r}, so results sent in the canonical unit would be held",
        )
    return unit


def _lint_convert(
    key: str,
    node: yaml.Node | None,
    sink: _Sink,
    aliases: list[_Alias],
    converter: UcumConverter,
    unit: str | None,
) -> None:
    if node is None:
        return
    if not isinstance(node, yaml.MappingNode):
        sink.add(node, "error", f"analyte '{key}': 'convert' must map UCUM units to factors")
        return
    produced = {a.ucum for a in aliases}
    for source, value in _pairs(node, sink, f"analyte '{key}' convert"):
        where = f"analyte '{key}': conversion from {source!r}"
        if problem := ucum_problem(source):
            sink.add(value, "error", f"{where}: not UCUM: {problem}")
            continue
        if aliases and source not in produced:
            sink.add(
                value,
                "error",
                f"{where}: no alias in units.yaml produces it, so it can never apply",
            )
        if source == unit:
            sink.add(value, "warning", f"{where}: it is already the canonical unit")
        factor = _factor(value, sink, where)
        if factor is not None and unit is not None:
            _dimensional(where, source, unit, factor, value, sink, converter)


def _factor(node: yaml.Node, sink: _Sink, where: str) -> Decimal | None:
    text = _scalar_text(node)
    if text is None:
        sink.add(node, "error", f"{where}: the factor must be a number like '10' or '1/17.1'")
        return None
    if isinstance(node, yaml.ScalarNode) and node.tag != _STR:
        sink.add(node, "warning", f"{where}: write the factor {text} quoted, so it stays exact")
    numerator, _, denominator = text.partition("/")
    try:
        factor = Decimal(numerator.strip()) / Decimal(denominator.strip() or "1")
    except (InvalidOperation, ZeroDivisionError):
        sink.add(node, "error", f"{where}: factor {text!r} is not a number like '10' or '1/17.1'")
        return None
    if factor <= 0:
        sink.add(node, "error", f"{where}: factor {text!r} must be positive")
        return None
    return factor


def _dimensional(
    where: str,
    source: str,
    unit: str,
    factor: Decimal,
    node: yaml.Node,
    sink: _Sink,
    converter: UcumConverter,
) -> None:
    expected = converter.factor(source, unit)
    if expected is not None and not same_factor(factor, expected):
        sink.add(
            node,
            "error",
            f"{where} to {unit!r}: factor {_scalar_text(node)!r} is "
            f"wrong; dimensionally 1 {source} = {_plain(expected)} {unit}",
        )


def _missing_conversions(
    key: str,
    fields: dict[str, yaml.Node],
    node: yaml.Node,
    sink: _Sink,
    aliases: list[_Alias],
    converter: UcumConverter,
    unit: str,
) -> None:
    if converter.factor(unit, "1") is not None:
        return  # dimensionless (%, {INR}): every ratio is commensurable, none is implied
    convert = fields.get("convert")
    declared = (
        {str(k.value) for k, _ in convert.value} if isinstance(convert, yaml.MappingNode) else set()
    )
    missing = []
    for ucum in sorted({a.ucum for a in aliases if a.valid} - declared - {unit}):
        expected = converter.factor(ucum, unit)
        if expected is not None:
            missing.append(f"{ucum} (x{_plain(expected)})")
    if missing:
        sink.add(
            fields.get("convert") or fields["unit"],
            "warning",
            f"analyte '{key}': units "
            f"in units.yaml commensurable with {unit} have no conversion, so results in "
            f"them would be held: {', '.join(missing)}",
        )


def _plain(number: Decimal) -> str:
    text = format(number.normalize(), "f")
    return text
