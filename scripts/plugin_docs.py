#!/usr/bin/env python
"""Write docs/plugins.md and docs/reference.md from the code, so the docs cannot drift from it.

docs/plugins.md comes from kaslite.hookspecs; docs/reference.md from the
records a plugin receives (the controller API, the Tracker methods and the
records they take) and from kaslite.testing.

python scripts/plugin_docs.py          # rewrite both files
python scripts/plugin_docs.py --check  # exit 1 if either is out of date
"""

import inspect
import re
import sys
import textwrap
import typing
from pathlib import Path

import attrs

from kaslite import hookspecs, serving

DOCS = Path(__file__).resolve().parents[1] / "docs"
DOC = DOCS / "plugins.md"
REFERENCE = DOCS / "reference.md"
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


# -- docs/reference.md ------------------------------------------------------------


def doc_of(obj: object) -> str:
    return rst_to_markdown(inspect.getdoc(obj) or "")


def split_params(doc: str) -> tuple[str, dict[str, str]]:
    """A class docstring's prose, and its ``:param name:`` descriptions."""
    prose, params, current = [], {}, None
    for line in (doc or "").splitlines():
        field = re.match(r"\s*:param (\w+):\s*(.*)", line)
        if field:
            current = field.group(1)
            params[current] = field.group(2)
        elif current is not None and line.startswith("    ") and line.strip():
            params[current] += " " + line.strip()
        else:
            current = None
            prose.append(line)
    return "\n".join(prose).strip(), params


def type_name(tp: object) -> str:
    text = tp.__name__ if isinstance(tp, type) else str(tp)
    return re.sub(r"\b(typing|pathlib|collections[.]abc|kaslite(?:[.]\w+)*)[.]", "", text).replace("NoneType", "None")


def record_section(cls: type) -> list[str]:
    """A record's heading, prose and a table of its fields (type, default, description)."""
    prose, params = split_params(inspect.getdoc(cls) or "")
    try:
        hints = typing.get_type_hints(cls)
    except NameError:  # an annotation names a type imported only for type checking
        hints = {}
    rows = ["| field | type | description |", "|---|---|---|"]
    for field in attrs.fields(cls):
        description = rst_to_markdown(params.get(field.name, "")).replace("\n", " ")
        default = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory()
        if default is not attrs.NOTHING:
            description = f"{description} Default `{default!r}`.".strip()
        rows.append(f"| `{field.name}` | `{type_name(hints.get(field.name, field.type))}` | {description} |")
    members = [
        (name, member)
        for name, member in vars(cls).items()
        if not name.startswith("_") and (isinstance(member, property) or inspect.isfunction(member))
    ]
    extra = []
    for name, member in members:
        target = member.fget if isinstance(member, property) else member
        call = name if isinstance(member, property) else f"{name}{signature_of(target)}"
        extra.append(bullet(f"- `{call}`: {doc_of(target)}"))
    return [f"### `{cls.__name__}`", "", rst_to_markdown(prose), "", *rows, *(["", *extra] if extra else []), ""]


class _Name(str):
    """An annotation written as a string, shown without quotes."""

    def __repr__(self) -> str:
        return str(self)


def signature_of(function: object) -> str:
    """``(args) -> ret`` without ``self``, module prefixes or quotes around string annotations."""
    signature = inspect.signature(function)  # type: ignore[arg-type]
    params = [
        p.replace(annotation=_Name(p.annotation)) if isinstance(p.annotation, str) else p
        for p in signature.parameters.values()
        if p.name != "self"
    ]
    ret = signature.return_annotation
    signature = signature.replace(parameters=params, return_annotation=_Name(ret) if isinstance(ret, str) else ret)
    return re.sub(r"\b(typing|pathlib|collections[.]abc|kaslite(?:[.]\w+)*)[.]", "", str(signature))


def bullet(text: str) -> str:
    """A list item whose continuation lines stay inside the item."""
    return "\n".join(f"  {line}" if line else "" for line in text.splitlines()).strip()


def method_section(cls: type) -> list[str]:
    """Each public method of ``cls``, in definition order, with its docstring."""
    out = []
    for name, member in vars(cls).items():
        if inspect.isfunction(member) and not name.startswith("_"):
            out += [bullet(f"- `{name}{signature_of(member)}`: {doc_of(member)}")]
    return out


def tracker_records(tracker: type) -> list[type]:
    """The record classes the Tracker methods receive, in the order the methods are defined."""
    records: list[type] = []
    for member in vars(tracker).values():
        if inspect.isfunction(member):
            for hint in typing.get_type_hints(member).values():
                if attrs.has(hint) and hint not in records:
                    records.append(hint)
    return records


def render_reference() -> str:
    from kaslite import testing
    from kaslite.control import base as control
    from kaslite.models import LoadedModel
    from kaslite.nn.seed import ALLOWED_TRANSITIONS, SeedState
    from kaslite.testing import fixtures
    from kaslite.train.tracker import Tracker

    states = ", ".join(f"`{state.value}`" for state in SeedState)
    moves = [
        f"- `{state.value}` → {', '.join(f'`{to.value}`' for to in sorted(ALLOWED_TRANSITIONS[state]))}"
        for state in SeedState
        if ALLOWED_TRANSITIONS.get(state)
    ]
    parts = [
        "# Reference: what a plugin receives and returns",
        "",
        "<!-- Generated from the code by scripts/plugin_docs.py: edit the docstrings, not this file. -->",
        "",
        "Every record a hook's product meets at run time: the observation a growth policy",
        "decides on and the actions it returns, every event a tracker receives, and the",
        "helpers `kaslite.testing` offers to test them. [plugins.md](plugins.md) documents",
        "the hooks and the records they return.",
        "",
        "## Growth policies",
        "",
        "A controller's `decide(obs)` is called after every epoch of phase 2. `obs.history`",
        "holds every finished epoch from the first, warm-up (phase 1) epochs included, oldest",
        "first; `obs.latest` is the epoch just finished. `kaslite.testing.seed_view` (below)",
        "describes what each field of a `SeedView` measures.",
        "",
        f"A seed's `state` is one of {states}. The moves a seed can make:",
        "",
        *moves,
        "",
        f"### `{control.Controller.__name__}`",
        "",
        doc_of(control.Controller),
        "",
        *method_section(control.Controller),
        "",
    ]
    for cls in (control.Observation, control.EpochMetrics, control.SeedView, control.Germinate, control.Cull):
        parts += record_section(cls)
    parts += [
        "## Trackers",
        "",
        f"### `{Tracker.__name__}`",
        "",
        doc_of(Tracker),
        "",
        *method_section(Tracker),
        "",
    ]
    for cls in tracker_records(Tracker):
        parts += record_section(cls)
    parts += ["## Model sources", ""]
    parts += record_section(LoadedModel)
    parts += ["## Testing helpers: `kaslite.testing`", "", doc_of(testing), ""]
    for name in ("observation", "seed_view", "scripted_run", "drive_tracker", "invoke", "plugin_manager"):
        function = getattr(testing, name)
        parts += [f"### `{name}{signature_of(function)}`", "", doc_of(function), ""]
    parts += ["### pytest fixtures", "", doc_of(fixtures), ""]
    return "\n".join(parts).rstrip() + "\n"


def main() -> int:
    outputs = {DOC: render(), REFERENCE: render_reference()}
    if "--check" in sys.argv[1:]:
        stale = [path for path, text in outputs.items() if not path.exists() or path.read_text() != text]
        for path in stale:
            print(f"{path} is out of date: run python scripts/plugin_docs.py", file=sys.stderr)
        return 1 if stale else 0
    for path, text in outputs.items():
        path.write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
