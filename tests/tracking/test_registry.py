"""Registry corner cases through the Python API (the CLI lifecycle is in test_registry_cli.py)."""

import pytest
from mlflow import MlflowClient

from kaslite.train.runner import run_experiment
from kaslite_tracking.registry import Registry
from kaslite_tracking.store import StoreError, mlflow_env

from .helpers import tiny_config, use_tiny_data


@pytest.fixture
def two_versions(store):
    """Versions 1 and 2 from two runs, each given ``staging`` at the end of its run."""
    use_tiny_data()
    settings = {"tracking_uri": store, "register_threshold": 0.0, "staging_threshold": 0.0}
    summaries = [
        run_experiment(tiny_config(seed), "out", f"s{seed}", ["json", "mlflow"], quiet=True, tracker_settings=settings)
        for seed in (0, 2)
    ]
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    return Registry(client, "kaslite", store), summaries


def test_best_by_a_run_metric_when_versions_have_no_such_tag(two_versions):
    registry, summaries = two_versions
    with mlflow_env():
        info, value = registry.best("best_acc")
        scores = {"1": summaries[0].metrics["best_acc"], "2": summaries[1].metrics["best_acc"]}
        assert (info.version, value) == max(scores.items(), key=lambda item: (item[1], int(item[0])))
        with pytest.raises(StoreError) as missing:
            registry.best("f1")
    assert str(missing.value) == "no version of model 'kaslite' has a 'f1' value"


def test_rollback_after_the_alias_was_moved_outside_kaslite(two_versions):
    registry, _ = two_versions
    with mlflow_env():
        assert registry.require_holder("staging").version == "2"
        assert [(e.action, e.version, e.previous) for e in registry.history("staging")] == [
            ("auto", "1", None),
            ("auto", "2", "1"),
        ]
        registry.client.set_registered_model_alias("kaslite", "staging", "1")  # e.g. in the MLflow UI
        assert registry.rollback("staging") == ("2", "1")
        assert registry.require_holder("staging").version == "2"
        assert registry.rollback("staging") == ("1", "2")
        with pytest.raises(StoreError):
            registry.rollback("staging")
