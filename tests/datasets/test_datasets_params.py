"""Parameter validation: every bad value fails when the params are built, naming field and value."""

import pytest

from kaslite.config.structure import structure
from kaslite.errors import ConfigError, InvalidValue
from kaslite_datasets import params

BAD = [
    # (params class, given values, field named, value shown, allowed text)
    (params.SpiralsParams, {"n_samples": -5}, "n_samples", "-5", ">= 2"),
    (params.SpiralsParams, {"n_samples": 1}, "n_samples", "1", ">= 2"),
    (params.SpiralsParams, {"noise": -0.1}, "noise", "-0.1", ">= 0"),
    (params.SpiralsParams, {"rotations": 0}, "rotations", "0.0", "> 0"),
    (params.SpiralsParams, {"input_dim": 1}, "input_dim", "1", ">= 2"),
    (params.MoonsParams, {"n_samples": -5}, "n_samples", "-5", ">= 2"),
    (params.MoonsParams, {"n_samples": 0}, "n_samples", "0", ">= 2"),
    (params.MoonsParams, {"noise": -1}, "noise", "-1.0", ">= 0"),
    (params.MoonsParams, {"input_dim": 1}, "input_dim", "1", ">= 2"),
    (params.ClustersParams, {"n_samples": -5}, "n_samples", "-5", ">= 1"),
    (params.ClustersParams, {"n_centers": 1}, "n_centers", "1", ">= 2"),
    (params.ClustersParams, {"cluster_std": 0}, "cluster_std", "0.0", "> 0"),
    (params.ClustersParams, {"cluster_std": -2}, "cluster_std", "-2.0", "> 0"),
    (params.ClustersParams, {"input_dim": 0}, "input_dim", "0", ">= 1"),
    (params.ClustersParams, {"n_samples": 3, "n_centers": 4}, "n_samples", "3", "n_centers (4)"),
    (params.SpheresParams, {"n_samples": -5}, "n_samples", "-5", ">= 1"),
    (params.SpheresParams, {"noise": -0.5}, "noise", "-0.5", ">= 0"),
    (params.SpheresParams, {"n_shells": 1}, "n_shells", "1", ">= 2"),
    (params.SpheresParams, {"input_dim": 1}, "input_dim", "1", ">= 2"),
    (params.SpheresParams, {"n_samples": 2, "n_shells": 3}, "n_samples", "2", "n_shells (3)"),
    (params.ComplexMoonsParams, {"n_samples": -5}, "n_samples", "-5", ">= 4"),
    (params.ComplexMoonsParams, {"n_samples": 3}, "n_samples", "3", ">= 4"),
    (params.ComplexMoonsParams, {"noise": -0.1}, "noise", "-0.1", ">= 0"),
    (params.ComplexMoonsParams, {"input_dim": 1}, "input_dim", "1", ">= 2"),
]


@pytest.mark.parametrize(("params_type", "given", "field", "shown", "allowed"), BAD)
def test_bad_values_fail_at_construction_naming_field_and_value(params_type, given, field, shown, allowed):
    with pytest.raises(InvalidValue) as caught:
        structure(given, params_type)
    assert caught.value.field == field
    message = str(caught.value)
    assert field in message and shown in message and allowed in message


def test_error_names_the_full_path_under_the_dataset():
    with pytest.raises(InvalidValue, match=r"invalid spirals\.n_samples = -5"):
        structure({"n_samples": -5}, params.SpiralsParams, path="spirals")


@pytest.mark.parametrize("value", [2.5, True, "10"])
def test_counts_must_be_integers_when_built_in_python(value):
    with pytest.raises(InvalidValue, match=r"n_samples.*must be an integer >= 2"):
        params.MoonsParams(n_samples=value)


def test_a_fractional_count_from_a_config_fails():
    with pytest.raises(InvalidValue, match="n_samples"):
        structure({"n_samples": 2.5}, params.MoonsParams)


def test_values_from_the_command_line_are_converted():
    built = structure({"n_samples": "40", "noise": "0.25", "input_dim": "3"}, params.MoonsParams)
    assert built == params.MoonsParams(n_samples=40, noise=0.25, input_dim=3)


@pytest.mark.parametrize(
    ("params_type", "given"),
    [
        (params.SpiralsParams, {"n_samples": 2, "noise": 0, "input_dim": 2}),
        (params.MoonsParams, {"n_samples": 2, "noise": 0}),
        (params.ClustersParams, {"n_samples": 2, "n_centers": 2, "input_dim": 1}),
        (params.SpheresParams, {"n_samples": 3, "n_shells": 3, "noise": 0}),
        (params.ComplexMoonsParams, {"n_samples": 4, "noise": 0}),
    ],
)
def test_smallest_allowed_values_are_accepted(params_type, given):
    built = structure(given, params_type)
    for key, value in given.items():
        assert getattr(built, key) == value


def test_unknown_parameter_is_refused():
    with pytest.raises(ConfigError, match="n_centres"):
        structure({"n_centres": 3}, params.ClustersParams)
