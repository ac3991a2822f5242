"""Parameter classes of the datasets: frozen attrs classes with validated defaults.

Annotations are plain runtime types (no ``from __future__ import annotations``)
because the CLI reads ``attribute.type`` to build its options. This module must
not import numpy: ``kaslite --help`` imports it through the plugin.
"""

from pathlib import Path
from typing import Any

import attrs

from kaslite.config.validation import integer_at_least, non_empty, non_negative, positive
from kaslite.errors import InvalidValue

FILE_SUFFIXES = (".npz", ".csv")


def _samples_cover_classes(n_samples: int, n_classes: int, classes_field: str) -> None:
    # Every class must get at least one sample, or num_classes would lie about y.
    if n_samples < n_classes:
        raise InvalidValue("n_samples", n_samples, f"must be >= {classes_field} ({n_classes})")


def data_file(instance: object, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    """Allow the path of an existing ``.npz`` or ``.csv`` file (contents are checked when loaded)."""
    non_empty(instance, attribute, value)
    if Path(value).suffix.lower() not in FILE_SUFFIXES:
        raise InvalidValue(attribute.name, value, "must be a .npz or .csv file")
    if not Path(value).expanduser().is_file():
        raise InvalidValue(attribute.name, value, "no such file; expected an existing .npz or .csv file")


# Fields several datasets share, declared once.
def points_field(default: int, minimum: int) -> Any:
    return attrs.field(default=default, validator=integer_at_least(minimum), metadata={"help": "number of points"})


def noise_field() -> Any:
    return attrs.field(
        default=0.1,
        validator=non_negative,
        metadata={"help": "standard deviation of the Gaussian noise added to each point"},
    )


def input_dim_field(minimum: int, help_text: str) -> Any:
    return attrs.field(default=2, validator=integer_at_least(minimum), metadata={"help": help_text})


@attrs.frozen
class SpiralsParams:
    # Four turns of 500 points each: with fewer points the outer turns are too sparse to learn reliably.
    n_samples: int = points_field(1000, 2)
    noise: float = noise_field()
    rotations: float = attrs.field(default=4.0, validator=positive, metadata={"help": "turns of each spiral"})
    input_dim: int = input_dim_field(2, "features per point; dimensions beyond 2 hold noise")
    mirror: bool = attrs.field(
        default=False,
        metadata={"help": "class 1 is class 0 negated, noise included (the original design's construction)"},
    )
    extra_std: float | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(non_negative),
        metadata={"help": "std of the noise in the dimensions beyond 2 (default: the same as noise)"},
    )


@attrs.frozen
class MoonsParams:
    n_samples: int = points_field(500, 2)
    noise: float = noise_field()
    input_dim: int = input_dim_field(2, "features per point; dimensions beyond 2 hold noise")


@attrs.frozen
class ClustersParams:
    n_samples: int = points_field(500, 1)
    n_centers: int = attrs.field(
        default=2, validator=integer_at_least(2), metadata={"help": "number of clusters, one class each"}
    )
    cluster_std: float = attrs.field(
        default=1.0, validator=positive, metadata={"help": "standard deviation of each cluster"}
    )
    input_dim: int = input_dim_field(1, "features per point")

    def __attrs_post_init__(self) -> None:
        _samples_cover_classes(self.n_samples, self.n_centers, "n_centers")


@attrs.frozen
class SpheresParams:
    n_samples: int = points_field(500, 1)
    noise: float = noise_field()
    n_shells: int = attrs.field(
        default=2, validator=integer_at_least(2), metadata={"help": "number of shells, one class each"}
    )
    input_dim: int = input_dim_field(2, "features per point")

    def __attrs_post_init__(self) -> None:
        _samples_cover_classes(self.n_samples, self.n_shells, "n_shells")


@attrs.frozen
class ComplexMoonsParams:
    # 4 = one point on each moon and in each cluster.
    n_samples: int = points_field(500, 4)
    noise: float = noise_field()
    input_dim: int = input_dim_field(2, "features per point; dimensions beyond 2 hold noise")


@attrs.frozen
class FileParams:
    path: str = attrs.field(validator=data_file, metadata={"help": "a .npz (arrays X, y) or .csv (label last) file"})


DIGITS_SAMPLES = 1797  # scikit-learn's bundled copy of the UCI optical digits test set


@attrs.frozen
class DigitsParams:
    n_samples: int = attrs.field(
        default=DIGITS_SAMPLES,
        validator=integer_at_least(10),
        metadata={"help": "a random subset of this many images (all 1,797 by default)"},
    )
    images: bool = attrs.field(
        default=False, metadata={"help": "(n, 1, 8, 8) images for a convolutional trunk instead of (n, 64) rows"}
    )

    def __attrs_post_init__(self) -> None:
        if self.n_samples > DIGITS_SAMPLES:
            raise InvalidValue("n_samples", self.n_samples, f"must be <= {DIGITS_SAMPLES}, the images there are")
