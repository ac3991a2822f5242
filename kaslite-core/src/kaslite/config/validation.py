"""attrs validators whose errors name the field, the value and what is allowed.

Plugins use them for their own parameter classes, so every bad value a user
types reads the same way::

    @attrs.frozen
    class MyParams:
        n_samples: int = attrs.field(default=500, validator=positive)
"""

import math
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from kaslite.errors import InvalidValue

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def positive(instance: object, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    """Allow finite numbers strictly above zero."""
    if not (_number(value) and math.isfinite(value) and value > 0):
        raise InvalidValue(attribute.name, value, "must be a number > 0")


def non_negative(instance: object, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    """Allow finite numbers at or above zero."""
    if not (_number(value) and math.isfinite(value) and value >= 0):
        raise InvalidValue(attribute.name, value, "must be a number >= 0")


def at_least(minimum: float) -> Validator:
    """Allow numbers >= ``minimum``."""

    def check(instance: object, attribute: "attrs.Attribute[Any]", value: Any) -> None:
        if not (_number(value) and math.isfinite(value) and value >= minimum):
            raise InvalidValue(attribute.name, value, f"must be >= {minimum}")

    return check


def integer_at_least(minimum: int) -> Validator:
    """Allow integers >= ``minimum`` (a float like 2.5 would break array shapes later)."""

    def check(instance: object, attribute: "attrs.Attribute[Any]", value: Any) -> None:
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= minimum):
            raise InvalidValue(attribute.name, value, f"must be an integer >= {minimum}")

    return check


def between(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Validator:
    """Allow numbers in the interval, each end closed unless marked open."""
    left = "(" if low_open else "["
    right = ")" if high_open else "]"

    def check(instance: object, attribute: "attrs.Attribute[Any]", value: Any) -> None:
        ok = _number(value) and math.isfinite(value)
        if ok:
            ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
        if not ok:
            raise InvalidValue(attribute.name, value, f"must be in {left}{low}, {high}{right}")

    return check


def one_of(choices: Iterable[str]) -> Validator:
    """Allow one of a fixed set of strings."""
    allowed = tuple(choices)

    def check(instance: object, attribute: "attrs.Attribute[Any]", value: Any) -> None:
        if value not in allowed:
            raise InvalidValue(attribute.name, value, f"must be one of {', '.join(allowed)}")

    return check


def non_empty(instance: object, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    """Allow a non-blank string."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(attribute.name, value, "must be a non-empty string")
