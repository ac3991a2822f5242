"""What the READMEs tell a newcomer to run or open exists: CI runs the test command, named files are there."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
READMES = sorted([ROOT / "README.md", *ROOT.glob("*/README.md")])
# Repository paths inside a README's code spans and blocks: `python bench/tracking_overhead.py`, ...
CODE = re.compile(r"```.*?```|`[^`\n]+`", re.S)
PATH = re.compile(
    r"(?<![\w./-])((?:bench|deploy|docs|examples|scripts|tests|kaslite-[a-z]+|plugins-example)/[\w./-]*\w)"
)


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    (command,) = [block.strip() for block in blocks if "nox" in block]
    assert command in (ROOT / ".ci" / "run").read_text().splitlines()


def test_every_repository_path_a_readme_names_exists():
    named = {
        (readme.relative_to(ROOT), path)
        for readme in READMES
        for code in CODE.findall(readme.read_text())
        for path in PATH.findall(code)
    }
    assert len(named) > 10
    missing = [(str(readme), path) for readme, path in sorted(named) if not (ROOT / path).exists()]
    assert missing == []


def test_what_a_run_leaves_in_the_working_directory_is_git_ignored(tmp_path):
    written = ["mlflow.db", "mlflow.db-journal", "mlruns/x", "runs/r/events", "results/r/model.pt", "data/x.npz"]
    written += ["pipeline/train/checkpoint.pt", "pipeline/train/timing.json", ".venv-nox/bin/nox"]
    proc = subprocess.run(["git", "check-ignore", *written], cwd=ROOT, capture_output=True, text=True)
    assert proc.stdout.split() == written
