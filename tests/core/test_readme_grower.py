"""The growth-driver example in kaslite-core's README runs as printed, and every transition is smooth."""

import re
from pathlib import Path

from kaslite.train.grower import Grower

README = Path(__file__).resolve().parents[2] / "kaslite-core" / "README.md"


def readme_grower_code() -> str:
    (code,) = re.findall(
        r"<!-- grower-example -->\n```python\n(.*?)```\n<!-- /grower-example -->", README.read_text(), re.S
    )
    return code


def test_the_readme_example_grows_both_seeds_smoothly(monkeypatch):
    seen = []
    original = Grower._transition

    def recording(self, seed, change, **kwargs):
        event = original(self, seed, change, **kwargs)
        seen.append(event)
        return event

    monkeypatch.setattr(Grower, "_transition", recording)
    namespace: dict = {"__name__": "readme_example"}
    exec(compile(readme_grower_code(), str(README), "exec"), namespace)  # its own asserts run too
    assert {(e.seed_id, e.to_state) for e in seen} == {
        (seed, state) for seed in ("grow1", "grow2") for state in ("training", "blending", "active")
    }
    assert all(e.output_change <= 1e-6 for e in seen), [(e.seed_id, e.to_state, e.output_change) for e in seen]
    assert namespace["val_acc"] > 0.9
