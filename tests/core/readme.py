"""kaslite-core's README examples, as the tests that run them read them."""

import re
from pathlib import Path

import pytest

from kaslite.train.grower import Grower

README = Path(__file__).resolve().parents[2] / "kaslite-core" / "README.md"


def readme_code(marker: str) -> str:
    """The Python block between ``<!-- marker -->`` and ``<!-- /marker -->``."""
    pattern = rf"<!-- {marker} -->\n```python\n(.*?)```\n<!-- /{marker} -->"
    (code,) = re.findall(pattern, README.read_text(), re.S)
    return code


def run_recording_transitions(marker: str, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, list]:
    """Run the example (its own asserts run too); its namespace and every seed transition it made."""
    seen = []
    original = Grower._transition

    def recording(self, seed, change, **kwargs):
        event = original(self, seed, change, **kwargs)
        seen.append(event)
        return event

    monkeypatch.setattr(Grower, "_transition", recording)
    namespace: dict = {"__name__": "readme_example"}
    exec(compile(readme_code(marker), str(README), "exec"), namespace)
    return namespace, seen
