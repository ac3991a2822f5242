"""Shared fixtures: every test starts with a fresh plugin manager and a clean environment."""

import pytest

import kaslite


@pytest.fixture(autouse=True)
def fresh_plugins(monkeypatch: pytest.MonkeyPatch):
    for var in ("KASLITE_STRICT_PLUGINS", "KASLITE_DISABLE_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    kaslite.reset_plugin_manager()
    yield
    kaslite.reset_plugin_manager()
