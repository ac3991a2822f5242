"""Sweep files: how values are read, how grids expand, what overrides what, and the one-line errors."""

from pathlib import Path

import pytest

from kaslite.cli.run_cmd import experiment_layers
from kaslite.cli.sweep_cmd import all_knobs
from kaslite.config import build_config
from kaslite.errors import ConfigError
from kaslite.plugins import get_plugin_manager
from kaslite.sweep.grid import grid_points, params_hash, run_slug, slot_count
from kaslite.sweep.spec import Choice, Range, SweepDefaults, load_spec, parse_spec, sweep_files

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def knobs(tiny_data):
    return all_knobs(get_plugin_manager())


def spec_of(text: str, knobs, tmp_path: Path, defaults: SweepDefaults | None = None, name: str = "s.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return load_spec(path, knobs, defaults or SweepDefaults())


def test_flat_names_are_run_flags_without_dashes(knobs):
    assert knobs["num_layers"].path == ("model", "num_layers")
    assert knobs["lr"].path == ("train", "lr")
    assert knobs["problem_type"].path == knobs["problem"].path == ("data", "problem")
    assert knobs["controller"].path == ("controller", "name")
    assert knobs["n_samples"].path == ("data", "params", "n_samples")
    assert knobs["blueprint_hidden"].path == ("model", "blueprint_options", "hidden")
    assert (knobs["hidden_dim"].type, knobs["shadow_lr"].type, knobs["freeze_trunk"].type) == (int, float, bool)
    assert "tracking_uri" not in knobs and "output_dir" not in knobs  # not experiment config


def test_lists_comma_strings_and_single_values(knobs, tmp_path):
    spec = spec_of(
        'num_layers: [4, 8]\nlr: "0.001,0.003"\nshadow_lr: 1e-4,5e-4\nblend_steps: 1e2\nhidden_dim: 64\n'
        "problem_type: xor\nfreeze_trunk: false\n",
        knobs,
        tmp_path,
    )
    assert spec.method == "grid"
    assert spec.parameters == {
        "num_layers": Choice((4, 8)),
        "lr": Choice((0.001, 0.003)),
        "shadow_lr": Choice((0.0001, 0.0005)),
    }
    # PyYAML reads 1e2 as the string "1e2"; a sweep file means the number.
    assert spec.fixed == {"blend_steps": 100.0, "hidden_dim": 64, "problem_type": "xor", "freeze_trunk": False}


def test_grid_is_the_cartesian_product_in_file_order(knobs, tmp_path):
    spec = spec_of("num_layers: [4, 8]\nlr: [0.001, 0.003]\nseed: 7\n", knobs, tmp_path)
    assert slot_count(spec) == 4
    assert grid_points(spec) == [
        {"num_layers": 4, "lr": 0.001},
        {"num_layers": 4, "lr": 0.003},
        {"num_layers": 8, "lr": 0.001},
        {"num_layers": 8, "lr": 0.003},
    ]
    three = spec_of("num_layers: [1, 2, 3]\nlr: [0.1, 0.2]\nblend_steps: '5,10'\n", knobs, tmp_path, name="t.yaml")
    assert slot_count(three) == 12 == len({tuple(p.values()) for p in grid_points(three)})


def test_a_value_listed_twice_is_one_point(knobs, tmp_path):
    assert slot_count(spec_of("num_layers: [2, 2, 3]\n", knobs, tmp_path)) == 2


def test_run_slugs_are_deterministic_and_name_the_point():
    assert run_slug(0, {"lr": 0.001, "num_layers": 4}) == run_slug(0, {"num_layers": 4, "lr": 0.001})
    assert run_slug(11, {"lr": 0.001}) == f"run_012_{params_hash({'lr': 0.001})}"
    assert params_hash({"lr": 0.001}) != params_hash({"lr": 0.003})
    assert len(params_hash({"lr": 0.001})) == 8


def test_options_are_defaults_the_file_overrides(knobs, tmp_path):
    spec = spec_of("num_layers: [1, 2]\nlr: 0.05\nproblem_type: xor\n", knobs, tmp_path)
    config_file = tmp_path / "base.yaml"
    config_file.write_text("train:\n  lr: 0.9\n  seed: 5\nmodel:\n  hidden_dim: 32\n")
    given = {"train__lr": 0.2, "model__hidden_dim": 8, "model__num_layers": 9, "dataset__n_samples": 64}
    layers = experiment_layers(config_file, {**given, "blueprint_hidden": 16})
    config = build_config(*layers, spec.layer(spec.fixed), spec.layer({"num_layers": 2}))
    assert config.train.lr == 0.05  # the file beats the option, which beats --config
    assert config.model.num_layers == 2  # the swept value beats the option
    assert config.model.hidden_dim == 8  # the option beats --config
    assert config.train.seed == 5  # --config beats the defaults
    assert config.data.problem == "xor" and config.data.params == {"n_samples": 64}
    assert config.model.blueprint_options == {"hidden": 16}


def test_sweep_settings_from_options_are_overridden_by_the_file(knobs, tmp_path):
    defaults = SweepDefaults(method="bayesian", trials=9, metric="best_acc", direction="minimize")
    spec = spec_of("trials: 4\ndirection: max\nparameters:\n  lr: {low: 1e-4, high: 1e-2, log: true}\n",
                   knobs, tmp_path, defaults)  # fmt: skip
    assert (spec.method, spec.trials, spec.metric, spec.direction) == ("bayesian", 4, "best_acc", "maximize")
    assert spec.parameters == {"lr": Range(0.0001, 0.01, log=True)}
    grid = spec_of("method: grid\nnum_layers: [1, 2]\n", knobs, tmp_path, defaults, name="g.yaml")
    assert grid.method == "grid"


def test_bayesian_ranges_choices_and_flat_lists(knobs, tmp_path):
    spec = spec_of(
        "method: bayesian\ntrials: 6\npruning: median\nproblem_type: xor\nseed: [0, 1]\n"
        "parameters:\n  hidden_dim: {low: 4, high: 32, step: 4}\n  blueprint: {choices: [mlp, bottleneck]}\n"
        "  shadow_lr: {low: 0.0001, high: 0.01}\n",
        knobs,
        tmp_path,
    )
    assert spec.trials == 6 and spec.pruning == "median" and slot_count(spec) == 6
    assert spec.parameters == {
        "seed": Choice((0, 1)),
        "hidden_dim": Range(4, 32, step=4, integer=True),
        "blueprint": Choice(("mlp", "bottleneck")),
        "shadow_lr": Range(0.0001, 0.01),
    }
    assert spec.fixed == {"problem_type": "xor"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("num_layer: [1, 2]\n", "unknown parameter 'num_layer' (did you mean num_layers?)"),
        ("lr: [0.1, 0.2]\nwibble: 3\n", "unknown parameter 'wibble'; parameters are kaslite run's flag names"),
        ("lr: 0.1\n", "nothing to sweep: give at least one parameter more than one value"),
        ("lr: {low: 0.1, high: 0.2}\n", "parameter lr: a range {low, high} needs method: bayesian"),
        ("method: random\nlr: [1, 2]\n", "method 'random' is not one of bayesian, grid"),
        ("method: bayesian\ntrials: 0\nlr: [1, 2]\n", "trials must be an integer >= 1, got 0"),
        ("method: bayesian\nparameters:\n  lr: {low: 0.2, high: 0.1}\n", "parameter lr: low 0.2 is above high 0.1"),
        ("method: bayesian\nparameters:\n  lr: {low: 0, high: 1, log: true}\n", "a log range needs low > 0, got 0"),
        ("method: bayesian\nparameters:\n  num_layers: {low: 1, high: 4.5}\n", "num_layers is an integer; high"),
        ("method: bayesian\nparameters:\n  problem: {low: 1, high: 2}\n", "parameter problem holds a str"),
        ("method: bayesian\nlr: 0.1\n", "nothing to search: give a range or choices under parameters"),
        ("lr: [0.1, 0.2]\nparameters:\n  lr: [0.3]\n", "parameter lr is given twice"),
        ("lr: [0.1, 0.2]\nmetric: accuracy\n", "metric 'accuracy' is not one of"),
        ("lr: [0.1, 0.2]\npruning: median\nmetric: wall_time_s\n", "wall_time_s exists only at the end of a run"),
        ("lr: [0.1, null]\n", "parameter lr: None is not a number, a string or true/false"),
        ("- lr\n", "must hold a mapping of sections, got list"),
        ("lr: [0.1, 0.2\n", "is not valid YAML"),
        ("", "it is empty"),
    ],
)
def test_problems_are_one_config_error(knobs, tmp_path, text, message):
    with pytest.raises(ConfigError) as info:
        spec_of(text, knobs, tmp_path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_directory_means_its_yaml_files(tmp_path):
    (tmp_path / "b.yaml").write_text("lr: [1, 2]\n")
    (tmp_path / "a.yml").write_text("lr: [1, 2]\n")
    (tmp_path / "notes.txt").write_text("not a sweep")
    assert sweep_files([tmp_path]) == [tmp_path / "a.yml", tmp_path / "b.yaml"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"holds no \.yaml files"):
        sweep_files([tmp_path / "empty"])
    with pytest.raises(ConfigError, match=r"sweep file '.*missing\.yaml' does not exist"):
        sweep_files([tmp_path / "missing.yaml"])
    with pytest.raises(ConfigError, match="two sweep files share the name 'b'"):
        sweep_files([tmp_path, tmp_path / "b.yaml"])


def test_the_examples_are_valid_sweep_files(knobs):
    files = sweep_files([ROOT / "examples"])
    assert [f.name for f in files] == [
        "architecture_search.yaml",
        "basic_sweep.yaml",
        "bayesian.yaml",
        "quick_test.yaml",
    ]
    specs = {f.stem: load_spec(f, knobs) for f in files}
    assert specs["bayesian"].method == "bayesian"
    assert all(spec.method == "grid" for name, spec in specs.items() if name != "bayesian")
    assert slot_count(specs["quick_test"]) <= 4


def test_parse_spec_names_the_sweep_after_its_file(knobs):
    spec = parse_spec({"lr": [0.1, 0.2]}, knobs, "sweeps/lr_scan.yaml")
    assert spec.name == "lr_scan" and spec.source == "sweeps/lr_scan.yaml"
