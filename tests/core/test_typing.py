"""A user's script type-checks against kaslite's real signatures (``py.typed``), not ``Any``."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# assert_type fails when mypy sees Any; each `type: ignore` must be needed (--warn-unused-ignores),
# so a wrong call that mypy let through (an Any signature) fails the check too.
USER_SCRIPT = """
from pathlib import Path
from typing import assert_type

import torch

import kaslite
from kaslite.train.fit import FitResult

model = torch.nn.Linear(2, 2)
assert_type(kaslite.Grower(model, "kasmina"), kaslite.Grower)
assert_type(kaslite.fit(model, "spirals", config={"train": {"adaptation_epochs": 1}}), FitResult)
assert_type(kaslite.fuse(model), torch.nn.Module)
assert_type(kaslite.save_model(model, "model.pt"), Path)
assert_type(kaslite.load_model("model.pt"), torch.nn.Module)

kaslite.Grower(model, "kasmina", warm_up_epochs="3")  # type: ignore[arg-type]
kaslite.fit(model, config=3)  # type: ignore[arg-type]
kaslite.save_model(model, 5)  # type: ignore[arg-type]
"""


def test_mypy_sees_the_signatures_of_the_lazily_loaded_api(tmp_path):
    script = tmp_path / "user_script.py"
    script.write_text(USER_SCRIPT)
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--warn-unused-ignores", "--cache-dir", str(ROOT / ".mypy_cache"),
         str(script)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
