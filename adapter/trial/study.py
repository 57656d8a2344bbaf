"""The study definition (``config/study.yaml``), loaded and validated into a frozen
:class:`Study`. Errors name the file and the key, e.g. ``visits[2].window``.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import date, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

from adapter.errors import ConfigError

DEFAULT_STUDY = Path(__file__).resolve().parent.parent.parent / "config" / "study.yaml"
VISIT_RULES = ("nearest", "first", "last", "min", "max")
_STATUSES = (
    "active",
    "administratively-completed",
    "approved",
    "closed-to-accrual",
    "closed-to-accrual-and-intervention",
    "completed",
    "disapproved",
    "in-review",
    "temporarily-closed-to-accrual",
    "temporarily-closed-to-accrual-and-intervention",
    "withdrawn",
)
_OFFSET = re.compile(r"^([+-])(\d\d):(\d\d)$")
_CODE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


@dataclass(frozen=True, slots=True)
class Arm:
    code: str
    name: str
    description: str


@dataclass(frozen=True, slots=True)
class Visit:
    """A scheduled visit: target study day and its window (inclusive)."""

    code: str
    name: str
    target_day: int
    first_day: int
    last_day: int

    def contains(self, study_day: int) -> bool:
        return self.first_day <= study_day <= self.last_day


@dataclass(frozen=True, slots=True)
class Study:
    identifier_system: str
    identifier: str
    title: str
    status: str
    phase: str
    primary_purpose: str
    period_start: date
    period_end: date | None
    target_enrolment: int
    min_age: int
    max_age: int
    timezone: timezone
    site: str
    condition: dict[str, str]
    intervention: str
    arms: tuple[Arm, ...]
    analytes: tuple[str, ...]
    scores: tuple[str, ...]
    visits: tuple[Visit, ...]
    visit_value_rule: str

    def arm(self, code: str) -> Arm:
        for arm in self.arms:
            if arm.code == code:
                return arm
        known = ", ".join(a.code for a in self.arms)
        raise ConfigError(f"arm {code!r} is not one of this study's arms ({known})")

    def visit_for(self, study_day: int) -> Visit | None:
        """The visit whose window holds ``study_day``, or None (out of every window)."""
        return next((v for v in self.visits if v.contains(study_day)), None)

    @property
    def timepoint_system(self) -> str:
        """The code system of this study's timepoints (visit tags on Observations)."""
        return f"{self.identifier_system}:{self.identifier}:timepoint"


def load_study(path: Path = DEFAULT_STUDY) -> Study:
    """Read and validate a study file."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the study file: {exc.strerror}", path=str(path)) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", path=str(path)) from exc
    if not isinstance(doc, dict):
        raise ConfigError("the study file must hold a mapping", path=str(path))
    return _Reader(doc, str(path)).study()


class _Reader:
    """Validates one study document; every error names the file and the key."""

    def __init__(self, doc: dict[str, Any], path: str) -> None:
        self.doc = doc
        self.path = path

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{key}: {message}", path=self.path)

    def get(self, key: str, kind: type | tuple[type, ...], node: Any = None) -> Any:
        node = self.doc if node is None else node
        leaf = key.rsplit(".", 1)[-1].split("]")[-1] or key
        value = node.get(leaf) if isinstance(node, dict) else None
        if value is None:
            raise self.fail(key, "is required")
        if not isinstance(value, kind):
            raise self.fail(key, f"must be {_kind_name(kind)}, not {value!r}")
        return value

    def study(self) -> Study:
        identifier = self.get("identifier", dict)
        period = self.get("period", dict)
        ages = self.get("age_range", dict)
        study = Study(
            identifier_system=str(self.get("identifier.system", str, identifier)),
            identifier=str(self.get("identifier.value", str, identifier)),
            title=str(self.get("title", str)).strip(),
            status=self.choice("status", _STATUSES),
            phase=str(self.get("phase", str)),
            primary_purpose=str(self.get("primary_purpose", str)),
            period_start=self.get("period.start", date, period),
            period_end=period.get("end"),
            target_enrolment=self.positive("target_enrolment"),
            min_age=int(self.get("age_range.min", int, ages)),
            max_age=int(self.get("age_range.max", int, ages)),
            timezone=self.offset(),
            site=str(self.doc.get("site", "")),
            condition={str(k): str(v) for k, v in (self.doc.get("condition") or {}).items()},
            intervention=str(self.doc.get("intervention", "")),
            arms=self.arms(),
            analytes=tuple(str(a) for a in self.get("analytes", list)),
            scores=tuple(str(s) for s in self.doc.get("scores") or ()),
            visits=self.visits(),
            visit_value_rule=self.choice("visit_value_rule", VISIT_RULES),
        )
        if study.min_age > study.max_age:
            raise self.fail("age_range", "min is above max")
        return study

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        value = str(self.get(key, str))
        if value not in allowed:
            raise self.fail(key, f"{value!r} is not one of {', '.join(allowed)}")
        return value

    def positive(self, key: str) -> int:
        value = int(self.get(key, int))
        if value <= 0:
            raise self.fail(key, "must be a positive number")
        return value

    def offset(self) -> timezone:
        text = str(self.get("timezone", str))
        match = _OFFSET.match(text)
        if not match:
            raise self.fail("timezone", f"{text!r} must look like '+08:00'")
        sign = -1 if match[1] == "-" else 1
        return timezone(sign * timedelta(hours=int(match[2]), minutes=int(match[3])))

    def arms(self) -> tuple[Arm, ...]:
        arms = []
        for i, node in enumerate(self.get("arms", list)):
            key = f"arms[{i}]"
            code = str(self.get(f"{key}.code", str, node))
            if not _CODE.match(code):
                raise self.fail(f"{key}.code", f"{code!r} must be lower-case letters, digits, -")
            arms.append(
                Arm(code, str(self.get(f"{key}.name", str, node)), str(node.get("description", "")))
            )
        if len({a.code for a in arms}) != len(arms):
            raise self.fail("arms", "two arms share a code")
        return tuple(arms)

    def visits(self) -> tuple[Visit, ...]:
        visits = [self.visit(i, node) for i, node in enumerate(self.get("visits", list))]
        for earlier, later in itertools.pairwise(visits):
            if later.first_day <= earlier.last_day:
                raise self.fail("visits", f"the windows of {earlier.code} and {later.code} overlap")
        return tuple(visits)

    def visit(self, index: int, node: Any) -> Visit:
        key = f"visits[{index}]"
        code = str(self.get(f"{key}.code", str, node))
        week = int(self.get(f"{key}.week", int, node))
        window = self.get(f"{key}.window", list, node)
        if (
            len(window) != 2
            or not all(isinstance(d, int) for d in window)
            or window[0] > 0
            or window[1] < 0
        ):
            raise self.fail(f"{key}.window", "must be [days before (<= 0), days after (>= 0)]")
        target = 7 * week
        return Visit(
            code, str(node.get("name", code)), target, target + window[0], target + window[1]
        )


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {dict: "a mapping", list: "a list", str: "text", int: "a whole number", date: "a date"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)
