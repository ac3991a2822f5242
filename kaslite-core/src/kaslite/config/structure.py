"""One cattrs converter for every config and parameter class in kaslite.

It is strict where the default converter is lenient (``int(5.7)`` would
silently become 5, ``bool("no")`` would be True) and turns cattrs' nested
exception groups into a single :class:`InvalidValue` naming the full path
of the first bad field.
"""

from collections.abc import Mapping
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

from kaslite.errors import ConfigError, InvalidValue

T = TypeVar("T")

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


class _TypeMismatch(ValueError):
    def __init__(self, value: object, expected: str) -> None:
        self.value = value
        self.expected = expected
        super().__init__(f"expected {expected}, got {value!r}")


def _structure_int(value: Any, _: type) -> int:
    if isinstance(value, bool):
        raise _TypeMismatch(value, "an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise _TypeMismatch(value, "an integer")


def _structure_float(value: Any, _: type) -> float:
    if isinstance(value, bool):
        raise _TypeMismatch(value, "a number")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise _TypeMismatch(value, "a number")


def _structure_bool(value: Any, _: type) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise _TypeMismatch(value, "true or false")


def _structure_str(value: Any, _: type) -> str:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise _TypeMismatch(value, "a string")


def make_converter() -> cattrs.Converter:
    """A converter that forbids unknown keys and never coerces silently."""
    converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook(bool, _structure_bool)
    converter.register_structure_hook(str, _structure_str)
    return converter


converter = make_converter()


def _first_error(exc: BaseException, path: str) -> ConfigError:
    """Walk cattrs' exception groups down to the first leaf, keeping the path."""
    if isinstance(exc, ClassValidationError):
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            return _first_error(sub, f"{path}.{note.name}" if path else note.name)
        for sub in without:
            return _first_error(sub, path)
    if isinstance(exc, IterableValidationError):
        indexed, unindexed = exc.group_exceptions()
        for sub, index_note in indexed:
            return _first_error(sub, f"{path}[{index_note.index!r}]")
        for sub in unindexed:
            return _first_error(sub, path)
    if isinstance(exc, InvalidValue):
        return exc.with_prefix(path)
    if isinstance(exc, _TypeMismatch):
        return InvalidValue(path, exc.value, f"expected {exc.expected}")
    if isinstance(exc, ForbiddenExtraKeysError):
        known = ", ".join(a.name for a in attrs.fields(exc.cl)) if attrs.has(exc.cl) else ""
        unknown = ", ".join(sorted(exc.extra_fields))
        where = f" in {path}" if path else ""
        return ConfigError(f"unknown field(s) {unknown}{where}; allowed: {known}")
    if isinstance(exc, KeyError):
        # cattrs has already put the missing field's name on the path.
        return ConfigError(f"missing required field {path or exc.args[0]}")
    if isinstance(exc, ConfigError):
        return exc
    return ConfigError(f"invalid {path or 'value'}: {exc}")


def structure(data: Mapping[str, Any] | None, cls: type[T], path: str = "") -> T:
    """Build ``cls`` from plain data, raising one :class:`ConfigError` on bad input."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"invalid {path or cls.__name__}: expected a mapping, got {data!r}")
    try:
        return converter.structure(dict(data), cls)
    except ConfigError as exc:
        raise (exc.with_prefix(path) if isinstance(exc, InvalidValue) else exc) from None
    except Exception as exc:  # cattrs groups, validators, type mismatches
        raise _first_error(exc, path) from None


def unstructure(obj: Any) -> Any:
    """Plain data (dicts, lists, scalars) for YAML, JSON and MLflow params."""
    return converter.unstructure(obj)
