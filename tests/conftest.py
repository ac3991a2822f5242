"""Shared fixtures: every test starts with a fresh plugin manager and a clean environment."""

import pytest

import kaslite


@pytest.fixture(autouse=True)
def fresh_plugins(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    # Each test (and every subprocess it starts) works in a scratch folder, so default
    # outputs such as results/, mlflow.db and runs/ never land in the repository.
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    for var in ("KASLITE_STRICT_PLUGINS", "KASLITE_DISABLE_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    # Set, not deleted, so that `kaslite --debug` (which sets it) is undone after the test.
    monkeypatch.setenv("KASLITE_DEBUG", "")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    kaslite.reset_plugin_manager()
    yield
    kaslite.reset_plugin_manager()
