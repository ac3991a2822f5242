"""The ``file`` dataset: the user's own .npz or .csv, and every way such a file can be wrong."""

import numpy as np
import pytest

from kaslite.config.structure import structure
from kaslite.errors import ConfigError, InvalidValue
from kaslite_datasets.params import FileParams

# Row i of X is (i, 10 i): the first column tells which original row an output row came from.
X = np.array([[i, 10 * i] for i in range(12)], dtype=np.float64)
LABELS = np.array([7, 3, 9, 3, 7, 9, 9, 3, 7, 3, 7, 9])
MAPPED = np.array([1, 0, 2, 0, 1, 2, 2, 0, 1, 0, 1, 2])  # 3 -> 0, 7 -> 1, 9 -> 2 by sorted value


def write_csv(path, text):
    path.write_text(text)
    return path


def check_round_trip(data, mapped=MAPPED):
    assert data.X.dtype == np.float32 and data.y.dtype == np.int64
    assert data.X.shape == (12, 2) and data.y.shape == (12,)
    assert data.num_classes == 3
    rows = data.X[:, 0].astype(int)
    assert sorted(rows.tolist()) == list(range(12))  # every row once
    assert np.array_equal(data.X, X[rows].astype(np.float32))
    assert np.array_equal(data.y, mapped[rows])
    assert not np.array_equal(rows, np.arange(12))  # shuffled


def test_npz_round_trip(generate, tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, X=X, y=LABELS)
    check_round_trip(generate("file", path=str(path)))


def test_npz_from_kaslite_data_generate_with_extra_arrays(generate, tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, X=X.astype(np.float32), y=LABELS, num_classes=np.int64(3), metadata=np.array('{"seed": 0}'))
    check_round_trip(generate("file", path=str(path)))


def test_npz_string_labels_map_by_sorted_value(generate, tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, X=X, y=np.array(["ant", "bee", "cat"])[MAPPED])  # 3 -> ant, 7 -> bee, 9 -> cat
    check_round_trip(generate("file", path=str(path)))


def test_csv_without_header(generate, tmp_path):
    lines = [f"{a},{b},{label}" for (a, b), label in zip(X, LABELS, strict=True)]
    path = write_csv(tmp_path / "data.csv", "\n".join(lines) + "\n\n")  # a trailing blank line is ignored
    check_round_trip(generate("file", path=str(path)))


def test_csv_with_header(generate, tmp_path):
    lines = ["x0,x1,label"] + [f"{a},{b},{label}" for (a, b), label in zip(X, LABELS, strict=True)]
    path = write_csv(tmp_path / "data.CSV", "\n".join(lines))
    check_round_trip(generate("file", path=str(path)))


def test_csv_with_byte_order_mark_keeps_its_first_row(generate, tmp_path):
    lines = [f"{a},{b},{label}" for (a, b), label in zip(X, LABELS, strict=True)]
    path = tmp_path / "data.csv"
    path.write_text("\n".join(lines), encoding="utf-8-sig")
    check_round_trip(generate("file", path=str(path)))


def test_same_seed_same_order_other_seed_different(generate, tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, X=X, y=LABELS)
    first, again, other = (generate("file", seed=s, path=str(path)) for s in (1, 1, 2))
    assert np.array_equal(first.X, again.X) and np.array_equal(first.y, again.y)
    assert not np.array_equal(first.X, other.X)


# -- errors when the params are built ----------------------------------------


def test_path_is_required():
    with pytest.raises(ConfigError, match=r"missing required field.*path"):
        structure({}, FileParams)


def test_missing_file(tmp_path):
    missing = str(tmp_path / "nope.csv")
    with pytest.raises(InvalidValue, match="no such file") as caught:
        structure({"path": missing}, FileParams)
    assert caught.value.field == "path" and caught.value.value == missing
    assert "path" in str(caught.value) and missing in str(caught.value)


def test_directory_is_not_a_file(tmp_path):
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(InvalidValue, match=r"path.*no such file"):
        structure({"path": str(tmp_path / "folder.csv")}, FileParams)


@pytest.mark.parametrize("name", ["data.txt", "data.npy", "data"])
def test_unsupported_extension(tmp_path, name):
    path = tmp_path / name
    path.write_text("1,2,0\n")
    with pytest.raises(InvalidValue, match=r"path.*must be a \.npz or \.csv file") as caught:
        structure({"path": str(path)}, FileParams)
    assert caught.value.field == "path"


def test_empty_path():
    with pytest.raises(InvalidValue, match=r"path.*non-empty"):
        structure({"path": "  "}, FileParams)


# -- errors when the contents are read ---------------------------------------


BAD_NPZ = {
    "no y": ({"X": X}, "must hold arrays X and y; it has ['X']"),
    "no X": ({"features": X, "y": LABELS}, "must hold arrays X and y; it has ['features', 'y']"),
    "1-D X": ({"X": X[:, 0], "y": LABELS}, "X must be a numeric 2-D array"),
    "3-D X": ({"X": X.reshape(12, 2, 1), "y": LABELS}, "X must be a numeric 2-D array"),
    "no columns": ({"X": np.zeros((12, 0)), "y": LABELS}, "X must be a numeric 2-D array"),
    "text X": ({"X": X.astype(str), "y": LABELS}, "X must be a numeric 2-D array"),
    "length mismatch": ({"X": X, "y": LABELS[:-1]}, "one label per row of X (12)"),
    "2-D y": ({"X": X, "y": LABELS.reshape(12, 1)}, "y must be 1-D"),
    "pickled X": ({"X": np.array([{}, {}], dtype=object), "y": LABELS[:2]}, "readable .npz"),
    "one class": ({"X": X, "y": np.zeros(12)}, "at least 2 classes; found 1"),
    "NaN": ({"X": np.where(X == 40, np.nan, X), "y": LABELS}, "finite"),
}


@pytest.mark.parametrize("case", sorted(BAD_NPZ))
def test_malformed_npz(generate, tmp_path, case):
    arrays, expected = BAD_NPZ[case]
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    assert_bad_contents(generate, path, expected)


def test_npz_that_is_not_a_zip(generate, tmp_path):
    path = tmp_path / "data.npz"
    path.write_bytes(b"not a zip archive at all")
    assert_bad_contents(generate, path, "readable .npz archive")


def test_npz_that_is_a_single_npy_array(generate, tmp_path):
    path = tmp_path / "data.npz"
    with path.open("wb") as f:
        np.save(f, X)
    assert_bad_contents(generate, path, "not a single array")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a,b,label\n1,2,0\n3,x,1\n", "line 3 is not numeric"),
        ("1,2,0\n3,4\n", "line 2 has 2 columns, expected 3"),
        ("1,2,0\n,4,1\n", "line 2 is not numeric"),
        ("0\n1\n", "at least 2 columns"),
        ("label\n0\n1\n", "at least 2 columns"),
        ("x0,x1,label\n", "no data rows"),
        ("", "no data rows"),
        ("1,2,5\n3,4,5\n", "at least 2 classes; found 1"),
        ("1,nan,0\n3,4,1\n", "finite"),
    ],
)
def test_malformed_csv(generate, tmp_path, text, expected):
    assert_bad_contents(generate, write_csv(tmp_path / "data.csv", text), expected)


def test_csv_that_is_not_text(generate, tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(b"\xff\xfe\x00binary")
    assert_bad_contents(generate, path, "readable UTF-8 .csv")


def assert_bad_contents(generate, path, expected):
    with pytest.raises(InvalidValue) as caught:
        generate("file", path=str(path))
    assert caught.value.field == "path" and caught.value.value == str(path)
    message = str(caught.value)
    assert message.startswith(f"invalid path = {str(path)!r}: ")
    assert expected in message
