"""Meta layer: every hook spec is documented like public API and exercised by a test."""

import inspect
import os
import re
from pathlib import Path

import pytest

import kaslite
from kaslite import hookspecs
from kaslite.plugins import KINDS

SPECS = sorted(name for name in dir(hookspecs) if name.startswith("kaslite_"))
TESTS = Path(__file__).resolve().parents[1]


def test_the_specs_of_the_architecture():
    assert SPECS == [
        "kaslite_commands",
        "kaslite_controllers",
        "kaslite_datasets",
        "kaslite_model_sources",
        "kaslite_seed_blueprints",
        "kaslite_server_app",
        "kaslite_sweep_end",
        "kaslite_trackers",
    ]


@pytest.mark.parametrize("name", SPECS)
def test_spec_is_documented_with_an_example(name):
    spec = getattr(hookspecs, name)
    doc = inspect.getdoc(spec) or ""
    assert len(doc.splitlines()[0]) > 10, f"{name} needs a one-line summary"
    assert "Example::" in doc and "@kaslite.hookimpl" in doc, f"{name} needs a runnable example"
    for param in inspect.signature(spec).parameters:
        assert f":param {param}:" in doc, f"{name} does not document {param}"


@pytest.mark.parametrize("name", SPECS)
def test_spec_is_exercised_by_a_test(name):
    here = Path(__file__).resolve()
    users = [p for p in TESTS.rglob("test_*.py") if p != here and name in p.read_text()]
    assert users, f"no test exercises {name}"


def test_every_registration_hook_has_a_kind():
    assert sorted(kind.hook for kind in KINDS) == sorted(
        name for name in SPECS if name not in {"kaslite_commands", "kaslite_server_app", "kaslite_sweep_end"}
    )


def load_plugin_docs_script():
    import importlib.util

    path = TESTS.parent / "scripts" / "plugin_docs.py"
    spec = importlib.util.spec_from_file_location("plugin_docs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_plugins_md_is_generated_from_the_specs():
    docs = load_plugin_docs_script()
    assert sorted(docs.HOOKS) == SPECS
    text = (TESTS.parent / "docs" / "plugins.md").read_text()
    assert text == docs.render(), "docs/plugins.md is stale: run python scripts/plugin_docs.py"
    for name in SPECS:
        assert f"### `{name}`" in text and docs.signature(name) in text


def test_docs_reference_md_is_generated_from_the_code():
    from kaslite.control import Cull, EpochMetrics, Germinate, Observation, SeedView
    from kaslite.nn import SeedState
    from kaslite.train import Tracker

    docs = load_plugin_docs_script()
    text = (TESTS.parent / "docs" / "reference.md").read_text()
    assert text == docs.render_reference(), "docs/reference.md is stale: run python scripts/plugin_docs.py"
    for record in (Observation, EpochMetrics, SeedView, Germinate, Cull, *docs.tracker_records(Tracker)):
        assert f"### `{record.__name__}`" in text
    methods = [name for name in vars(Tracker) if not name.startswith("_")]
    assert all(f"- `{name}(" in text for name in methods)
    assert all(f"`{state.value}`" in text for state in SeedState)
    assert "warm-up (phase 1) epochs included" in text  # the policy test in test_testing_helpers.py checks it
    for helper in ("observation", "seed_view", "scripted_run", "drive_tracker", "invoke"):
        assert f"### `{helper}(" in text


def test_every_tracker_event_record_documents_its_fields():
    import attrs

    from kaslite.train import Tracker

    docs = load_plugin_docs_script()
    for record in docs.tracker_records(Tracker):
        _, params = docs.split_params(inspect.getdoc(record) or "")
        assert [field.name for field in attrs.fields(record)] == list(params), record.__name__


TRACKER_EXAMPLE_PROBE = """
import atexit, json, sys
atexit.register(lambda: print("HEAVY=" + json.dumps("torch" in sys.modules), file=sys.stderr))
sys.argv = ["kaslite", *{args}]
from kaslite.cli.main import main
main()
"""


def test_the_tracker_example_in_the_docs_keeps_kaslite_fast(tmp_path, monkeypatch):
    """Installed as printed, the example tracker leaves torch unimported on kaslite --help, and works."""
    import subprocess
    import sys
    import textwrap

    from kaslite.testing import fake_distribution, invoke, tiny_datasets

    doc = inspect.getdoc(hookspecs.kaslite_trackers) or ""
    blocks = [textwrap.dedent(block) for block in re.findall(r"::\n\n((?:    .*\n|\n)+)", doc + "\n")]
    plugin, printer = blocks
    assert "from my_tracker.printer import PrintTracker" in plugin
    package = tmp_path / "site" / "my_tracker"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "printer.py").write_text(printer)
    header = "import kaslite\nfrom kaslite.hookspecs import TrackerSpec\n\n"
    fake_distribution(
        tmp_path / "site", name="my-tracker", entry_points={"print": "my_tracker.plugin"},
        modules={"my_tracker/plugin": header + plugin},
    )  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    for args in (["--help"], ["run", "--help"], ["plugins"]):
        code = TRACKER_EXAMPLE_PROBE.format(args=args)
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr.strip().splitlines()[-1] == "HEAVY=false", args

    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    kaslite.reset_plugin_manager()
    kaslite.get_plugin_manager().register(tiny_datasets, name="tiny")
    result = invoke(
        "run", "--problem", "xor", "--n-samples", "64", "--hidden-dim", "4", "--warm-up-epochs", "1",
        "--adaptation-epochs", "1", "--tracker", "print", "--no-tracker", "json", "--output-dir", str(tmp_path / "out"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["1", "2"]
