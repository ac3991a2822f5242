"""Fixtures: the datasets plugin registered alone on a fresh plugin manager (unit layer)."""

from collections.abc import Callable
from typing import Any

import pytest

import kaslite.plugins
import kaslite_datasets.plugin
from kaslite.config.structure import structure
from kaslite.hookspecs import DataArrays, DatasetSpec


@pytest.fixture
def specs() -> dict[str, DatasetSpec]:
    pm = kaslite.plugins.PluginManager()
    pm.register(kaslite_datasets.plugin, name="datasets")
    return pm.registrations(kaslite.plugins.DATASET)


@pytest.fixture
def generate(specs: dict[str, DatasetSpec]) -> Callable[..., DataArrays]:
    """``generate(name, seed=0, **params)``: build the params as a config file would, then generate."""

    def run(name: str, seed: int = 0, **params: Any) -> DataArrays:
        spec = specs[name]
        return spec.generate(structure(params, spec.params_type), seed)

    return run
