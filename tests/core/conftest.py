"""Core tests run with only kaslite-core installed: a tiny dataset plugin stands in for kaslite-datasets."""

import pytest

import kaslite
from kaslite.testing import tiny_datasets


@pytest.fixture
def tiny_data():
    """Register the ``xor`` test dataset in the process-wide plugin manager."""
    kaslite.get_plugin_manager().register(tiny_datasets, name="tiny")
    return tiny_datasets
