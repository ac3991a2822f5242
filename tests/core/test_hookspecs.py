"""Meta layer: every hook spec is documented like public API and exercised by a test."""

import inspect
from pathlib import Path

import pytest

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
