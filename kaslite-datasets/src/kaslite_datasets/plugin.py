"""The ``datasets`` plugin: registers every dataset of this package with kaslite.

Loaded through the ``kaslite`` entry point like any third-party plugin. It must
stay cheap to import (``kaslite --help`` loads every plugin), so neither it nor
the modules it imports import numpy at the top.
"""

import kaslite
from kaslite.hookspecs import DatasetSpec
from kaslite_datasets import generators, params


@kaslite.hookimpl
def kaslite_datasets() -> list[DatasetSpec]:
    return [
        DatasetSpec(
            "spirals",
            params.SpiralsParams,
            generators.generate_spirals,
            "two interleaved spirals of `rotations` turns each (2 classes)",
        ),
        DatasetSpec(
            "moons", params.MoonsParams, generators.generate_moons, "two interleaving half circles (2 classes)"
        ),
        DatasetSpec(
            "clusters",
            params.ClustersParams,
            generators.generate_clusters,
            "Gaussian blobs around random centres, one class per centre",
        ),
        DatasetSpec(
            "spheres",
            params.SpheresParams,
            generators.generate_spheres,
            "concentric spherical shells of radius 1..n_shells, one class per shell",
        ),
        DatasetSpec(
            "complex_moons",
            params.ComplexMoonsParams,
            generators.generate_complex_moons,
            "two moons, each class also owning a Gaussian cluster beyond the other moon (2 classes)",
        ),
        DatasetSpec(
            "digits",
            params.DigitsParams,
            generators.generate_digits,
            "scikit-learn's bundled 8x8 handwritten digits: 64 pixels, 10 classes (needs scikit-learn)",
        ),
        DatasetSpec(
            "file",
            params.FileParams,
            generators.generate_file,
            "your own data: a .npz with arrays X, y or a .csv with the label in the last column",
        ),
    ]
