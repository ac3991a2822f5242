"""Fixtures for kaslite-tracking: real SQLite MLflow stores, tiny runs, the CLI in a subprocess.

A migrated store costs about 2 s to create, so one is made per session and
copied for each test. Runs use kaslite.testing's ``xor`` dataset (registered
in-process, or as an entry point of a fake distribution for subprocesses).
"""

import os
from pathlib import Path

import pytest

import kaslite
from kaslite.testing import fake_distribution

from .helpers import TrainedRun, copy_store, tiny_config, use_tiny_data


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tiny networks on a shared 2-core machine: one intra-op thread is many times faster than two."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated MLflow SQLite store for the whole session; tests get copies."""
    path = tmp_path_factory.mktemp("store-template") / "mlflow.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        from mlflow import MlflowClient

        from kaslite_tracking.store import mlflow_env

        with mlflow_env():
            MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def store(tmp_path: Path, store_template: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh store in ``tmp_path``, which is also the working directory (artifacts land in ./mlruns)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return copy_store(store_template, tmp_path)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, store_template: Path) -> TrainedRun:
    """A tiny run with json, tensorboard and mlflow trackers; registered and staged (thresholds 0)."""
    from kaslite.train.runner import run_experiment

    root = tmp_path_factory.mktemp("trained")
    uri = copy_store(store_template, root)
    config = tiny_config()
    settings = {"tracking_uri": uri, "register_threshold": 0.0, "staging_threshold": 0.0}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.chdir(root)
        kaslite.reset_plugin_manager()
        use_tiny_data()
        trackers = ["json", "tensorboard", "mlflow"]
        summary = run_experiment(config, root / "results", "shared", trackers, quiet=True, tracker_settings=settings)
        kaslite.reset_plugin_manager()
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("kaslite").experiment_id])
    return TrainedRun(root, uri, root / "results" / "shared", summary, run.info.run_id, config)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A subprocess environment whose only dataset is ``xor``, installed as an entry point."""
    site = fake_distribution(
        tmp_path / "site", name="tiny-data", entry_points={"tiny": "kaslite.testing:tiny_datasets"}
    )
    environ = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    return {
        **environ,
        "PYTHONPATH": str(site),
        "PYTHONUNBUFFERED": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "OMP_NUM_THREADS": "1",  # see one_torch_thread
    }
