"""``kaslite run`` on two processes (gloo, CPU), launched by torchrun as a user would, with MLflow on."""

import json
import os
import subprocess
import sys

import torch
from mlflow import MlflowClient

RUN = [
    "--problem", "moons", "--n-samples", "400", "--hidden-dim", "16", "--warm-up-epochs", "2",
    "--adaptation-epochs", "4", "--controller", "periodic", "--period", "2", "--blend-steps", "3",
    "--progress-thresh", "0", "--batch-size", "32", "-q",
]  # fmt: skip


def kaslite(*args: str, cwd, torchrun: bool = False) -> subprocess.CompletedProcess:
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"] if torchrun else []
    command = [sys.executable, *launcher, "-m", "kaslite", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def parameters(path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def test_torchrun_trains_one_run_on_two_processes_and_resumes_it(tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking = ["--tracker", "json", "--tracker", "mlflow", "--no-register", "--tracking-uri", store]
    done = kaslite("run", *RUN, *tracking, "--output-dir", "out", "--run-name", "ddp", cwd=tmp_path, torchrun=True)
    assert done.returncode == 0, done.stderr
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["ddp"]  # rank 0 alone wrote a run
    metrics = json.loads((tmp_path / "out" / "ddp" / "metrics.json").read_text())
    assert (metrics["processes"], metrics["epochs"]) == (2, 6) and metrics["seeds_activated"] >= 1  # it grew
    # The ranks checked their parameters agree at the end (a run whose ranks drifted fails).

    again = kaslite("run", "--resume", "out/ddp", "--adaptation-epochs", "6", *tracking, "--nproc", "2", "-q",
                    cwd=tmp_path)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "out" / "ddp" / "metrics.json").read_text())["epochs"] == 8
    client = MlflowClient(tracking_uri=store)
    runs = client.search_runs([experiment.experiment_id for experiment in client.search_experiments()])
    assert [(run.info.run_name, run.info.status) for run in runs] == [("ddp", "FINISHED")]  # logged once
    assert len(client.get_metric_history(runs[0].info.run_id, "val_acc")) == 8


def test_one_and_two_processes_end_with_the_same_network(tmp_path):
    static = [*RUN, "--controller", "never", "--tracker", "json", "--output-dir", "out"]
    one = kaslite("run", *static, "--run-name", "one", cwd=tmp_path)
    two = kaslite("run", *static, "--run-name", "two", "--nproc", "2", cwd=tmp_path)
    assert (one.returncode, two.returncode) == (0, 0), (one.stderr, two.stderr)
    expected, got = parameters(tmp_path / "out" / "one" / "model.pt"), parameters(tmp_path / "out" / "two" / "model.pt")
    for name, tensor in expected.items():  # the same batches and averaged gradients: equal up to float order
        torch.testing.assert_close(got[name], tensor, rtol=1e-5, atol=1e-6)
