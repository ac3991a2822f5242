"""The width-growth example in kaslite-core's README runs as printed: a user's layer pair grows wider."""

import re
from pathlib import Path

from kaslite.train.grower import Grower

README = Path(__file__).resolve().parents[2] / "kaslite-core" / "README.md"


def readme_width_code() -> str:
    (code,) = re.findall(
        r"<!-- width-example -->\n```python\n(.*?)```\n<!-- /width-example -->", README.read_text(), re.S
    )
    return code


def test_the_readme_width_example_grows_a_layer_wider_without_moving_the_output(monkeypatch):
    seen = []
    original = Grower._transition

    def recording(self, seed, change, **kwargs):
        event = original(self, seed, change, **kwargs)
        seen.append(event)
        return event

    monkeypatch.setattr(Grower, "_transition", recording)
    namespace: dict = {"__name__": "readme_example"}
    exec(compile(readme_width_code(), str(README), "exec"), namespace)  # its own asserts run too
    assert [(e.seed_id, e.to_state) for e in seen] == [("0.seed", s) for s in ("training", "blending", "active")]
    assert [e.output_change for e in seen] == [0.0, 0.0, 0.0]
    assert namespace["val_acc"] > 0.9
