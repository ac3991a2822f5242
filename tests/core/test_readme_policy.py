"""The growth-policy example in kaslite-core's README works exactly as printed."""

import re
import types
from pathlib import Path

import kaslite
from kaslite.config import build_config
from kaslite.train import Trainer

README = Path(__file__).resolve().parents[2] / "kaslite-core" / "README.md"


def readme_policy_module() -> types.ModuleType:
    text = README.read_text()
    (code,) = re.findall(r"<!-- policy-example -->\n```python\n(.*?)```\n<!-- /policy-example -->", text, re.S)
    assert 15 <= len(code.strip().splitlines()) <= 40
    module = types.ModuleType("my_policy")
    exec(compile(code, str(README), "exec"), module.__dict__)
    return module


def test_readme_policy_grows_the_deepest_seed_first(tiny_data, tmp_path):
    kaslite.get_plugin_manager().register(readme_policy_module(), name="my-policy")
    config = build_config(
        {
            "data": {"problem": "xor", "params": {"n_samples": 120}},
            "model": {"hidden_dim": 8, "num_layers": 3, "blueprint_options": {"hidden": 16}},
            "seeds": {"blend_steps": 2, "progress_thresh": 0.0},
            "controller": {"name": "deepest-first", "options": {"wait": 1}},
            "train": {"warm_up_epochs": 2, "adaptation_epochs": 12, "lr": 1e-5},
        }
    )
    trainer = Trainer(config, tmp_path)
    trainer.run()
    grown = [e["seed_id"] for e in trainer.events if e["event"] == "seed_transition" and e["to_state"] == "training"]
    assert grown[:3] == ["seed3_1", "seed2_1", "seed1_1"]
