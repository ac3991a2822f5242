"""The mlflow tracker against a real SQLite store: what a run logs, sweeps, resume, and a failing store."""

import csv
import json
import logging
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import attrs
import pytest
from mlflow import MlflowClient

import kaslite
from kaslite.config import build_config, flatten, load_yaml
from kaslite.control.base import Controller
from kaslite.errors import RunStopped
from kaslite.hookspecs import ControllerSpec, TrackerSpec
from kaslite.plot import load_run, png_bytes, run_figure
from kaslite.testing import invoke
from kaslite.train import Tracker
from kaslite.train.grower import GrowthPolicyError
from kaslite.train.runner import resume_experiment, run_experiment
from kaslite_tracking import mlflow_tracker
from kaslite_tracking.mlflow_tracker import register_model
from kaslite_tracking.options import MlflowOptions

from .helpers import TINY, copy_store, kaslite_cli, read_events, texts, tiny_config, use_tiny_data

EPOCH_METRICS = ("train_loss", "val_loss", "val_acc", "best_acc")


def history_rows(run_dir):
    return list(csv.DictReader((run_dir / "history.csv").open()))


def metric_history(client, run_id, key):
    return [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def kaslite_runs(client, experiment="kaslite"):
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    return client.search_runs([experiment_id], order_by=["attributes.start_time ASC"])


def test_params_metrics_tags_and_artifacts(trained, tmp_path):
    client = trained.client()
    run = client.get_run(trained.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "shared"
    written = build_config(load_yaml(trained.run_dir / "config.yaml"))  # plugin parameters resolved
    assert run.data.params == {key: str(value) for key, value in flatten(written).items()}
    assert run.data.params["seeds.blend_steps"] == "3"

    rows = history_rows(trained.run_dir)
    for key in EPOCH_METRICS:
        assert metric_history(client, trained.run_id, key) == [(int(r["epoch"]), float(r[key])) for r in rows]
    for seed in ("seed1_1", "seed2_1"):
        expected = [(int(r["epoch"]), float(r[f"{seed}_alpha"])) for r in rows]
        assert metric_history(client, trained.run_id, f"seed_alpha.{seed}") == expected

    metrics = trained.summary.metrics  # metrics.json plus timing.json
    finals = {key[len("final.") :]: value for key, value in run.data.metrics.items() if key.startswith("final.")}
    numeric = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    assert finals == {key: float(value) for key, value in numeric.items()}

    events = [json.loads(line) for line in (trained.run_dir / "events.jsonl").read_text().splitlines()]
    germinations = {
        e["seed_id"]: str(e["epoch"]) for e in events if e["event"] == "seed_transition" and e["to_state"] == "training"
    }
    assert germinations == {"seed1_1": "5", "seed2_1": "7", "wide_1": "9"}
    tags = run.data.tags
    assert {key: tags[key] for key in tags if key.startswith("kaslite.germination.")} == {
        f"kaslite.germination.{seed}": epoch for seed, epoch in germinations.items()
    }
    assert tags["kaslite.phase"] == "2"
    assert tags["kaslite.phase2_start_epoch"] == "4"
    assert tags["kaslite.seed.seed1_1"] == tags["kaslite.seed.seed2_1"] == "active"
    assert tags["kaslite.problem"] == "xor"
    assert tags["kaslite.run_dir"] == str(trained.run_dir)

    top = {artifact.path for artifact in client.list_artifacts(trained.run_id)}
    assert top == {
        "config.yaml", "history.csv", "events.jsonl", "metrics.json", "timing.json", "tensorboard", "growth.png"
    }  # fmt: skip
    (event_file,) = client.list_artifacts(trained.run_id, "tensorboard")
    assert event_file.path.startswith("tensorboard/events.out.tfevents.")
    local = client.download_artifacts(trained.run_id, "", str(tmp_path))
    for name in ("config.yaml", "history.csv", "events.jsonl", "timing.json"):
        assert (tmp_path / name).read_bytes() == (trained.run_dir / name).read_bytes(), name
    assert json.loads((tmp_path / "metrics.json").read_text()) == trained.metrics()
    assert local == str(tmp_path)
    # The run's figure: the very picture `kaslite plot` draws from the run's folder.
    assert (tmp_path / "growth.png").read_bytes() == png_bytes(run_figure([load_run(trained.run_dir)]))

    (model_output,) = run.outputs.model_outputs
    assert tags["kaslite.model_id"] == model_output.model_id


def test_registered_version_tags_and_staging_alias(trained):
    client = trained.client()
    metrics = trained.metrics()
    (version,) = client.search_model_versions("name = 'kaslite'")
    assert version.version == 1
    assert version.run_id == trained.run_id
    assert {k: v for k, v in version.tags.items() if not k.startswith("kaslite.")} == {
        "val_acc": repr(metrics["val_acc"]),
        "run_id": trained.run_id,
        "problem": "xor",
        "seeds_activated": str(metrics["seeds_activated"]),
    }
    assert client.get_model_version_by_alias("kaslite", "staging").version == 1
    assert version.tags["kaslite.staging.previous_version"] == "none"
    assert version.tags["kaslite.staging.assigned_by"] == "auto"
    run_tags = client.get_run(trained.run_id).data.tags
    assert (run_tags["kaslite.registered_version"], run_tags["kaslite.registered_alias"]) == ("1", "staging")


def test_the_figure_is_drawn_once_for_both_trackers_and_a_failing_figure_loses_nothing(store, monkeypatch, caplog):
    from kaslite.plot import tracking

    use_tiny_data()
    settings = {"tracking_uri": store, "register": False}
    drawn, read = [], tracking._read
    monkeypatch.setattr(tracking, "_read", lambda summary: drawn.append(summary) or read(summary))
    trackers = ["json", "tensorboard", "mlflow"]
    run_experiment(tiny_config(), "out", "once", trackers, quiet=True, tracker_settings=settings)
    assert len(drawn) == 1 and drawn[0].run_name == "once" and len(drawn[0].history) == 9
    assert tracking._helper is None and tracking._drawing is None  # its helper drew, and is gone

    # A helper that cannot draw (here: it exits with a message, as one without matplotlib would).
    monkeypatch.setattr(tracking, "HELPER", [sys.executable, "-c", "import sys; sys.exit('no figure today')"])
    with caplog.at_level(logging.WARNING, logger="kaslite.plot"):
        summary = run_experiment(tiny_config(), "out", "broken", trackers, quiet=True, tracker_settings=settings)
    assert "kaslite: no run figure: no figure today" in caplog.text
    client = MlflowClient(tracking_uri=store)
    run = next(r for r in kaslite_runs(client) if r.info.run_name == "broken")
    assert run.info.status == "FINISHED" and run.data.metrics["final.val_acc"] == summary.metrics["val_acc"]
    assert "growth.png" not in {artifact.path for artifact in client.list_artifacts(run.info.run_id)}


def test_a_failed_run_leaves_no_figure_helper_behind(store, monkeypatch):
    from kaslite.plot import tracking

    use_tiny_data()
    kaslite.get_plugin_manager().register(BrokenPolicy(), name="broken")
    helpers = []
    popen = tracking.subprocess.Popen
    monkeypatch.setattr(tracking.subprocess, "Popen", lambda *a, **k: helpers.append(popen(*a, **k)) or helpers[-1])
    config = tiny_config()
    config = attrs.evolve(config, controller=attrs.evolve(config.controller, name="broken"))
    settings = {"tracking_uri": store, "register": False}
    with pytest.raises(RunStopped):
        run_experiment(
            config, "out", "failed", ["json", "tensorboard", "mlflow"], quiet=True, tracker_settings=settings
        )
    (helper,) = helpers  # one for both trackers, stopped when they closed
    assert helper.returncode is not None and tracking._helper is None


def test_a_store_elsewhere_than_the_working_directory_gets_the_registered_model(store, monkeypatch):
    use_tiny_data()
    Path("work").mkdir()
    monkeypatch.chdir("work")  # --tracking-uri names the store; MLflow's own default would be ./mlflow.db
    settings = {"tracking_uri": store, "register_threshold": 0.0}
    run_experiment(tiny_config(), ".", "elsewhere", ["json", "mlflow"], quiet=True, tracker_settings=settings)
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    (version,) = client.search_model_versions("name = 'kaslite'")
    assert version.run_id == kaslite_runs(client)[0].info.run_id
    assert not Path("mlflow.db").exists()


def test_thresholds_decide_registration(store, monkeypatch):
    use_tiny_data()
    Path("work").mkdir()
    monkeypatch.chdir("work")  # the default ./mlflow.db is not the store here
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)  # no --tracking-uri: the environment decides
    settings = {"register_threshold": 1.0, "staging_threshold": 1.0}
    summary = run_experiment(tiny_config(), ".", "strict", ["json", "mlflow"], quiet=True, tracker_settings=settings)
    assert not Path("mlflow.db").exists()
    client = MlflowClient(tracking_uri=store)
    assert [run.info.run_name for run in kaslite_runs(client)] == ["strict"]
    versions = client.search_model_versions("name = 'kaslite'")
    assert len(versions) == (1 if summary.metrics["val_acc"] >= 1.0 else 0)

    settings = {"register": False, "register_threshold": 0.0}
    run_experiment(tiny_config(), ".", "off", ["json", "mlflow"], quiet=True, tracker_settings=settings)
    assert len(client.search_model_versions("name = 'kaslite'")) == len(versions)
    off = next(run for run in kaslite_runs(client) if run.info.run_name == "off")
    assert "kaslite.registered_version" not in off.data.tags
    assert len(off.outputs.model_outputs) == 1  # still logged, only not registered


def test_sweep_trials_are_children_of_one_parent_per_sweep(store):
    use_tiny_data()
    settings = {"tracking_uri": store, "register": False, "experiment": "sweeps"}
    summaries = {}
    for sweep, trial in [("s1", "0"), ("s1", "1"), ("s2", "0")]:
        labels = {"sweep_id": sweep, "trial": trial}
        name = f"{sweep}-t{trial}"
        summaries[name] = run_experiment(
            tiny_config(seed=int(trial)), "out", name, ["mlflow"], quiet=True, tracker_settings=settings, labels=labels
        )
    client = MlflowClient(tracking_uri=store)
    runs = kaslite_runs(client, "sweeps")
    parents = {r.data.tags["kaslite.sweep_id"]: r for r in runs if r.data.tags.get("kaslite.sweep_parent") == "true"}
    assert sorted(parents) == ["s1", "s2"]
    assert parents["s1"].info.run_name == "sweep-s1"
    children = {r.info.run_name: r for r in runs if "kaslite.sweep_parent" not in r.data.tags}
    assert sorted(children) == ["s1-t0", "s1-t1", "s2-t0"]
    for name, child in children.items():
        sweep, trial = name.split("-t")
        assert child.data.tags["mlflow.parentRunId"] == parents[sweep].info.run_id
        assert (child.data.tags["kaslite.sweep_id"], child.data.tags["kaslite.trial"]) == (sweep, trial)
        # Only the mlflow tracker ran: it wrote metrics.json and timing.json itself.
        written = {
            file: json.loads(Path(client.download_artifacts(child.info.run_id, file)).read_text())
            for file in ("metrics.json", "timing.json")
        }
        assert {**written["metrics.json"], **written["timing.json"]} == summaries[name].metrics
        assert list(written["timing.json"]) == ["wall_time_s"]


def sweep_parent(client, sweep_id, experiment="sweeps"):
    runs = kaslite_runs(client, experiment)
    (parent,) = [r for r in runs if r.data.tags.get("kaslite.sweep_parent") == "true" and
                 r.data.tags["kaslite.sweep_id"] == sweep_id]  # fmt: skip
    return parent


def test_a_sweep_parent_stays_running_until_the_sweep_ends(store):
    from kaslite.hookspecs import SweepEnd
    from kaslite_tracking.mlflow_tracker import end_sweep_parent
    from kaslite_tracking.options import MlflowOptions

    use_tiny_data()
    settings = {"tracking_uri": store, "register": False, "experiment": "sweeps"}
    options = {"mlflow": MlflowOptions(experiment="sweeps", tracking_uri=store, register=False)}
    client = MlflowClient(tracking_uri=store)
    for trial in ("1", "2"):
        labels = {"sweep_id": "s", "trial": trial}
        run_experiment(
            tiny_config(), "out", f"t{trial}", ["mlflow"], quiet=True, tracker_settings=settings, labels=labels
        )
        assert sweep_parent(client, "s").info.status == "RUNNING"  # a trial's end is not the sweep's

    def end(status):
        end_sweep_parent(SweepEnd("s", "study", status, {}, ("mlflow",), options, "out"))
        return sweep_parent(client, "s").info.status

    assert end("interrupted") == "RUNNING"  # other workers may still run trials; running it again continues
    assert end("failed") == "FAILED"
    labels = {"sweep_id": "s", "trial": "3"}  # the sweep started again: its parent runs again
    run_experiment(tiny_config(), "out", "t3", ["mlflow"], quiet=True, tracker_settings=settings, labels=labels)
    assert sweep_parent(client, "s").info.status == "RUNNING"
    assert end("finished") == "FINISHED"


def test_kaslite_sweep_ends_its_parent_finished_or_failed_when_every_trial_failed(store, tmp_path):
    from click.testing import CliRunner

    from kaslite.cli.main import cli

    use_tiny_data()
    flags = [*TINY, "--tracker", "mlflow", "--tracking-uri", store, "--experiment", "sweeps", "--no-register"]
    for name, lrs, code, status in [
        ("mixed", "[0.01, 1e30]", 0, "FINISHED"),
        ("diverged", "[1e30, 1e31]", 1, "FAILED"),
    ]:
        (tmp_path / f"{name}.yaml").write_text(f"lr: {lrs}\n")
        result = CliRunner().invoke(cli, ["sweep", str(tmp_path / f"{name}.yaml"), *flags, "--output-dir", name])
        assert result.exit_code == code, result.output
        sweep_id = json.loads((tmp_path / name / "sweep_summary.json").read_text())["sweep_id"]
        client = MlflowClient(tracking_uri=store)
        assert sweep_parent(client, sweep_id).info.status == status
        children = [r for r in kaslite_runs(client, "sweeps") if r.data.tags.get("kaslite.sweep_id") == sweep_id]
        assert sorted(r.info.status for r in children if "kaslite.sweep_parent" not in r.data.tags) == (
            ["FAILED", "FINISHED"] if name == "mixed" else ["FAILED", "FAILED"]
        )


class Killed(BaseException):
    """Stands in for a kill: not an Exception, so no tracker group swallows it."""


class KillAt(Tracker):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, record):
        if record.epoch == self.epoch:
            raise Killed


class Sabotage(Tracker):
    """Overwrites the SQLite store with zeros at one epoch: the store fails mid-run."""

    def __init__(self, epoch, path):
        self.epoch, self.path = epoch, path

    def on_epoch_end(self, record):
        if record.epoch == self.epoch:
            with open(self.path, "r+b") as db:
                db.write(b"\0" * 4096)


def register_tracker(name, tracker):
    class Plugin:
        @kaslite.hookimpl
        def kaslite_trackers(self):
            return [TrackerSpec(name, lambda run: tracker)]

    kaslite.get_plugin_manager().register(Plugin(), name=name)


@pytest.mark.parametrize(
    ("first", "hard_kill"),
    [(["json", "kill", "mlflow"], False), (["json", "kill", "mlflow"], True), (["json", "kill"], False)],
    ids=["same-run", "same-run-after-sigkill", "backfilled"],
)
def test_a_resumed_run_is_one_complete_mlflow_run(store, first, hard_kill, monkeypatch):
    use_tiny_data()
    register_tracker("kill", KillAt(3))
    settings = {"tracking_uri": store, "register": False}
    with monkeypatch.context() as patch:
        if hard_kill:  # SIGKILL before the first flush: nothing is sent or closed
            patch.setattr(mlflow_tracker.MlflowTracker, "on_run_failed", lambda self, event: None)
            patch.setattr(mlflow_tracker.MlflowTracker, "close", lambda self: None)
            patch.setattr(mlflow_tracker, "FLUSH_EVERY_S", 1e9)
        with pytest.raises(Killed):
            run_experiment(tiny_config(), "out", "resumable", first, quiet=True, tracker_settings=settings)
    client = MlflowClient(tracking_uri=store)
    if "mlflow" in first:
        (interrupted,) = kaslite_runs(client)
        assert interrupted.info.status == ("RUNNING" if hard_kill else "FAILED")
        logged = [step for step, _ in metric_history(client, interrupted.info.run_id, "val_acc")]
        assert logged == ([] if hard_kill else [1, 2])

    resume_experiment("out/resumable", ["json", "mlflow"], quiet=True, tracker_settings=settings)
    (run,) = kaslite_runs(client)
    assert run.info.status == "FINISHED"
    rows = history_rows(Path("out/resumable"))
    assert len(rows) == 9
    for key in EPOCH_METRICS:
        assert metric_history(client, run.info.run_id, key) == [(int(r["epoch"]), float(r[key])) for r in rows]


class InterruptAt(Tracker):
    """Ctrl-C at one epoch: KeyboardInterrupt raised where the trainer is. Keeps where the run was tracked."""

    def __init__(self, epoch):
        self.epoch = epoch
        self.places = None

    def on_epoch_end(self, record):
        if record.epoch == self.epoch:
            raise KeyboardInterrupt

    def on_run_tracked(self, event):
        self.places = event.places


class NoDecision(Controller):
    """A growth policy that raises on its first decision (the first adaptation epoch, 4 here) while ``failing``."""

    failing = True

    def decide(self, obs):
        if self.failing:
            raise RuntimeError("no decision")
        return []


class BrokenPolicy:
    @kaslite.hookimpl
    def kaslite_controllers(self):
        return [ControllerSpec("broken", lambda config: NoDecision())]


@pytest.mark.parametrize("stop", ["interrupt", "error"])
def test_a_stopped_run_is_killed_or_failed_keeps_its_epochs_and_resumes_the_same_mlflow_run(store, stop, monkeypatch):
    use_tiny_data()
    settings = {"tracking_uri": store, "register": False}
    config = tiny_config()
    interrupt = InterruptAt(3)
    if stop == "interrupt":
        register_tracker("stop", interrupt)
        trackers, raised = ["json", "stop", "mlflow"], KeyboardInterrupt
    else:
        kaslite.get_plugin_manager().register(BrokenPolicy(), name="broken")
        config = attrs.evolve(config, controller=attrs.evolve(config.controller, name="broken"))
        trackers, raised = ["json", "mlflow"], GrowthPolicyError
    with pytest.raises(RunStopped) as stopped_by:
        run_experiment(config, "out", "stopped", trackers, quiet=True, tracker_settings=settings)
    assert isinstance(stopped_by.value.__cause__, raised)
    client = MlflowClient(tracking_uri=store)
    (stopped,) = kaslite_runs(client)
    expected = (
        ("KILLED", "interrupted", [1, 2])
        if stop == "interrupt"
        else (
            "FAILED",
            "GrowthPolicyError: growth policy 'broken' (plugin broken) raised at epoch 4: RuntimeError: no decision",
            [1, 2, 3, 4],
        )
    )
    logged = [step for step, _ in metric_history(client, stopped.info.run_id, "val_acc")]
    assert (stopped.info.status, stopped.data.tags["kaslite.stopped"], logged) == expected
    if stop == "interrupt":  # what the console's last line shows
        assert interrupt.places == (f"MLflow run {stopped.info.run_id} in experiment 'kaslite' ({store}, KILLED)",)

    if stop == "error":
        monkeypatch.setattr(NoDecision, "failing", False)  # fixed, and resumed
    resume_experiment("out/stopped", ["json", "mlflow"], quiet=True, tracker_settings=settings)
    (run,) = kaslite_runs(client)
    assert (run.info.run_id, run.info.status) == (stopped.info.run_id, "FINISHED")
    assert "kaslite.stopped" not in run.data.tags
    assert [step for step, _ in metric_history(client, run.info.run_id, "val_acc")] == list(range(1, 10))


def test_a_store_failing_mid_run_costs_one_warning(store, caplog, monkeypatch):
    monkeypatch.setattr(mlflow_tracker, "FLUSH_EVERY_S", 0.0)  # send every epoch: the failure shows at epoch 3
    use_tiny_data()
    register_tracker("sabotage", Sabotage(3, "mlflow.db"))
    settings = {"tracking_uri": store}
    with caplog.at_level(logging.WARNING):
        summary = run_experiment(
            tiny_config(), "out", "broken", ["json", "sabotage", "mlflow"], quiet=True, tracker_settings=settings
        )
    message = (
        "tracker 'mlflow' (plugin kaslite-tracking) failed in on_epoch_end and was detached; the run goes on "
        f"(StoreError: the MLflow tracking store {store!r} failed: (sqlite3.DatabaseError) file is not a database)"
    )
    assert [(r.name, r.getMessage()) for r in caplog.records] == [("kaslite.train", f"kaslite: {message}")]
    run_dir = summary.run_dir
    warnings = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    warnings = [e for e in warnings if e["event"] == "warning" and e["kind"] == "tracker"]
    assert warnings == [
        {"event": "warning", "epoch": 3, "kind": "tracker", "message": message, "seed_id": None, "value": None}
    ]
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == 9
    assert len(history_rows(run_dir)) == 9


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_tracking_uri_costs_one_warning(env, tmp_path):
    uri = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    args = ["run", *TINY, "--tracker", "console", "--tracker", "json", "--tracker", "mlflow", "--tracking-uri", uri]
    proc = kaslite_cli(env, *args, "--output-dir", "out", "--run-name", "offline", cwd=tmp_path)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    message = (
        "tracker 'mlflow' (plugin kaslite-tracking) failed in on_epoch_end and was detached; the run goes on "
        f"(StoreError: cannot reach the MLflow tracking store {uri!r}: [Errno 111] Connection refused)"
    )
    assert proc.stderr.splitlines() == [f"kaslite: {message}"]
    assert proc.stdout.splitlines().count(f"warning: {message}") == 1
    assert proc.stdout.splitlines()[-1].startswith("offline: val_acc ")
    run_dir = tmp_path / "out" / "offline"
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoint.pt", "config.yaml", "events.jsonl", "history.csv", "metrics.json", "model.pt", "timing.json",
    ]  # fmt: skip
    assert not (tmp_path / "mlflow.db").exists()
    assert elapsed < 60  # no minutes of HTTP retries


def test_the_fluent_tracking_uri_is_put_back_as_it_was(monkeypatch, tmp_path):
    """Logging the model points MLflow's process-wide URI at the run's store, and leaves it as it found it."""
    import mlflow

    from kaslite_tracking.store import TRACKING_URI_ENV, fluent_tracking_uri

    store = f"sqlite:///{tmp_path / 'run.db'}"
    monkeypatch.delenv(TRACKING_URI_ENV, raising=False)
    with fluent_tracking_uri(store):
        assert mlflow.get_tracking_uri() == store
    assert not mlflow.is_tracking_uri_set() and TRACKING_URI_ENV not in os.environ  # nothing was set

    monkeypatch.setenv(TRACKING_URI_ENV, "sqlite:///from-env.db")
    with fluent_tracking_uri(store):
        assert mlflow.get_tracking_uri() == store
    monkeypatch.setenv(TRACKING_URI_ENV, "sqlite:///changed.db")  # still the environment's to decide
    assert mlflow.get_tracking_uri() == "sqlite:///changed.db"

    mlflow.set_tracking_uri("sqlite:///pinned.db")  # a user's own choice stays
    try:
        with fluent_tracking_uri(store):
            assert mlflow.get_tracking_uri() == store
        assert mlflow.get_tracking_uri() == "sqlite:///pinned.db"
    finally:
        mlflow.set_tracking_uri(None)


def test_the_last_lines_say_where_the_run_was_tracked(store):
    use_tiny_data()
    result = invoke(
        "run", *TINY, "--output-dir", "out", "--run-name", "where", "--tracking-uri", store,
        "--register-threshold", "0", "--staging-threshold", "0",
        "--tracker", "console", "--tracker", "tensorboard", "--tracker", "mlflow",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (run,) = kaslite_runs(MlflowClient(tracking_uri=store))
    *_, summary, tracked = result.stdout.splitlines()
    assert summary.startswith("where: val_acc ")
    assert tracked == (
        f"tracked: TensorBoard {Path('runs', 'where')}; MLflow run {run.info.run_id} in experiment 'kaslite' "
        f"({store}); registered as models:/kaslite/1, alias staging"
    )


def test_a_sweep_registers_no_trial_and_only_its_best_when_asked(store, tmp_path):
    use_tiny_data()
    (tmp_path / "lrs.yaml").write_text("lr: [0.003, 0.03, 0.3]\n")
    flags = [*TINY, "--tracker", "mlflow", "--tracking-uri", store, "--experiment", "sweeps"]
    flags += ["--register-threshold", "0", "--staging-threshold", "0"]  # every trial would qualify
    client = MlflowClient(tracking_uri=store, registry_uri=store)

    plain = invoke("sweep", str(tmp_path / "lrs.yaml"), *flags, "--output-dir", "plain")
    assert plain.exit_code == 0, plain.output
    assert client.search_model_versions("name = 'kaslite'") == []

    asked = invoke("sweep", str(tmp_path / "lrs.yaml"), *flags, "--output-dir", "asked", "--register-best")
    assert asked.exit_code == 0, asked.output
    summary = json.loads(Path("asked/sweep_summary.json").read_text())
    rows = [row for row in summary["trials"] if row["status"] == "completed"]
    best = max(rows, key=lambda row: (row["metrics"]["val_acc"], -row["run_id"]))
    (version,) = client.search_model_versions("name = 'kaslite'")
    run = client.get_run(version.run_id)
    assert run.data.tags["kaslite.run_name"] == best["run_slug"]
    assert run.data.tags["kaslite.sweep_id"] == summary["sweep_id"]
    assert client.get_registered_model("kaslite").aliases == {"staging": 1}
    parent = sweep_parent(client, summary["sweep_id"])
    assert (parent.data.tags["kaslite.registered_version"], parent.data.tags["kaslite.best_trial_run_id"]) == (
        "1",
        run.info.run_id,
    )
    line = f"kaslite sweep: registered the best trial {best['run_slug']} (val_acc {best['metrics']['val_acc']:.4f}) "
    assert f"{line}as models:/kaslite/1, alias staging" in asked.stdout

    # The same sweep again (its study is done): its end is heard again, and nothing more is registered.
    again = invoke("sweep", str(tmp_path / "lrs.yaml"), *flags, "--output-dir", "asked", "--register-best")
    assert again.exit_code == 0, again.output
    assert len(client.search_model_versions("name = 'kaslite'")) == 1
    # A launcher that died between registering and tagging the parent: the version is found, not made twice.
    client.delete_tag(parent.info.run_id, "kaslite.registered_version")
    crashed = invoke("sweep", str(tmp_path / "lrs.yaml"), *flags, "--output-dir", "asked", "--register-best")
    assert crashed.exit_code == 0, crashed.output
    assert len(client.search_model_versions("name = 'kaslite'")) == 1


def test_a_val_acc_that_is_not_a_number_is_never_registered():
    options = MlflowOptions(register_threshold=0.0)
    unregistered = {"model_id": "m", "run_id": "r", "problem": "p", "seeds_activated": 0}
    assert register_model(None, "sqlite:///unused.db", options, val_acc=math.nan, **unregistered) is None


class InterruptAtEnd(Tracker):
    """Ctrl-C while the run is being ended, after the MLflow tracker has finished and registered it."""

    def on_run_end(self, summary):
        raise KeyboardInterrupt


def test_a_stop_after_the_mlflow_run_ended_leaves_it_finished_and_registered(store):
    use_tiny_data()
    register_tracker("late-stop", InterruptAtEnd())
    config = tiny_config()
    with pytest.raises(RunStopped):
        run_experiment(config, "out", "late", ["json", "mlflow", "late-stop"], quiet=True,
                       tracker_settings={"tracking_uri": store, "register_threshold": 0.0})  # fmt: skip
    client = MlflowClient(tracking_uri=store)
    (run,) = kaslite_runs(client)
    assert run.info.status == "FINISHED" and "kaslite.stopped" not in run.data.tags
    assert [v.run_id for v in client.search_model_versions("name = 'kaslite'")] == [run.info.run_id]


def test_an_expand_run_logs_each_candidates_score_and_what_grew_to_mlflow_and_tensorboard(
    tmp_path, store_template, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # the store's artifacts go beside it
    uri = copy_store(store_template, tmp_path)
    # Every candidate clears threshold 0, so the policy grows one whenever the loss stalls for an epoch.
    policy = {"name": "expand", "patience": 1, "delta": 1.0, "options": {"threshold": 0.0}}
    config = attrs.evolve(tiny_config(), controller=build_config({"controller": policy}).controller)
    use_tiny_data()
    settings = {"tracking_uri": uri}
    run_experiment(
        config, tmp_path / "results", "expand", ["json", "tensorboard", "mlflow"], quiet=True, tracker_settings=settings
    )
    decisions = [
        json.loads(line)
        for line in (tmp_path / "results" / "expand" / "events.jsonl").read_text().splitlines()
        if json.loads(line)["event"] == "growth_decision"
    ]
    assert decisions, "the expand policy measured no scores"
    client = MlflowClient(tracking_uri=uri)
    (run,) = kaslite_runs(client)
    for candidate in decisions[0]["candidates"]:
        history = metric_history(client, run.info.run_id, f"expansion_score.{candidate['seed_id']}")
        assert (decisions[0]["epoch"], pytest.approx(candidate["score"])) in history
    grown = {seed_id: str(d["epoch"]) for d in decisions for seed_id in d["chosen"]}
    assert grown, "nothing grew"
    tags = run.data.tags
    assert {key: tags[key] for key in tags if key.startswith("kaslite.growth.")} == {
        f"kaslite.growth.{seed_id}": epoch for seed_id, epoch in grown.items()
    }
    # TensorBoard: the same scores as scalars, and one line of text per decision.
    events = read_events(tmp_path / "runs" / "expand")
    first = decisions[0]["candidates"][0]
    logged = [(e.step, e.value) for e in events.Scalars(f"seed/{first['seed_id']}/expansion_score")]
    assert (decisions[0]["epoch"], pytest.approx(first["score"], rel=1e-6)) in logged
    lines = texts(events, "growth/decisions")
    assert [step for step, _ in lines] == [d["epoch"] for d in decisions]
    assert lines[0][1].startswith(f"epoch {decisions[0]['epoch']}: grew ")


def test_two_runs_started_at_once_on_a_fresh_store_both_finish(env, tmp_path):
    # Each process creates the new mlflow.db's schema on first use; without the lock around it, one of
    # them loses the race on MLflow's migration and its tracker is detached mid-run.
    args = [sys.executable, "-m", "kaslite", "run", *TINY, "--tracker", "json", "--tracker", "mlflow", "--no-register"]
    procs = [
        subprocess.Popen([*args, "--run-name", name], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
        for name in ("first", "second")
    ]
    errors = [proc.communicate(timeout=300)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], errors
    assert errors == ["", ""]  # no tracker detached
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = kaslite_runs(client)
    assert sorted((run.info.run_name, run.info.status) for run in runs) == [
        ("first", "FINISHED"),
        ("second", "FINISHED"),
    ]
