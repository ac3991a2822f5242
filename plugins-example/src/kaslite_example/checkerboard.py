"""The ``checkerboard`` dataset: a k×k board of alternating classes."""

from typing import Any

import attrs

from kaslite.config.validation import integer_at_least, non_negative
from kaslite.hookspecs import DataArrays


@attrs.frozen
class CheckerboardParams:
    """Validated parameters; a bad value fails before any data is made."""

    n_samples: int = attrs.field(default=1000, validator=integer_at_least(2), metadata={"help": "number of points"})
    k: int = attrs.field(default=4, validator=integer_at_least(2), metadata={"help": "squares per side"})
    noise: float = attrs.field(default=0.0, validator=non_negative, metadata={"help": "std of the Gaussian noise"})
    input_dim: int = attrs.field(
        default=2, validator=integer_at_least(2), metadata={"help": "features; beyond 2 are noise"}
    )


def generate_checkerboard(params: CheckerboardParams, seed: int) -> DataArrays:
    """Uniform points on [0, 1)², labelled by the colour of their square."""
    import numpy as np  # inside the function: `kaslite --help` imports this module

    rng = np.random.default_rng(seed)
    points = rng.uniform(0.0, 1.0, (params.n_samples, 2))
    cells = np.floor(points * params.k).astype(np.int64)
    y = (cells.sum(axis=1) % 2).astype(np.int64)
    points = points + rng.normal(0.0, params.noise, points.shape)
    extra = rng.normal(0.0, params.noise, (params.n_samples, params.input_dim - 2))
    X: Any = np.concatenate([points, extra], axis=1).astype(np.float32)
    return DataArrays(X=X, y=y, num_classes=2)
