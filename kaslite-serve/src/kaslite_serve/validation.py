"""Turn request data into a float32 batch the model accepts, or say exactly what is wrong.

A ``/predict`` body that is plain JSON numbers goes straight from orjson into
one float32 array (:func:`read_predict_body`). Anything else takes the slow
road, which finds the first problem and names its position: pydantic checks
the types (numbers only), :func:`rows_to_batch` the row count, ragged rows,
row width against the model, NaN, infinity and float32 range. Both roads
accept exactly the same bodies and build the same batch.
"""

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

from kaslite_serve.errors import InputError
from kaslite_serve.schemas import PredictRequest, V2Tensor

NUMBER_TYPES = frozenset({float, int})  # bool is a type of its own here: true is not a number

# Open Inference Protocol datatypes a float32 model can take.
NUMERIC_DATATYPES = frozenset(
    {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
)


def _values(count: int) -> str:
    return "1 value" if count == 1 else f"{count} values"


def rows_to_batch(rows: Sequence[Sequence[float]], input_dim: int, max_rows: int, field: str = "data") -> torch.Tensor:
    """A ``(rows, input_dim)`` float32 tensor of ``rows``."""
    if not rows:
        raise InputError(f"{field} has no rows; send at least one row of {input_dim} numbers")
    if len(rows) > max_rows:
        raise InputError(f"{field} has {len(rows)} rows; at most {max_rows} are allowed per request")
    width = len(rows[0])
    for index, row in enumerate(rows):
        if len(row) != width:
            first, other = _values(width), _values(len(row))
            raise InputError(f"{field} rows differ in length: {field}[0] has {first}, {field}[{index}] has {other}")
    if width != input_dim:
        raise InputError(f"{field} rows have {_values(width)}; the model takes input_dim = {input_dim}")
    batch = torch.tensor(rows, dtype=torch.float32)
    if not bool(torch.isfinite(batch).all()):
        bad_row, column = (int(i) for i in (~torch.isfinite(batch)).nonzero()[0])
        value = rows[bad_row][column]
        problem = "NaN" if math.isnan(value) else "infinite" if math.isinf(value) else "beyond float32 range (±3.4e38)"
        raise InputError(f"{field}[{bad_row}][{column}] is {problem}; send finite numbers")
    return batch


@attrs.frozen
class PredictBody:
    """A ``/predict`` body: its rows as sent, the version asked for, and the batch when it was plain numbers."""

    rows: list[Any]
    model_version: str | None
    batch: np.ndarray | None = None


def read_predict_body(body: bytes) -> PredictBody:
    """The rows and version of a ``/predict`` body; a 422 naming the first problem when it is not valid."""
    return _plain(body) or _validated(body)


def _plain(body: bytes) -> PredictBody | None:
    """The fast road: only bodies pydantic would accept as they are, else None."""
    try:
        document = orjson.loads(body)  # refuses NaN and Infinity, which the slow road reports by position
    except orjson.JSONDecodeError:
        return None
    if type(document) is not dict:
        return None
    rows, version = document.get("data"), document.get("model_version")
    if type(rows) is not list or not rows:
        return None
    if type(version) is int:  # registries number their versions
        version = str(version)
    elif version is not None and type(version) is not str:
        return None
    try:
        if not set(map(type, chain.from_iterable(rows))) <= NUMBER_TYPES:
            return None
        # Ragged rows raise, and take the slow road; numbers beyond float32 become inf, found by position later.
        with np.errstate(over="ignore"):
            batch = np.array(rows, dtype=np.float32)
    except (TypeError, ValueError):
        return None
    return PredictBody(rows, version, batch) if batch.ndim == 2 else None


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
        request = PredictRequest.model_validate(document, from_attributes=True)
    except pydantic.ValidationError as exc:
        raise InputError(validation_message(exc.errors())) from None
    return PredictBody(request.data, request.model_version)


def predict_batch(body: PredictBody, input_dim: int, max_rows: int) -> torch.Tensor:
    """The batch of a ``/predict`` body for a model of ``input_dim``; the plain array when it fits."""
    batch = body.batch
    if batch is not None and len(batch) <= max_rows and batch.shape[1] == input_dim and np.isfinite(batch).all():
        return torch.from_numpy(batch)
    return rows_to_batch(body.rows, input_dim, max_rows)


def validation_message(errors: Sequence[Any], shown: int = 3) -> str:
    """Pydantic's errors as one line: ``data[0][1]: Input should be a valid number; ...``."""
    parts = []
    for error in errors[:shown]:
        if error["type"] == "json_invalid":
            parts.append(f"body is not valid JSON ({error.get('ctx', {}).get('error', 'decode error')})")
            continue
        parts.append(f"{_location(error['loc']) or 'body'}: {error['msg']}")
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


def v2_rows(tensor: V2Tensor, input_dim: int, max_rows: int) -> list[list[float]]:
    """The rows of an Open Inference Protocol input tensor of shape ``[rows, input_dim]``."""
    where = f"input {tensor.name!r}"
    if tensor.datatype not in NUMERIC_DATATYPES:
        raise InputError(f"{where} has datatype {tensor.datatype!r}; expected one of FP32, FP64, INT64, ...")
    if len(tensor.shape) != 2 or min(tensor.shape) < 0:
        raise InputError(f"{where} has shape {tensor.shape}; expected [rows, {input_dim}]")
    count, width = tensor.shape
    if count > max_rows:  # checked before anything is sized by the (client-chosen) shape
        raise InputError(f"{where} has {count} rows; at most {max_rows} are allowed per request")
    data = tensor.data
    if data and isinstance(data[0], list):  # nested: one list per row
        if len(data) != count or any(len(row) != width for row in data):
            raise InputError(f"{where}: data is not {count} rows of {width} values, as its shape {tensor.shape} says")
        return [list(row) for row in data]
    if len(data) != count * width:
        raise InputError(f"{where}: shape {tensor.shape} needs {_values(count * width)}; data holds {len(data)}")
    flat: list[float] = data  # type: ignore[assignment]
    return [flat[start : start + width] for start in range(0, count * width, width)] if width else [[]] * count
