"""What the READMEs tell a newcomer to run or open exists: CI runs the test command, named files are there."""

import re
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
