"""Turn request data into a float32 batch the model accepts, or say exactly what is wrong.

Pydantic has already checked types (numbers only); the rest is checked here:
row count, ragged rows, row width against the model, NaN, infinity and
float32 range.
"""

import math
from collections.abc import Sequence

import torch

from kaslite_serve.errors import InputError
from kaslite_serve.schemas import V2Tensor

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
