"""The study definition (``config/study.yaml``), loaded and validated into a frozen
:class:`Study`. Errors name the file, the line and the key, e.g.
``config/study.yaml:41: visits[2].window: ...``: unknown keys (with the nearest known one),
unknown score names, arms, visit windows that overlap or are out of order. Analyte names are
checked against the mappings by :meth:`Study.check_analytes` (the study does not load them).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

from adapter.config import key_lines, nearest
from adapter.errors import ConfigError
from adapter.scores.codes import SCORE_CODES

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
# The keys a study file may hold, per place (a typo is an error, never silently ignored).
_KEYS: dict[str, frozenset[str]] = {
    "": frozenset(
        {
            "identifier", "title", "status", "phase", "primary_purpose", "period",
            "target_enrolment", "age_range", "timezone", "site", "condition", "intervention",
            "arms", "analytes", "scores", "visits", "visit_value_rule",
        }
    ),
    "identifier": frozenset({"system", "value"}),
    "period": frozenset({"start", "end"}),
    "age_range": frozenset({"min", "max"}),
    "condition": frozenset({"system", "code", "display"}),
    "arms[]": frozenset({"code", "name", "description"}),
    "visits[]": frozenset({"code", "name", "week", "window"}),
}  # fmt: skip


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
    path: str = field(default="", compare=False, repr=False)
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    def check_analytes(self, known: Collection[str], where: str = "the mappings") -> None:
        """Every analyte the study collects is one the mappings define (else the report and
        the visit tables would have nothing to read it by)."""
        for i, key in enumerate(self.analytes):
            if key not in known:
                raise ConfigError(
                    f"analytes[{i}]: {key!r} is not an analyte of {where}{nearest(key, known)}",
                    path=self.path or None,
                    line=self.lines.get(f"analytes[{i}]"),
                )

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
    return _Reader(doc, str(path), key_lines(path.read_text(encoding="utf-8"))).study()


class _Reader:
    """Validates one study document; every error names the file, the line and the key."""

    def __init__(self, doc: dict[str, Any], path: str, lines: dict[str, int]) -> None:
        self.doc = doc
        self.path = path
        self.lines = lines

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{key}: {message}", path=self.path, line=self.line(key))

    def line(self, key: str) -> int | None:
        """The line of ``key``, or of the nearest enclosing key that has one."""
        while key:
            if key in self.lines:
                return self.lines[key]
            key = re.sub(r"(\.[^.\[]*|\[\d+\])$", "", key) if re.search(r"[.\[]", key) else ""
        return None

    def only_known(self) -> None:
        """Every key of the document is one a study file may hold."""
        self._known(self.doc, "", "")
        for place in ("identifier", "period", "age_range", "condition"):
            if isinstance(self.doc.get(place), dict):
                self._known(self.doc[place], place, place)
        for place in ("arms", "visits"):
            for i, node in enumerate(self.doc.get(place) or ()):
                if isinstance(node, dict):
                    self._known(node, f"{place}[]", f"{place}[{i}]")

    def _known(self, node: dict[str, Any], place: str, at: str) -> None:
        allowed = _KEYS[place]
        for key in node:
            if key not in allowed:
                where = f"{at}.{key}" if at else str(key)
                raise self.fail(where, f"unknown key{nearest(str(key), allowed)}")

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
        self.only_known()
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
            analytes=self.names("analytes", self.get("analytes", list)),
            scores=self.scores(),
            visits=self.visits(),
            visit_value_rule=self.choice("visit_value_rule", VISIT_RULES),
            path=self.path,
            lines=self.lines,
        )
        if study.min_age > study.max_age:
            raise self.fail("age_range", "min is above max")
        return study

    def names(self, key: str, values: list[Any]) -> tuple[str, ...]:
        for i, value in enumerate(values):
            if not isinstance(value, str) or not value:
                raise self.fail(f"{key}[{i}]", f"must be a name, not {value!r}")
        if len(set(values)) != len(values):
            raise self.fail(key, "names an entry twice")
        return tuple(values)

    def scores(self) -> tuple[str, ...]:
        scores = self.doc.get("scores") or []
        if not isinstance(scores, list):
            raise self.fail("scores", f"must be a list, not {scores!r}")
        names = self.names("scores", scores)
        for i, name in enumerate(names):
            if name not in SCORE_CODES:
                raise self.fail(
                    f"scores[{i}]", f"{name!r} is not a score{nearest(name, SCORE_CODES)}"
                )
        return names

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
        if len({v.code for v in visits}) != len(visits):
            raise self.fail("visits", "two visits share a code")
        for i, (earlier, later) in enumerate(itertools.pairwise(visits), start=1):
            if later.target_day < earlier.target_day:
                raise self.fail(
                    f"visits[{i}]",
                    f"{later.code} (day {later.target_day}) is listed after {earlier.code} (day "
                    f"{earlier.target_day}): list the visits in the order of their weeks",
                )
            if later.first_day <= earlier.last_day:
                raise self.fail(
                    f"visits[{i}].window",
                    f"the windows of {earlier.code} (days {earlier.first_day} to "
                    f"{earlier.last_day}) and {later.code} (days {later.first_day} to "
                    f"{later.last_day}) overlap",
                )
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
