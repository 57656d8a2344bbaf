"""The per-shape validation the benchmark led to (adapter/build/shapes.py): a resource whose
shape was validated before is still refused when a value is not valid R4."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest
from fhir.resources.R4B.observation import Observation
from pydantic import ValidationError

from adapter.build.shapes import ShapeValidator


def observation() -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "identifier": [{"system": "urn:trialbridge:lis-result", "value": "A1^LIS/ALT^L/1"}],
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "1742-6"}]},
        "subject": {"reference": "urn:uuid:0b9f6c1e-1d7f-5a8e-9c1b-0f6b0d7b1a11"},
        "effectiveDateTime": "2024-01-15T08:30:00+08:00",
        "valueQuantity": {"value": Decimal("42"), "unit": "U/L", "code": "U/L"},
    }


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        (("effectiveDateTime",), "2024-13-45T08:30:00+08:00"),  # not a dateTime
        (("effectiveDateTime",), "2024-01-15T08:30:00"),  # a time needs its offset
        (("status",), "final "),  # not a code (trailing space)
        (("valueQuantity", "value"), "forty-two"),  # not a decimal
        (("valueQuantity", "code"), ""),  # an empty code
        (("subject", "reference"), ""),  # an empty string
    ],
)
def test_a_known_shape_with_an_invalid_value_is_refused(path: tuple[str, ...], bad: str) -> None:
    validator = ShapeValidator(Observation)
    validator.validate(observation())  # learns the shape
    validator.validate(observation())  # and checks the next one leaf by leaf
    invalid = copy.deepcopy(observation())
    node = invalid
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = bad
    with pytest.raises(ValidationError):
        Observation.model_validate(invalid)  # the reference: pydantic refuses it
    with pytest.raises(ValidationError):
        validator.validate(invalid)


def test_a_new_shape_is_validated_in_full() -> None:
    validator = ShapeValidator(Observation)
    validator.validate(observation())
    unknown = {**observation(), "valueOfTheDay": "x"}  # not an R4 element
    missing = {k: v for k, v in observation().items() if k != "status"}  # status is required
    for invalid in (unknown, missing):
        with pytest.raises(ValidationError):
            validator.validate(invalid)


class _Dict(dict[str, Any]):
    pass


def test_dict_and_list_subclasses_are_validated_in_full() -> None:
    validator = ShapeValidator(Observation)
    for _ in range(2):  # the second time, the shape is known
        valid = {**observation(), "code": _Dict(observation()["code"])}
        validator.validate(valid)
        invalid = {**valid, "status": "final "}
        with pytest.raises(ValidationError):
            validator.validate(invalid)
