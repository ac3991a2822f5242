"""Registration: the plugin's names, parameter classes, entry point and import cost."""

import importlib.metadata
import subprocess
import sys

import attrs
import pytest

import kaslite.plugins
import kaslite_datasets.plugin

EXPECTED_DEFAULTS = {
    "spirals": {
        "n_samples": (int, 1000),
        "noise": (float, 0.1),
        "rotations": (float, 4.0),
        "input_dim": (int, 2),
        "mirror": (bool, False),
        "extra_std": (float | None, None),
    },
    "moons": {"n_samples": (int, 500), "noise": (float, 0.1), "input_dim": (int, 2)},
    "clusters": {"n_samples": (int, 500), "n_centers": (int, 2), "cluster_std": (float, 1.0), "input_dim": (int, 2)},
    "spheres": {"n_samples": (int, 500), "noise": (float, 0.1), "n_shells": (int, 2), "input_dim": (int, 2)},
    "complex_moons": {"n_samples": (int, 500), "noise": (float, 0.1), "input_dim": (int, 2)},
    "file": {"path": (str, attrs.NOTHING)},
    "digits": {"n_samples": (int, 1797), "images": (bool, False)},
}


def test_registers_every_dataset(specs):
    assert sorted(specs) == sorted(EXPECTED_DEFAULTS)
    for name, spec in specs.items():
        assert spec.name == name
        assert spec.description and "\n" not in spec.description


def test_lookup_finds_a_dataset_by_name():
    pm = kaslite.plugins.PluginManager()
    pm.register(kaslite_datasets.plugin, name="datasets")
    assert pm.lookup(kaslite.plugins.DATASET, "moons").name == "moons"


@pytest.mark.parametrize("name", sorted(EXPECTED_DEFAULTS))
def test_params_are_frozen_attrs_with_plain_types_and_documented_defaults(specs, name):
    params_type = specs[name].params_type
    fields = {f.name: (f.type, f.default) for f in attrs.fields(params_type)}
    assert fields == EXPECTED_DEFAULTS[name]
    if name != "file":
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            params_type().n_samples = 1


def test_entry_point_registers_the_plugin_module():
    points = importlib.metadata.entry_points(group="kaslite")
    assert [ep.value for ep in points if ep.name == "datasets"] == ["kaslite_datasets.plugin"]


def test_installed_plugin_loads_through_its_entry_point():
    pm = kaslite.plugins.PluginManager()
    pm.load_entry_points()
    assert pm.origins["datasets"].distribution == "kaslite-datasets"
    assert "spirals" in pm.registrations(kaslite.plugins.DATASET)


def test_importing_the_plugin_does_not_import_numpy():
    code = "import sys, kaslite_datasets.plugin; assert 'numpy' not in sys.modules, 'numpy was imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
