"""/predict bodies: the fast road (orjson into one float32 array) answers exactly as the slow, checking road."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaslite.models import TensorSpec
from kaslite_serve.errors import InputError
from kaslite_serve.validation import _validated, predict_batch, read_predict_body

MAX_ROWS = 5
ROWS = TensorSpec((2,), "float32")  # rows of two features
IMAGES = TensorSpec((1, 2, 2), "float32")  # 1×2×2 images, sent nested or as rows of 4


def outcome(read, body: bytes, spec: TensorSpec = ROWS):
    """(batch as a list, version) or the 422 message, reading ``body`` with ``read``."""
    try:
        parsed = read(body)
        batch = predict_batch(parsed, spec, MAX_ROWS)
    except InputError as exc:
        return "422", exc.message
    assert batch.dtype.is_floating_point and tuple(batch.shape) == (len(parsed.samples), *spec.shape)
    return batch.numpy().tolist(), parsed.model_version


@pytest.mark.parametrize(
    "body",
    [
        b'{"data": [[0.5, -1.25], [2, 3]]}',
        b'{"data": [[1e38, -0.0]], "model_version": 3}',
        b'{"model_version": "7", "extra": {"a": [1]}, "data": [[1.5e-45, 123456789012345678901234567890]]}',
        b'{"data": [[1.0, 1e39]]}',  # beyond float32: found by position
        # 2**60 + 2**36 + 1: float32 by way of a double (as JSON numbers always went) differs from direct rounding
        b'{"data": [[1152921573326323713, 0]]}',
        b'{"data": [[1.0, 2.0]], "data": [[3.0, 4.0]]}',  # the last key wins, on both roads
        b'{"data": [[true, 1.0]]}',
        b'{"data": [[null, 1.0]]}',
        b'{"data": [["1", 1.0]]}',
        b'{"data": [[1.0, 2.0], [1.0]]}',
        b'{"data": [[], []]}',
        b'{"data": [[[1.0], 2.0]]}',
        b'{"data": [1.0, 2.0]}',
        b'{"data": [{}]}',
        b'{"data": [""]}',
        b'{"data": []}',
        b'{"data": [[0.0, 0.0]], "model_version": 1.5}',
        b'{"data": [[0.0, 0.0]], "model_version": true}',
        b'{"data": [[0.5, NaN]]}',
        b'{"data": [[1' + b"0" * 400 + b", 1]]}",
        b'{"data": [[0.0, 0.0]]' + b", [0.0, 0.0]" * 5 + b"]}",  # one row too many
        '{"data": [[0.5, -1.25]]}'.encode("utf-16"),
        b"\xef\xbb\xbf" + b'{"data": [[0.5, -1.25]]}',
        b"[1, 2]",
        b"{not json",
        b"",
    ],
)
def test_both_roads_agree(body):
    assert outcome(read_predict_body, body) == outcome(_validated, body)
    assert outcome(read_predict_body, body, IMAGES) == outcome(_validated, body, IMAGES)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"data": [[[[1, 2], [3, 4]]]]}', [[[[1.0, 2.0], [3.0, 4.0]]]]),
        (b'{"data": [[1, 2, 3, 4]]}', [[[[1.0, 2.0], [3.0, 4.0]]]]),  # a flat row, reshaped
        (b'{"data": [[[[1, 2], [3]]]]}',
         "data samples differ in shape: data[0][0][1] has 1 value, data[0][0][0] has 2"),
        (b'{"data": [[[[1, 2], [3, 4]]], [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]]}',
         "data samples differ in shape: data[1] has 2 values, data[0] has 1"),
        (b'{"data": [[[1, 2], [3, 4]]]}',
         "data samples have shape 2×2; the model takes shape 1×2×2 (or a row of 4 numbers)"),
        (b'{"data": [[1, 2, 3]]}', "data samples have shape 3; the model takes shape 1×2×2 (or a row of 4 numbers)"),
        (b'{"data": [[[[1, "2"], [3, 4]]]]}', "data[0][0][0][1]: Input should be a valid number"),
        (b'{"data": [[[[1, 2], [3, NaN]]]]}', "data[0][0][1][1] is NaN; send finite numbers"),
        (b'{"data": []}', "data has no rows; send at least one row of shape 1×2×2 (or a row of 4 numbers)"),
    ],
)  # fmt: skip
def test_images_come_nested_or_as_flat_rows(body, expected):
    answer = outcome(read_predict_body, body, IMAGES)
    assert answer == outcome(_validated, body, IMAGES)
    assert answer == ((expected, None) if isinstance(expected, list) else ("422", expected))


numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(min_value=-(2**70), max_value=2**70),
)
values = st.one_of(numbers, st.booleans(), st.none(), st.text(max_size=3))
samples = st.recursive(st.lists(numbers, max_size=4), lambda inner: st.lists(inner, max_size=2), max_leaves=8)
rows = st.lists(st.one_of(samples, st.lists(values, max_size=3), values), max_size=7)
documents = st.fixed_dictionaries(
    {"data": st.one_of(rows, values)},
    optional={"model_version": st.one_of(st.none(), st.integers(-5, 5), st.text(max_size=3), st.floats())},
)


@settings(max_examples=400, deadline=None, database=None)
@given(documents)
def test_both_roads_agree_on_any_document(document):
    body = json.dumps(document).encode()
    assert outcome(read_predict_body, body) == outcome(_validated, body)
    assert outcome(read_predict_body, body, IMAGES) == outcome(_validated, body, IMAGES)


def test_plain_numbers_take_the_fast_road():
    parsed = read_predict_body(b'{"data": [[0.5, -1.25], [2, 3]], "model_version": 4}')
    assert parsed.batch is not None and parsed.batch.dtype == np.float32 and parsed.model_version == "4"
