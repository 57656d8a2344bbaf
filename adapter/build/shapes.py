"""Validation against the R4B models, once per *shape*.

Validating every resource with pydantic was ~75% of translating a message, yet the builders
make a handful of shapes (the same keys, nesting and list lengths, message after message);
only the leaf values vary. :class:`ShapeValidator` validates a resource of a new shape in full
with the ``fhir.resources.R4B`` model, and learns from that validation, for each leaf, the
R4B primitive type of its element (``code``, ``dateTime``, ``decimal``, ``uri``, ...). A
resource whose shape was seen before has each leaf checked with the validator of that same
primitive type (a pydantic ``TypeAdapter`` over the model's own annotation: the same regex,
format and type rules). What the full validation checks beyond the leaves — unknown
elements, required elements, choice types, cardinality, ``None``/empty objects — depends
on the shape alone, and the shape is the cache key, so every resource is still checked
against the R4B definitions for all that varies.

A shape is the structure with each leaf replaced by its Python type, plus the value of every
``resourceType``, written flat (markers for the start and end of objects and lists) so that
it is one walk and one tuple. Unknown shapes beyond :data:`MAX_SHAPES` are validated in full
every time.

Most leaves are the same strings message after message (systems, codes, displays) or
within a message (times, references): each string leaf's place in a shape remembers the last
values (up to :data:`MAX_REMEMBERED`) its check passed, and the same value is not checked
again there (a primitive's check depends on the value alone). Other leaves (decimals,
numbers) are checked every time.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from functools import cache
from typing import Any

from pydantic import BaseModel, TypeAdapter

MAX_SHAPES = 2048
MAX_REMEMBERED = 256
Leaf = Callable[[Any], Any]
Shape = tuple[Any, ...]  # flat: markers, keys, Python types and resourceType values
Plan = tuple[tuple[Leaf, set[str] | None], ...]  # per leaf: its check, the values it passed

# Markers in a flat shape: objects, not strings, so that no key can be taken for one.
_OBJECT, _LIST, _END, _RESOURCE_TYPE = object(), object(), object(), object()


class _NoPlanError(Exception):
    """The shape has something the leaf checks cannot follow: validate it in full."""


class ShapeValidator:
    """``validate(resource)`` raises pydantic's ``ValidationError`` as ``model_validate`` would."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model
        self._plans: dict[Shape, Plan | None] = {}

    def validate(self, resource: dict[str, Any]) -> None:
        shape: list[Any] = []
        leaves: list[Any] = []
        _walk(resource, shape, leaves)
        key = tuple(shape)
        plan = self._plans.get(key, ())
        if plan:
            _check_leaves(plan, leaves)
            return
        instance = self.model.model_validate(resource)
        if key not in self._plans and len(self._plans) < MAX_SHAPES:
            self._plans[key] = _learn(resource, instance)


def _walk(node: Any, shape: list[Any], leaves: list[Any]) -> None:
    """Append the flat structure of ``node`` to ``shape`` and its leaf values to ``leaves``.

    Exact types, not ``isinstance``: the hottest loop of a build. A subclass of dict or list
    is a leaf of its own type here, and :func:`_learn_value` makes no plan for a shape with
    one, so such a resource is validated in full.
    """
    kind = type(node)
    if kind is dict:
        shape.append(_OBJECT)
        for key, value in node.items():
            kind = type(value)
            if key == "resourceType":
                shape += (key, _RESOURCE_TYPE, value)
            elif kind is dict or kind is list:
                shape.append(key)
                _walk(value, shape, leaves)
            else:
                shape += (key, kind)
                leaves.append(value)
        shape.append(_END)
    elif kind is list:
        shape.append(_LIST)
        for item in node:
            _walk(item, shape, leaves)
        shape.append(_END)
    else:
        shape.append(kind)
        leaves.append(node)


def _check_leaves(plan: Plan, leaves: list[Any]) -> None:
    for (check, passed), value in zip(plan, leaves, strict=True):
        if passed is None:
            check(value)
        elif value not in passed:
            check(value)
            if len(passed) >= MAX_REMEMBERED:  # forget the old ones: values drift (times)
                passed.clear()
            passed.add(value)


def _learn(resource: dict[str, Any], instance: BaseModel) -> Plan | None:
    """The leaf checks of a validated resource, in the order :func:`_walk` lists leaves."""
    checks: list[tuple[Leaf, set[str] | None]] = []
    try:
        _learn_object(resource, instance, checks)
    except _NoPlanError:
        return None
    return tuple(checks)


def _learn_object(
    node: dict[str, Any], instance: BaseModel, checks: list[tuple[Leaf, set[str] | None]]
) -> None:
    fields = _fields(type(instance))
    for key, value in node.items():
        if key == "resourceType":
            continue
        if key not in fields:
            raise _NoPlanError(key)
        name, annotation = fields[key]
        _learn_value(value, annotation, getattr(instance, name), checks)


def _learn_value(
    value: Any, annotation: Any, validated: Any, checks: list[tuple[Leaf, set[str] | None]]
) -> None:
    if type(value) is list:  # exact types, as _walk reads them
        if not isinstance(validated, list) or len(validated) != len(value):
            raise _NoPlanError("list")
        for item, done in zip(value, validated, strict=True):
            _learn_value(item, _element(annotation), done, checks)
    elif type(value) is dict:
        if not isinstance(validated, BaseModel):
            raise _NoPlanError("object")
        _learn_object(value, validated, checks)
    elif isinstance(value, dict | list):  # a subclass, a leaf for _walk: no leaf check fits
        raise _NoPlanError("subclass")
    else:
        # Only exact strings are remembered: always hashable, and equal means the same text.
        checks.append((_primitive(_element(annotation)), set() if type(value) is str else None))


@cache
def _fields(model: type[BaseModel]) -> dict[str, tuple[str, Any]]:
    """JSON name -> (attribute name, annotation) for a model's fields."""
    return {
        (field.alias or name): (name, field.annotation)
        for name, field in model.model_fields.items()
    }


def _element(annotation: Any) -> Any:
    """The annotation without ``Optional`` and ``List`` around it."""
    while True:
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if origin in (typing.Union, types.UnionType):
            rest = [a for a in args if a is not type(None)]
            if len(rest) != 1:
                raise _NoPlanError("union")
            annotation = rest[0]
        elif origin is list:
            annotation = args[0]
        else:
            return annotation


@cache
def _primitive(annotation: Any) -> Leaf:
    """The validator of one R4B primitive type (the model's own annotation)."""
    if typing.get_origin(annotation) is not typing.Annotated:
        raise _NoPlanError("not a primitive")
    return TypeAdapter(annotation).validate_python
