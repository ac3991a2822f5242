"""Turn request data into a float32 batch the model accepts, or say exactly what is wrong.

A model takes samples of one shape (its file's signature): ``(2,)`` for rows
of two features, ``(1, 8, 8)`` for 8×8 images, ``(T, D)`` for sequences. A
request sends each sample nested to that shape, or as one flat row of all its
values (row-major), which the server reshapes.

A ``/predict`` body that is plain JSON numbers goes straight from orjson into
one float32 array (:func:`read_predict_body`). Anything else takes the slow
road, which finds the first problem and names its position: pydantic checks
the types (numbers only), :func:`samples_to_batch` the sample count, ragged
samples, their shape against the model, NaN, infinity and float32 range. Both
roads accept exactly the same bodies and build the same batch.
"""

import functools
import json
import math
from collections.abc import Sequence
from itertools import chain
from typing import Any

import attrs
import numpy as np
import orjson
import pydantic
import torch

from kaslite.models import TensorSpec
from kaslite_serve.errors import InputError
from kaslite_serve.schemas import Number, PredictEnvelope, V2Tensor, first_shape

NUMBER_TYPES = frozenset({float, int})  # bool is a type of its own here: true is not a number

# Open Inference Protocol datatypes a float32 model can take.
NUMERIC_DATATYPES = frozenset(
    {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
)


def _values(count: int) -> str:
    return "1 value" if count == 1 else f"{count} values"


def shape_text(shape: Sequence[int]) -> str:
    return "×".join(map(str, shape))


def sample_text(spec: TensorSpec) -> str:
    """How one sample is sent: ``2 numbers``, or ``shape 1×8×8 (or a row of 64 numbers)``."""
    if len(spec.shape) == 1:
        return f"{spec.shape[0]} numbers"
    return f"shape {shape_text(spec.shape)} (or a row of {spec.size} numbers)"


@functools.cache
def _nested_numbers(levels: int) -> pydantic.TypeAdapter[Any]:
    kind: Any = Number
    for _ in range(levels):
        kind = list[kind]
    return pydantic.TypeAdapter(kind)


def check_numbers(samples: list[Any], field: str) -> None:
    """Every leaf of ``samples`` is a number, nested as deep as the first: else pydantic's words, by position."""
    try:
        _nested_numbers(max(len(first_shape(samples)), 2)).validate_python(samples)
    except pydantic.ValidationError as exc:
        raise InputError(validation_message(exc.errors(), prefix=field)) from None


def _index(position: Sequence[int]) -> str:
    return "".join(f"[{i}]" for i in position)


def _ragged(samples: list[Any], field: str) -> str | None:
    """Where the samples stop being one box of numbers, as a message; None when they are one."""
    expected = first_shape(samples[0])
    if len(expected) == 1:  # rows: the message row models always gave
        for index, row in enumerate(samples):
            if len(row) != expected[0]:
                first, other = _values(expected[0]), _values(len(row))
                return f"{field} rows differ in length: {field}[0] has {first}, {field}[{index}] has {other}"
        return None

    def walk(value: Any, dims: tuple[int, ...], position: tuple[int, ...]) -> str | None:
        if len(value) != dims[0]:
            like = _index((0,) * len(position))  # where the expected length was read
            return f"{field}{_index(position)} has {_values(len(value))}, {field}{like} has {dims[0]}"
        for index, inner in enumerate(value if len(dims) > 1 else ()):
            found = walk(inner, dims[1:], (*position, index))
            if found:
                return found
        return None

    for index, sample in enumerate(samples):
        found = walk(sample, expected, (index,))
        if found:
            return f"{field} samples differ in shape: {found}"
    return None


def samples_to_batch(samples: list[Any], spec: TensorSpec, max_rows: int, field: str = "data") -> torch.Tensor:
    """A ``(samples, *spec.shape)`` float32 tensor of ``samples`` (numbers, nested or flat per sample)."""
    if not samples:
        raise InputError(f"{field} has no rows; send at least one row of {sample_text(spec)}")
    if len(samples) > max_rows:
        raise InputError(f"{field} has {len(samples)} rows; at most {max_rows} are allowed per request")
    check_numbers(samples, field)
    ragged = _ragged(samples, field)
    if ragged:
        raise InputError(ragged)
    with np.errstate(over="ignore"):  # finite numbers beyond float32 become inf: found by position below
        batch = np.array(samples, dtype=np.float32)
    got = batch.shape[1:]
    if got != spec.shape and got != (spec.size,):
        if len(got) == 1 and len(spec.shape) == 1:
            raise InputError(f"{field} rows have {_values(got[0])}; the model takes input_dim = {spec.size}")
        raise InputError(f"{field} samples have shape {shape_text(got)}; the model takes {sample_text(spec)}")
    if not np.isfinite(batch).all():
        position = tuple(int(i) for i in np.argwhere(~np.isfinite(batch))[0])
        value: Any = samples
        for index in position:
            value = value[index]
        problem = "NaN" if math.isnan(value) else "infinite" if math.isinf(value) else "beyond float32 range (±3.4e38)"
        raise InputError(f"{field}{_index(position)} is {problem}; send finite numbers")
    return torch.from_numpy(batch.reshape(len(batch), *spec.shape))


@attrs.frozen
class PredictBody:
    """A ``/predict`` body: its samples as sent, the version asked for, and the batch when it was plain numbers."""

    samples: list[Any]
    model_version: str | None
    batch: np.ndarray | None = None


def read_predict_body(body: bytes) -> PredictBody:
    """The samples and version of a ``/predict`` body; a 422 naming the first problem when it is not valid."""
    return _plain(body) or _validated(body)


def _plain(body: bytes) -> PredictBody | None:
    """The fast road: only bodies the slow road would accept as they are, else None."""
    try:
        document = orjson.loads(body)  # refuses NaN and Infinity, which the slow road reports by position
    except orjson.JSONDecodeError:
        return None
    if type(document) is not dict:
        return None
    samples, version = document.get("data"), document.get("model_version")
    if type(samples) is not list or not samples:
        return None
    if type(version) is int:  # registries number their versions
        version = str(version)
    elif version is not None and type(version) is not str:
        return None
    level: list[Any] = samples
    try:
        while type(level[0]) is list:  # down to the numbers, every element at each level a list
            if set(map(type, level)) != {list}:
                return None
            level = list(chain.from_iterable(level))
        if not set(map(type, level)) <= NUMBER_TYPES:
            return None
        # Ragged samples raise, and take the slow road; numbers beyond float32 become inf, found by position later.
        with np.errstate(over="ignore"):
            batch = np.array(samples, dtype=np.float32)
    except (TypeError, ValueError, IndexError):
        return None
    return PredictBody(samples, version, batch) if batch.ndim >= 2 else None


def _validated(body: bytes) -> PredictBody:
    if not body.strip():
        raise InputError('the body is empty; send {"data": [[...], ...]}')
    try:
        document = json.loads(body)  # the standard library reads NaN and Infinity, so they are found below
    except (ValueError, UnicodeDecodeError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise InputError(f"body is not valid JSON ({reason})") from None
    try:
        # from_attributes: the message FastAPI gives for a body that is not an object.
        request = PredictEnvelope.model_validate(document, from_attributes=True)
    except pydantic.ValidationError as exc:
        raise InputError(validation_message(exc.errors())) from None
    return PredictBody(request.data, request.model_version)


def predict_batch(body: PredictBody, spec: TensorSpec, max_rows: int) -> torch.Tensor:
    """The batch of a ``/predict`` body for a model taking ``spec``; the plain array when it fits."""
    batch = body.batch
    if (
        batch is not None
        and len(batch) <= max_rows
        and batch.shape[1:] in (spec.shape, (spec.size,))
        and np.isfinite(batch).all()
    ):
        return torch.from_numpy(batch.reshape(len(batch), *spec.shape))
    return samples_to_batch(body.samples, spec, max_rows)


def validation_message(errors: Sequence[Any], shown: int = 3, prefix: str = "") -> str:
    """Pydantic's errors as one line: ``data[0][1]: Input should be a valid number; ...``."""
    parts = []
    for error in errors[:shown]:
        if error["type"] == "json_invalid":
            parts.append(f"body is not valid JSON ({error.get('ctx', {}).get('error', 'decode error')})")
            continue
        parts.append(f"{prefix + _location(error['loc']) or 'body'}: {error['msg']}")
    if len(errors) > shown:
        parts.append(f"and {len(errors) - shown} more")
    return "; ".join(parts)


def _location(loc: Sequence[Any]) -> str:
    text = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif "[" not in part:  # "list[number]" names a member of a union, not a field
            text += f".{part}" if text else part
    return text


def v2_batch(tensor: V2Tensor, spec: TensorSpec, max_rows: int) -> torch.Tensor:
    """The batch of an Open Inference Protocol input tensor of shape ``[rows, *spec.shape]`` or
    ``[rows, values]``; its data (numbers, as the schema checked) flat or nested as the shape says."""
    where = f"input {tensor.name!r}"
    if tensor.datatype not in NUMERIC_DATATYPES:
        raise InputError(f"{where} has datatype {tensor.datatype!r}; expected one of FP32, FP64, INT64, ...")
    shape = tuple(tensor.shape)
    if len(shape) < 2 or min(shape) < 0 or (len(shape) > 2 and shape[1:] != spec.shape):
        accepted = f"[rows, {', '.join(map(str, spec.shape))}]"
        if len(spec.shape) > 1:
            accepted += f" or [rows, {spec.size}]"
        raise InputError(f"{where} has shape {tensor.shape}; expected {accepted}")
    count = shape[0]
    if count > max_rows:  # checked before anything is sized by the (client-chosen) shape
        raise InputError(f"{where} has {count} rows; at most {max_rows} are allowed per request")
    per_row = math.prod(shape[1:])
    data = tensor.data
    if len(first_shape(data)) > 1:
        if first_shape(data) != shape or _ragged(data, "data"):
            layout = f"{count} rows of {_values(per_row)}" if len(shape) == 2 else f"nested {shape_text(shape)}"
            raise InputError(f"{where}: data is not {layout}, as its shape {tensor.shape} says")
        flat: list[Any] = np.asarray(data, dtype=np.float64).ravel().tolist()
    else:
        flat = data
        if len(flat) != count * per_row:
            raise InputError(f"{where}: shape {tensor.shape} needs {_values(count * per_row)}; data holds {len(flat)}")
    rows = [flat[start : start + per_row] for start in range(0, count * per_row, per_row)] if per_row else [[]] * count
    return samples_to_batch(rows, spec, max_rows, field=where)
