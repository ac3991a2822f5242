#!/usr/bin/env python
"""Write docs/plugins.md from kaslite.hookspecs, so the docs cannot drift from the code.

python scripts/plugin_docs.py          # rewrite docs/plugins.md
python scripts/plugin_docs.py --check  # exit 1 if docs/plugins.md is out of date
"""

import inspect
import re
import sys
import textwrap
from pathlib import Path

import attrs

from kaslite import hookspecs, serving

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
RECORDS = [
    "DatasetSpec",
    "DataArrays",
    "BlueprintSpec",
    "ControllerSpec",
    "TrackerSpec",
    "ModelSourceSpec",
    "SweepEnd",
]
# The inference server's side of kaslite_server_app (kaslite.serving).
SERVER_EVENTS = ["ModelEvent", "PredictionEvent"]
SERVER_CLASSES = ["ServerListener", "ServerEvents"]
HOOKS = [
    "kaslite_datasets",
    "kaslite_seed_blueprints",
    "kaslite_controllers",
    "kaslite_trackers",
    "kaslite_model_sources",
    "kaslite_commands",
    "kaslite_server_app",
    "kaslite_sweep_end",
]


def rst_to_markdown(text: str) -> str:
    """The small reST subset the hookspecs use: literals, roles, fields, ``Example::`` blocks."""
    text = re.sub(r":(?:class|func|meth):`([^`]+)`", r"`\1`", text)
    text = text.replace("``", "`")
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        line = lines[i]
        field = re.match(r"\s*:param (\w+):\s*(.*)", line) or re.match(r"\s*:(return):\s*(.*)", line)
        if line.rstrip().endswith("::"):
            intro = line.rstrip()[:-1].rstrip(":").rstrip()
            block, i = [], i + 1
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith("    ")):
                block.append(lines[i])
                i += 1
            code = textwrap.dedent("\n".join(block)).strip()
            language = "toml" if code.startswith("[") else "python"
            out += ([f"{intro}:"] if intro else []) + ["", f"```{language}", code, "```"]
            continue
        if field:
            name, body = field.groups()
            i += 1
            while i < len(lines) and lines[i].startswith("    ") and lines[i].strip():
                body += " " + lines[i].strip()
                i += 1
            out.append(f"- **returns**: {body}" if name == "return" else f"- `{name}`: {body}")
            continue
        out.append(line)
        i += 1
    return "\n".join(out).strip()


def signature(name: str) -> str:
    """``def name(args) -> ret`` with module prefixes and string quotes removed."""
    text = str(inspect.signature(getattr(hookspecs, name))).replace("'", "")
    return f"def {name}{re.sub(r'(collections[.]abc|typing|kaslite[.]hookspecs)[.]', '', text)}"


def render() -> str:
    parts = [
        "# Writing kaslite plugins",
        "",
        "<!-- Generated from kaslite.hookspecs by scripts/plugin_docs.py: edit the docstrings, not this file. -->",
        "",
        rst_to_markdown(inspect.getdoc(hookspecs) or ""),
        "",
        "## Hooks",
    ]
    for name in HOOKS:
        parts += ["", f"### `{name}`", "", "```python", signature(name), "```", ""]
        parts.append(rst_to_markdown(inspect.getdoc(getattr(hookspecs, name)) or ""))
    parts += ["", "## Records"]
    for name in RECORDS:
        cls = getattr(hookspecs, name)
        fields = ", ".join(field.name for field in attrs.fields(cls))
        parts += ["", f"### `{name}({fields})`", "", rst_to_markdown(inspect.getdoc(cls) or "")]
    parts += ["", "## The inference server's events (`kaslite.serving`)", ""]
    parts.append(rst_to_markdown(inspect.getdoc(serving) or ""))
    for name in SERVER_EVENTS:
        cls = getattr(serving, name)
        fields = ", ".join(field.name for field in attrs.fields(cls))
        parts += ["", f"### `{name}({fields})`", "", rst_to_markdown(inspect.getdoc(cls) or "")]
    for name in SERVER_CLASSES:
        cls = getattr(serving, name)
        methods = [
            f"- `{method}`: {rst_to_markdown(inspect.getdoc(getattr(cls, method)) or '')}"
            for method in vars(cls)
            if not method.startswith("_")
        ]
        parts += ["", f"### `{name}`", "", rst_to_markdown(inspect.getdoc(cls) or ""), "", *methods]
    return "\n".join(parts) + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        if not DOC.exists() or DOC.read_text() != text:
            print(f"{DOC} is out of date: run python scripts/plugin_docs.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
