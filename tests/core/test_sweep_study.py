"""The sweep's study: queued slots, retries of dead workers, stale heartbeats, rows, pruning, in one process."""

import importlib
import json
import math
import os
from pathlib import Path

import attrs
import pytest

import kaslite
from kaslite.plugins import TRACKER, get_plugin_manager
from kaslite.sweep.grid import grid_points, run_slug
from kaslite.sweep.spec import Knob, parse_spec
from kaslite.sweep.study import ERROR, HEARTBEAT, METRICS, RUN_SLUG, SLOT, attempt, open_study
from kaslite.sweep.summary import best_row, closing_line, slot_rows

try:
    optuna = importlib.import_module("optuna")
except ImportError:  # CI installs kaslite-core[sweep]; there a missing Optuna is a failure, not a skip
    if os.environ.get("CI"):
        raise
    pytest.skip("Optuna is not installed (pip install 'kaslite-core[sweep]')", allow_module_level=True)

from optuna.trial import TrialState

from kaslite.sweep.storage import open_storage
from kaslite.sweep.worker import StaleWatch, WorkerJob, give_back, work

KNOBS = {
    "lr": Knob(("train", "lr"), float),
    "num_layers": Knob(("model", "num_layers"), int),
    "hidden_dim": Knob(("model", "hidden_dim"), int),
    "problem": Knob(("data", "problem"), str),
    "n_samples": Knob(("data", "params", "n_samples"), int),
}
TINY = {
    "data": {"problem": "xor", "params": {"n_samples": 64}},
    "model": {"hidden_dim": 4, "blueprint_options": {"hidden": 8}},
    "controller": {"name": "periodic", "period": 1},
    "seeds": {"blend_steps": 2, "progress_thresh": 0.0},
    "train": {"warm_up_epochs": 2, "adaptation_epochs": 2, "batch_size": 16},
}


def grid_spec(**extra):
    return parse_spec({"num_layers": [1, 2], "lr": [0.01, 0.02], **extra}, KNOBS, "grid.yaml")


def journal_study(tmp_path: Path, spec, name: str = "s"):
    storage = open_storage(str(tmp_path / "study.journal"))
    return open_study(storage, name, spec, mark="m", sweep_id="s-1", folder="f")


def test_creating_the_study_queues_every_grid_point_once(tmp_path):
    spec = grid_spec()
    study, info = journal_study(tmp_path, spec)
    assert info.created and info.sweep_id == "s-1"
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs[SLOT] for t in waiting] == [0, 1, 2, 3]
    assert [t.system_attrs["fixed_params"] for t in waiting] == grid_points(spec)
    assert [row.status for row in slot_rows(study.trials, spec)] == ["pending"] * 4

    again, joined = journal_study(tmp_path, spec)  # the same command started again joins
    assert not joined.created and joined.sweep_id == "s-1" and len(again.trials) == 4


def test_joining_with_another_sweep_is_refused(tmp_path):
    journal_study(tmp_path, grid_spec())
    storage = open_storage(str(tmp_path / "study.journal"))
    with pytest.raises(Exception, match="belongs to a different sweep"):
        open_study(storage, "s", grid_spec(), mark="other", sweep_id="x", folder="f")


def test_a_dead_workers_trial_is_queued_again_exactly_once(tmp_path):
    spec = grid_spec()
    study, _ = journal_study(tmp_path, spec)
    trial = study.ask()
    assert trial.user_attrs[SLOT] == 0
    lost = study.trials[trial.number]
    # Two workers notice the same stale trial: only the one whose state change lands queues a retry.
    other = optuna.load_study(study_name="s", storage=open_storage(str(tmp_path / "study.journal")))
    assert give_back(study, lost, max_attempts=3) is True
    assert give_back(other, lost, max_attempts=3) is False
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [(t.user_attrs[SLOT], attempt(t)) for t in waiting] == [(1, 1), (2, 1), (3, 1), (0, 2)]
    assert waiting[-1].system_attrs["fixed_params"] == grid_points(spec)[0]
    assert slot_rows(study.trials, spec)[0].status == "pending"


def test_a_slot_whose_worker_keeps_dying_fails_after_max_attempts(tmp_path):
    spec = parse_spec({"lr": [0.01, 0.02]}, KNOBS, "two.yaml")
    study, _ = journal_study(tmp_path, spec)
    first = study.ask()
    assert give_back(study, study.trials[first.number], max_attempts=3)
    study.tell(study.ask(), 0.5)  # slot 1 completes; the retry of slot 0 queued behind it
    for number in (2, 3):
        retry = study.trials[study.ask().number]
        assert (retry.user_attrs[SLOT], attempt(retry)) == (0, number)
        assert give_back(study, retry, max_attempts=3)
    rows = slot_rows(study.trials, spec, max_attempts=3)
    assert (rows[0].status, rows[0].error) == ("failed", "its worker stopped 3 times before the trial finished")
    assert rows[1].status == "completed"
    assert study.get_trials(states=(TrialState.WAITING,)) == []  # no fourth attempt


def test_stale_watch_judges_heartbeats_on_its_own_clock():
    def running(number: int, beat: int | None):
        trial = optuna.trial.create_trial(state=TrialState.RUNNING, user_attrs={SLOT: 0, HEARTBEAT: beat})
        trial.number = number
        return trial

    watch = StaleWatch(grace_s=10)
    assert watch.stale([running(1, 1), running(2, 1)], now=100.0) == []
    assert watch.stale([running(1, 1), running(2, 2)], now=105.0) == []
    stale = watch.stale([running(1, 1), running(2, 2)], now=110.5)
    assert [t.number for t in stale] == [1]  # trial 2 beat at 105, so it has until 115
    assert [t.number for t in watch.stale([running(2, 2)], now=115.5)] == [2]
    assert watch.stale([running(2, 3)], now=200.0) == []  # a beat resets the clock


def _finish(study, state, metrics=None, error=None) -> None:
    """Take the next queued trial and end it as a worker would."""
    trial = study.ask()
    slot = trial.user_attrs[SLOT]
    trial.set_user_attr(METRICS, metrics or {})
    trial.set_user_attr(RUN_SLUG, run_slug(slot, grid_points(STUDY_SPEC)[slot]))
    if error:
        trial.set_user_attr(ERROR, error)
    study.tell(trial, (metrics or {}).get("val_acc") if state == TrialState.COMPLETE else None, state=state)


STUDY_SPEC = grid_spec()


def test_rows_show_the_attempt_that_counts_and_the_best_trial(tmp_path):
    study, _ = journal_study(tmp_path, STUDY_SPEC)
    _finish(study, TrialState.COMPLETE, {"val_acc": 0.75, "best_acc": 0.8, "wall_time_s": 1.5})
    _finish(study, TrialState.FAIL, {}, error="invalid model.hidden_dim = 0: must be an integer >= 1")
    _finish(study, TrialState.COMPLETE, {"val_acc": 0.9, "best_acc": 0.9, "wall_time_s": 2.0})
    rows = slot_rows(study.trials, STUDY_SPEC)
    assert [(r.run_id, r.status) for r in rows] == [(1, "completed"), (2, "failed"), (3, "completed"), (4, "pending")]
    assert rows[1].error == "invalid model.hidden_dim = 0: must be an integer >= 1"
    assert rows[2].params == {"num_layers": 2, "lr": 0.01} and rows[2].wall_time_s == 2.0
    assert best_row(rows, STUDY_SPEC) is rows[2]
    slug = run_slug(2, {"num_layers": 2, "lr": 0.01})
    assert closing_line(rows, STUDY_SPEC, Path("out")) == (
        f"grid: best trial: {slug} val_acc 0.9000 (num_layers=2, lr=0.01); "
        f"4 trials: 2 completed, 1 failed, 1 pending -> {Path('out') / 'sweep_summary.csv'}"
    )
    assert best_row(rows, grid_spec(direction="minimize")) is rows[0]


def test_ties_go_to_the_lower_run_id(tmp_path):
    study, _ = journal_study(tmp_path, STUDY_SPEC)
    _finish(study, TrialState.COMPLETE, {"val_acc": 0.25})
    _finish(study, TrialState.COMPLETE, {"val_acc": 0.5})
    _finish(study, TrialState.COMPLETE, {"val_acc": 0.5})
    assert best_row(slot_rows(study.trials, STUDY_SPEC), STUDY_SPEC).run_id == 2


def test_a_seeded_bayesian_sweep_draws_each_slot_from_its_own_stream(tmp_path):
    from kaslite.sweep.bayes import make_sampler, suggest

    text = {"method": "bayesian", "trials": 2, "sampler_seed": 5, "parameters": {"lr": {"low": 0.001, "high": 0.1}}}
    spec = parse_spec(text, KNOBS, "tpe.yaml")
    draws = []
    for name in ("first", "again"):
        study, _ = open_study(open_storage(str(tmp_path / f"{name}.journal")), "s", spec, "m", "id", "f")
        for _ in range(2):
            trial = study.ask()
            study.sampler = make_sampler(spec, trial.user_attrs[SLOT])  # as the worker does for a seeded sweep
            draws.append(suggest(trial, spec)["lr"])
            study.tell(trial, 0.5)
    assert draws[:2] == draws[2:]  # the same seed gives the same sweep
    assert draws[0] != draws[1]  # and two slots never share a stream, whichever worker runs them


class FakeTrial:
    """Records reports; says prune from epoch ``prune_at`` on."""

    def __init__(self, prune_at: int) -> None:
        self.prune_at = prune_at
        self.reports: list[tuple[float, int]] = []

    def report(self, value: float, step: int) -> None:
        self.reports.append((value, step))

    def should_prune(self) -> bool:
        return self.reports[-1][1] >= self.prune_at


def test_a_pruned_trial_stops_training_through_the_run_trackers(tiny_data, tmp_path):
    from kaslite.config import build_config
    from kaslite.sweep.watch import TrialStopped, TrialWatch, watching
    from kaslite.train.runner import run_experiment

    trial = FakeTrial(prune_at=2)
    watch = TrialWatch(trial, "val_acc")  # type: ignore[arg-type]
    with watching(watch) as name, pytest.raises(TrialStopped) as stopped:
        run_experiment(build_config(TINY), tmp_path, "pruned", trackers=["json", name], quiet=True)
    assert stopped.value.pruned and stopped.value.reason.startswith("pruned at epoch 2: val_acc ")
    assert [step for _, step in trial.reports] == [1, 2]
    history = (tmp_path / "pruned" / "history.csv").read_text().splitlines()
    assert len(history) == 3  # the header and two epochs: training stopped there
    assert not (tmp_path / "pruned" / "metrics.json").exists()
    assert "kaslite-sweep" not in get_plugin_manager().registrations(TRACKER)  # registered for one trial only


def test_a_diverged_loss_stops_the_trial_without_pruning(tiny_data, tmp_path):
    from kaslite.config import build_config
    from kaslite.sweep.watch import TrialStopped, TrialWatch, watching
    from kaslite.train.runner import run_experiment

    config = build_config(TINY, {"train": {"lr": 1e30}})
    with watching(TrialWatch(None, "val_acc")) as name, pytest.raises(TrialStopped) as stopped:
        run_experiment(config, tmp_path, "nan", trackers=["json", name], quiet=True)
    assert not stopped.value.pruned
    assert stopped.value.reason == "train_loss is nan at epoch 1 (training diverged)"


def test_an_in_process_worker_runs_every_slot_and_records_metrics(tiny_data, tmp_path):
    spec = parse_spec({"num_layers": [1, 2], "hidden_dim": [4, 0]}, KNOBS, "mixed.yaml")
    study, info = journal_study(tmp_path, spec)
    job = WorkerJob(
        storage=str(tmp_path / "study.journal"),
        study_name="s",
        spec=spec,
        base_layers=(TINY,),
        trackers=("json",),
        tracker_settings={},
        output_dir=tmp_path / "runs",
        sweep_id=info.sweep_id,
    )
    assert work(job, study) == 4
    rows = slot_rows(study.trials, spec)
    assert [r.status for r in rows] == ["completed", "failed", "completed", "failed"]
    assert rows[1].error == rows[3].error == "invalid model.hidden_dim = 0: must be an integer >= 1"
    for row in rows[::2]:
        metrics = (tmp_path / "runs" / row.run_slug / "metrics.json").read_text()
        assert f'"val_acc": {row.metrics["val_acc"]}' in metrics
        assert math.isfinite(row.metrics["best_acc"])
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [rows[0].run_slug, rows[2].run_slug]


class SweepEnds:
    """A plugin that records every kaslite_sweep_end it hears."""

    def __init__(self) -> None:
        self.ends = []

    @kaslite.hookimpl
    def kaslite_sweep_end(self, sweep):
        self.ends.append(sweep)


class BrokenEnd:
    @kaslite.hookimpl
    def kaslite_sweep_end(self, sweep):
        raise RuntimeError("no dashboard today")


def test_every_plugin_hears_how_the_sweep_ended(tiny_data, tmp_path, caplog):
    from kaslite.sweep.launch import SweepPlan, run_sweep

    heard = SweepEnds()
    get_plugin_manager().register(BrokenEnd(), name="broken-end")
    get_plugin_manager().register(heard, name="sweep-ends")
    plan = SweepPlan(base_layers=(TINY,), trackers=("json",), quiet=True, live=False)
    for name, values, status in [("mixed", [0.01, 1e30], "finished"), ("diverged", [1e30, 1e31], "failed")]:
        spec = parse_spec({"lr": values}, KNOBS, f"{name}.yaml")
        result = run_sweep(spec, attrs.evolve(plan, output_dir=tmp_path / name))
        end = heard.ends[-1]
        assert (end.status, end.study, end.sweep_dir, end.trackers) == (status, name, str(result.sweep_dir), ("json",))
        assert end.slots == ({"completed": 1, "failed": 1} if status == "finished" else {"failed": 2})
        assert end.sweep_id == json.loads((result.sweep_dir / "sweep_summary.json").read_text())["sweep_id"]
    # One plugin failing is named (once per process, as every plugin failure is); the others still hear the end.
    lines = [record.getMessage() for record in caplog.records if "kaslite_sweep_end" in record.getMessage()]
    assert lines == [
        "kaslite: plugin 'broken-end' failed in kaslite_sweep_end and the rest of its extension was skipped: "
        "RuntimeError: no dashboard today"
    ]
    assert len(heard.ends) == 2
