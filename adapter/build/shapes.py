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
``resourceType``. Unknown shapes beyond :data:`MAX_SHAPES` are validated in full every time.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from functools import cache
from typing import Any

from pydantic import BaseModel, TypeAdapter

MAX_SHAPES = 2048
Leaf = Callable[[Any], Any]
Shape = Any  # nested tuples of keys, Python types and resourceType values


class _NoPlanError(Exception):
    """The shape has something the leaf checks cannot follow: validate it in full."""


class ShapeValidator:
    """``validate(resource)`` raises pydantic's ``ValidationError`` as ``model_validate`` would."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model
        self._plans: dict[Shape, tuple[Leaf, ...] | None] = {}

    def validate(self, resource: dict[str, Any]) -> None:
        leaves: list[Any] = []
        shape = _shape(resource, leaves)
        plan = self._plans.get(shape, ())
        if plan:
            for check, value in zip(plan, leaves, strict=True):
                check(value)
            return
        instance = self.model.model_validate(resource)
        if shape not in self._plans and len(self._plans) < MAX_SHAPES:
            self._plans[shape] = _learn(resource, instance)


def _shape(node: Any, leaves: list[Any]) -> Shape:
    """The structure of ``node``; its leaf values are appended to ``leaves`` in order."""
    if isinstance(node, dict):
        return tuple(
            (key, ("=", value) if key == "resourceType" else _shape(value, leaves))
            for key, value in node.items()
        )
    if isinstance(node, list):
        return ("[", *(_shape(item, leaves) for item in node))
    leaves.append(node)
    return type(node)


def _learn(resource: dict[str, Any], instance: BaseModel) -> tuple[Leaf, ...] | None:
    """The leaf checks of a validated resource, in the order :func:`_shape` lists leaves."""
    checks: list[Leaf] = []
    try:
        _learn_object(resource, instance, checks)
    except _NoPlanError:
        return None
    return tuple(checks)


def _learn_object(node: dict[str, Any], instance: BaseModel, checks: list[Leaf]) -> None:
    fields = _fields(type(instance))
    for key, value in node.items():
        if key == "resourceType":
            continue
        if key not in fields:
            raise _NoPlanError(key)
        name, annotation = fields[key]
        _learn_value(value, annotation, getattr(instance, name), checks)


def _learn_value(value: Any, annotation: Any, validated: Any, checks: list[Leaf]) -> None:
    if isinstance(value, list):
        if not isinstance(validated, list) or len(validated) != len(value):
            raise _NoPlanError("list")
        for item, done in zip(value, validated, strict=True):
            _learn_value(item, _element(annotation), done, checks)
    elif isinstance(value, dict):
        if not isinstance(validated, BaseModel):
            raise _NoPlanError("object")
        _learn_object(value, validated, checks)
    else:
        checks.append(_primitive(_element(annotation)))


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
