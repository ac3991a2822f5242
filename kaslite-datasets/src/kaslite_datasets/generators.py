"""``generate(params, seed) -> DataArrays`` for each dataset.

numpy is imported inside the functions, not at the top: the plugin imports this
module to build its DatasetSpecs, and ``kaslite --help`` loads every plugin.
Every result depends only on ``(params, seed)``: all randomness comes from
``numpy.random.default_rng(seed)``.
"""

import csv
import math
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from kaslite.errors import InvalidValue
from kaslite.hookspecs import DataArrays
from kaslite_datasets.params import (
    ClustersParams,
    ComplexMoonsParams,
    DigitsParams,
    FileParams,
    MoonsParams,
    SpheresParams,
    SpiralsParams,
)

if TYPE_CHECKING:
    import numpy as np

# Cluster centres are drawn uniformly from [-CENTER_BOX, CENTER_BOX]^input_dim, as sklearn's make_blobs does.
CENTER_BOX = 10.0
# complex_moons: class c's extra cluster sits just beyond the *other* class's moon, so neither class is one
# connected region. The two centres are point-symmetric about the moons' centre (0.5, 0.25).
COMPLEX_CLUSTER_CENTERS = ((1.0, -1.25), (0.0, 1.75))
COMPLEX_CLUSTER_STD = 0.2


def _class_sizes(n_samples: int, n_classes: int) -> list[int]:
    """Split ``n_samples`` as evenly as possible; the first classes take the remainder."""
    base, extra = divmod(n_samples, n_classes)
    return [base + (label < extra) for label in range(n_classes)]


def _pad(rng: "np.random.Generator", X: "np.ndarray", input_dim: int, noise: float) -> "np.ndarray":
    """Append ``input_dim - X.shape[1]`` columns of pure Gaussian noise (std ``noise``)."""
    import numpy as np

    extra = input_dim - X.shape[1]
    if extra <= 0:
        return X
    return np.hstack([X, rng.normal(0.0, noise, (X.shape[0], extra))])


def _finish(rng: "np.random.Generator", parts: list["np.ndarray"], labels: list[int], num_classes: int) -> DataArrays:
    """Stack the per-part points, label each part, and shuffle the rows so classes interleave."""
    import numpy as np

    X = np.concatenate(parts)
    y = np.concatenate([np.full(len(part), label, dtype=np.int64) for part, label in zip(parts, labels, strict=True)])
    order = rng.permutation(len(X))
    return DataArrays(X=np.ascontiguousarray(X[order], dtype=np.float32), y=y[order], num_classes=num_classes)


def _moon(rng: "np.random.Generator", label: int, size: int, noise: float) -> "np.ndarray":
    """``size`` points on moon ``label`` (0: upper half circle, 1: lower one, shifted), as in make_moons."""
    import numpy as np

    angle = rng.uniform(0.0, math.pi, size)
    if label == 0:
        points = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    else:
        points = np.stack([1.0 - np.cos(angle), 0.5 - np.sin(angle)], axis=1)
    return points + rng.normal(0.0, noise, points.shape)


def generate_spirals(params: SpiralsParams, seed: int) -> DataArrays:
    import numpy as np

    rng = np.random.default_rng(seed)
    extra_std = params.noise if params.extra_std is None else params.extra_std
    parts: list[np.ndarray] = []
    for label, size in enumerate(_class_sizes(params.n_samples, 2)):
        if params.mirror and label == 1:
            points = -parts[0][:size, :2]  # class 0 negated, noise included
        else:
            # The classic two spirals: the radius equals the angle turned (in radians), so it grows by
            # 2*pi per turn and the two classes' arms stay pi apart whatever `rotations` is. sqrt
            # spreads the points evenly along each arm's length.
            radius = np.sqrt(rng.uniform(0.0, 1.0, size)) * params.rotations * 2 * math.pi
            angle = radius + label * math.pi  # class 1 is class 0 turned half a turn
            points = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
            points = points + rng.normal(0.0, params.noise, points.shape)
        parts.append(_pad(rng, points, params.input_dim, extra_std))
    return _finish(rng, parts, [0, 1], 2)


def generate_moons(params: MoonsParams, seed: int) -> DataArrays:
    import numpy as np

    rng = np.random.default_rng(seed)
    parts = [
        _pad(rng, _moon(rng, label, size, params.noise), params.input_dim, params.noise)
        for label, size in enumerate(_class_sizes(params.n_samples, 2))
    ]
    return _finish(rng, parts, [0, 1], 2)


def generate_clusters(params: ClustersParams, seed: int) -> DataArrays:
    import numpy as np

    rng = np.random.default_rng(seed)
    centers = rng.uniform(-CENTER_BOX, CENTER_BOX, (params.n_centers, params.input_dim))
    parts = [
        centers[label] + rng.normal(0.0, params.cluster_std, (size, params.input_dim))
        for label, size in enumerate(_class_sizes(params.n_samples, params.n_centers))
    ]
    return _finish(rng, parts, list(range(params.n_centers)), params.n_centers)


def generate_spheres(params: SpheresParams, seed: int) -> DataArrays:
    import numpy as np

    rng = np.random.default_rng(seed)
    parts = []
    for label, size in enumerate(_class_sizes(params.n_samples, params.n_shells)):
        # A normalised Gaussian vector is uniform on the unit sphere in any dimension.
        direction = rng.standard_normal((size, params.input_dim))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        radius = (label + 1) + rng.normal(0.0, params.noise, (size, 1))
        parts.append(direction * radius)
    return _finish(rng, parts, list(range(params.n_shells)), params.n_shells)


def generate_complex_moons(params: ComplexMoonsParams, seed: int) -> DataArrays:
    import numpy as np

    rng = np.random.default_rng(seed)
    parts, labels = [], []
    for label, size in enumerate(_class_sizes(params.n_samples, 2)):
        in_cluster = size // 2
        moon = _moon(rng, label, size - in_cluster, params.noise)
        cluster = np.asarray(COMPLEX_CLUSTER_CENTERS[label]) + rng.normal(0.0, COMPLEX_CLUSTER_STD, (in_cluster, 2))
        for points in (moon, cluster):
            parts.append(_pad(rng, points, params.input_dim, params.noise))
            labels.append(label)
    return _finish(rng, parts, labels, 2)


# -- the user's own file -------------------------------------------------------


def generate_digits(params: DigitsParams, seed: int) -> DataArrays:
    """scikit-learn's bundled 8×8 digits (no download): 64 pixel features in 0..1, 10 classes."""
    import numpy as np

    try:
        from sklearn.datasets import load_digits  # type: ignore[import-untyped]
    except ImportError:
        raise InvalidValue("problem", "digits", "needs scikit-learn: pip install 'kaslite-datasets[digits]'") from None
    digits = load_digits()
    rng = np.random.default_rng(seed)
    keep = rng.permutation(len(digits.target))[: params.n_samples]
    X = np.ascontiguousarray(digits.data[keep] / 16.0, dtype=np.float32)
    if params.images:
        X = X.reshape(-1, 1, 8, 8)
    return DataArrays(X=X, y=digits.target[keep].astype(np.int64), num_classes=10)


def _bad_file(params: FileParams, expected: str) -> InvalidValue:
    return InvalidValue("path", params.path, expected)


def _load_npz(params: FileParams) -> tuple["np.ndarray", "np.ndarray"]:
    import numpy as np

    arrays: dict[str, np.ndarray] = {}
    found: list[str] = []
    try:
        data = np.load(Path(params.path).expanduser(), allow_pickle=False)  # never run code from a data file
        is_archive = isinstance(data, np.lib.npyio.NpzFile)
        if is_archive:
            with data:
                found = sorted(data.files)
                arrays = {key: data[key] for key in ("X", "y") if key in found}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise _bad_file(params, f"must be a readable .npz archive holding arrays X and y ({exc})") from None
    if not is_archive:
        raise _bad_file(params, "must be a .npz archive (numpy.savez) holding arrays X and y, not a single array")
    if len(arrays) < 2:
        raise _bad_file(params, f"a .npz file must hold arrays X and y; it has {found}")
    X, y = arrays["X"], arrays["y"]
    if X.ndim != 2 or X.shape[1] == 0 or X.dtype.kind not in "biuf":
        raise _bad_file(params, f"X must be a numeric 2-D array (n_samples, n_features); got {X.dtype} {X.shape}")
    if y.ndim != 1 or len(y) != len(X):
        raise _bad_file(params, f"y must be 1-D with one label per row of X ({len(X)}); got shape {y.shape}")
    return X, y


def _numeric(row: list[str]) -> bool:
    try:
        [float(cell) for cell in row]
    except ValueError:
        return False
    return True


def _load_csv(params: FileParams) -> tuple["np.ndarray", "np.ndarray"]:
    import numpy as np

    try:
        # utf-8-sig: a byte-order mark (Excel) would otherwise make a numeric first row look like a header.
        with Path(params.path).expanduser().open(newline="", encoding="utf-8-sig") as f:
            rows = [(line, row) for line, row in enumerate(csv.reader(f), start=1) if any(c.strip() for c in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise _bad_file(params, f"must be a readable UTF-8 .csv file ({exc})") from None
    if rows and not _numeric(rows[0][1]):
        rows = rows[1:]  # a header row
    if not rows:
        raise _bad_file(params, "the .csv file holds no data rows")
    width = len(rows[0][1])
    if width < 2:
        raise _bad_file(params, "a .csv file needs at least 2 columns: features, then the label last")
    for line, row in rows:
        if len(row) != width:
            raise _bad_file(params, f"line {line} has {len(row)} columns, expected {width} like the first row")
        if not _numeric(row):
            raise _bad_file(params, f"line {line} is not numeric: {row!r}; only the first row may be a header")
    table = np.array([[float(cell) for cell in row] for _, row in rows])
    return table[:, :-1], table[:, -1]


def generate_file(params: FileParams, seed: int) -> DataArrays:
    import numpy as np

    X, labels = _load_npz(params) if Path(params.path).suffix.lower() == ".npz" else _load_csv(params)
    X = X.astype(np.float32)
    if not np.isfinite(X).all():
        raise _bad_file(params, "features must be finite; found NaN or infinity (or values too big for float32)")
    classes, y = np.unique(labels, return_inverse=True)  # labels -> 0..k-1 by sorted value
    if len(classes) < 2:
        raise _bad_file(params, f"labels must hold at least 2 classes; found {len(classes)}")
    order = np.random.default_rng(seed).permutation(len(X))
    return DataArrays(
        X=np.ascontiguousarray(X[order]), y=y.reshape(-1)[order].astype(np.int64), num_classes=len(classes)
    )
