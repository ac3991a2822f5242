"""The growth-policy example in kaslite-core's README works exactly as printed."""

import types

import pytest
import yaml

import kaslite
from kaslite.config import build_config
from kaslite.testing import invoke
from kaslite.train import Trainer

from .readme import README, readme_code


def readme_policy_module() -> types.ModuleType:
    code = readme_code("policy-example")
    assert 15 <= len(code.strip().splitlines()) <= 40
    module = types.ModuleType("my_policy")
    exec(compile(code, str(README), "exec"), module.__dict__)
    return module


def test_readme_policy_grows_the_deepest_seed_first(tiny_data, tmp_path):
    kaslite.get_plugin_manager().register(readme_policy_module(), name="my-policy")
    config = build_config(
        {
            "data": {"problem": "xor", "params": {"n_samples": 120}},
            "model": {"hidden_dim": 8, "num_layers": 3, "blueprint_options": {"hidden": 16}, "wide_seeds": 0},
            "seeds": {"blend_steps": 2, "progress_thresh": 0.0},
            "controller": {"name": "deepest-first", "options": {"wait": 1}},
            "train": {"warm_up_epochs": 2, "adaptation_epochs": 12, "lr": 1e-5},
        }
    )
    trainer = Trainer(config, tmp_path)
    trainer.run()
    grown = [e["seed_id"] for e in trainer.events if e["event"] == "seed_transition" and e["to_state"] == "training"]
    assert grown[:3] == ["seed3_1", "seed2_1", "seed1_1"]


TINY = [
    "run", "--problem", "xor", "--n-samples", "64", "--hidden-dim", "4", "--warm-up-epochs", "1",
    "--adaptation-epochs", "2", "--batch-size", "32", "--tracker", "json", "-q", "--controller", "deepest-first",
]  # fmt: skip


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("wiat=5", "Error: unknown field(s) wiat in controller 'deepest-first' (plugin my-policy) parameters; "
         "allowed: wait"),
        ("wait=abc", "Error: invalid controller 'deepest-first' (plugin my-policy) parameter wait = 'abc': "
         "expected an integer"),
        ("wait=0", "Error: invalid controller 'deepest-first' (plugin my-policy) parameter wait = 0: "
         "must be an integer >= 1"),
    ],
)  # fmt: skip
def test_readme_policy_parameters_fail_in_one_line_before_any_work(tiny_data, tmp_path, param, message):
    kaslite.get_plugin_manager().register(readme_policy_module(), name="my-policy")
    result = invoke(*TINY, "--controller-param", param, "--output-dir", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert result.stderr == message + "\n"
    assert not (tmp_path / "out").exists()


def test_readme_says_the_flag_the_cli_has():
    text = README.read_text()
    assert "--controller-param wait=5" in text and "--controller-option" not in text
    assert "--controller-param" in invoke("run", "--help").stdout


def test_config_yaml_stores_every_parameter_with_its_default(tiny_data, tmp_path):
    """The README policy's wait, the dataset's noise and the blueprint's hidden are written though never given."""
    kaslite.get_plugin_manager().register(readme_policy_module(), name="my-policy")
    result = invoke(*TINY, "--output-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    (config_file,) = tmp_path.glob("*/config.yaml")
    config = yaml.safe_load(config_file.read_text())
    assert config["controller"]["options"] == {"wait": 3}
    assert config["data"]["params"] == {"n_samples": 64, "noise": 0.3}
    assert config["model"]["blueprint_options"] == {"hidden": 64}
    again = invoke("run", "--config", str(config_file), "--tracker", "json", "-q", "--output-dir", str(tmp_path / "b"))
    assert again.exit_code == 0, again.output
    (second,) = (tmp_path / "b").glob("*/config.yaml")
    assert second.read_text() == config_file.read_text()
