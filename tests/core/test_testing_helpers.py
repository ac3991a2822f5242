"""kaslite.testing's helpers for plugin authors: observations for a policy, a scripted run for a tracker."""

import json

import pytest

import kaslite
from kaslite.config import build_config
from kaslite.control import Controller, Germinate, Observation
from kaslite.errors import ConfigError
from kaslite.hookspecs import ControllerSpec
from kaslite.nn import SeedState
from kaslite.testing import drive_tracker, observation, scripted_run, seed_view
from kaslite.testing.policies import SEED_STATES
from kaslite.train import Trainer
from kaslite.train.tracker import Tracker
from kaslite.train.trackers.files import RunFilesTracker


def test_seed_states_are_the_networks():
    assert tuple(state.value for state in SeedState) == SEED_STATES


def test_observation_builds_the_history_a_policy_sees():
    obs = observation(val_acc=[0.5, 0.6, 0.7], warm_up_epochs=1, seeds={"seed1_1": "active", "seed2_1": "dormant"})
    assert (obs.epoch, obs.phase) == (3, 2)
    assert [(m.epoch, m.phase, m.val_acc, m.val_loss) for m in obs.history] == [
        (1, 1, 0.5, 1.0),
        (2, 2, 0.6, 1.0),
        (3, 2, 0.7, 1.0),
    ]
    assert obs.latest.val_acc == 0.7
    assert [s.seed_id for s in obs.in_state("dormant")] == ["seed2_1"]
    assert obs.seeds[0] == seed_view("seed1_1", "active") and obs.seeds[0].alpha == 1.0 and obs.seeds[1].layer == 2


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: seed_view("seed1_1", "growing"), "invalid seed state 'growing' for seed1_1: must be one of "
         "dormant, training, blending, active, culled"),
        (
            lambda: seed_view("extra"),
            "invalid seed id 'extra': expected seed{layer}_{j} or width{layer}_{j}, or pass layer=",
        ),
        (lambda: observation(), "an observation needs at least one epoch: give val_acc, val_loss or train_loss values"),
        (lambda: observation(val_acc=[0.5], val_loss=[1.0, 0.9]),
         "every series needs one value per epoch (2); val_acc differ"),
    ],
)  # fmt: skip
def test_bad_observations_are_one_line_errors(call, message):
    with pytest.raises(ConfigError) as info:
        call()
    assert str(info.value) == message


class FirstDormant(Controller):
    """Germinates the first dormant seed once, right after the first adaptation epoch; records what it saw."""

    def __init__(self) -> None:
        self.seen: list[Observation] = []

    def decide(self, obs: Observation) -> list[Germinate]:
        self.seen.append(obs)
        return [Germinate("seed1_1")] if len(self.seen) == 1 else []


class PolicyPlugin:
    """Registers ``policy`` as the controller ``first-dormant``."""

    def __init__(self, policy: Controller) -> None:
        self.policy = policy

    @kaslite.hookimpl
    def kaslite_controllers(self) -> list[ControllerSpec]:
        return [ControllerSpec("first-dormant", lambda config: self.policy)]


def test_a_policy_tested_with_observation_behaves_the_same_in_a_real_run(tiny_data, tmp_path):
    """The history a real run hands a policy includes the warm-up epochs, as observation() and the reference say."""
    policy = FirstDormant()
    assert policy.decide(observation(val_acc=[0.5, 0.6, 0.6], warm_up_epochs=2)) == [Germinate("seed1_1")]

    policy = FirstDormant()
    kaslite.get_plugin_manager().register(PolicyPlugin(policy), name="first-dormant")
    config = build_config(
        {
            "data": {"problem": "xor", "params": {"n_samples": 64}},
            "model": {"hidden_dim": 4, "blueprint_options": {"hidden": 4}},
            "controller": {"name": "first-dormant"},
            "train": {"warm_up_epochs": 2, "adaptation_epochs": 2, "batch_size": 32},
        }
    )
    Trainer(config, tmp_path).run()
    first = policy.seen[0]
    assert [(m.epoch, m.phase) for m in first.history] == [(1, 1), (2, 1), (3, 2)]
    assert (first.epoch, first.phase) == (3, 2)


class Recorder(Tracker):
    def __init__(self) -> None:
        self.calls: list[str] = []
        for method in (
            "on_run_start", "on_epoch_end", "on_phase_change", "on_seed_transition", "on_warning",
            "on_model_ready", "on_run_end", "close",
        ):  # fmt: skip
            setattr(self, method, lambda event=None, method=method: self.calls.append(method))


def test_drive_tracker_sends_a_scripted_run_in_order_then_closes(tmp_path):
    run = scripted_run(tmp_path, warm_up_epochs=1, adaptation_epochs=3)
    recorder = Recorder()
    drive_tracker(recorder, run)
    assert recorder.calls == [*run.methods(), "close"]
    assert run.methods() == [
        "on_run_start",
        "on_epoch_end",
        "on_phase_change",
        "on_epoch_end",
        "on_seed_transition",  # germinated after the first adaptation epoch's record
        "on_seed_transition",  # blending at the end of the next epoch, before its record
        "on_epoch_end",
        "on_seed_transition",  # active during the third epoch, which warns about drift
        "on_warning",
        "on_epoch_end",
        "on_model_ready",
        "on_run_end",
    ]
    assert run.context.total_epochs == 4 and run.context.seed_ids == ("seed1_1", "seed2_1")


def test_the_run_files_tracker_through_a_scripted_run(tmp_path):
    run = scripted_run(tmp_path)
    drive_tracker(RunFilesTracker(tmp_path), run)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["epochs"] == 6 and metrics["seeds_activated"] == 1 and metrics["phase1_best_acc"] is not None
    events = [json.loads(line)["event"] for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert events == ["phase_change", "seed_transition", "seed_transition", "seed_transition", "warning"]
    assert len((tmp_path / "history.csv").read_text().splitlines()) == 7


def test_drive_tracker_lets_a_failure_through_and_still_closes(tmp_path):
    class Broken(Recorder):
        def __init__(self) -> None:
            super().__init__()

            def boom(record):
                raise ValueError("bad record")

            self.on_epoch_end = boom

    tracker = Broken()
    with pytest.raises(ValueError, match="bad record"):
        drive_tracker(tracker, scripted_run(tmp_path))
    assert tracker.calls == ["on_run_start", "close"]


def test_a_scripted_run_follows_a_real_runs_order(tiny_data, tmp_path):
    """Same shape as scripted_run: germinate after the first adaptation epoch, blend, activate; same order."""
    kaslite.get_plugin_manager().register(PolicyPlugin(FirstDormant()), name="first-dormant")
    config = build_config(
        {
            "data": {"problem": "xor", "params": {"n_samples": 64}},
            "model": {"hidden_dim": 4, "blueprint_options": {"hidden": 4}},
            "controller": {"name": "first-dormant"},
            "seeds": {"progress_thresh": 0.0, "blend_steps": 1},
            "train": {"warm_up_epochs": 1, "adaptation_epochs": 3, "batch_size": 64},
        }
    )
    recorder = Recorder()
    Trainer(config, tmp_path, {"recorder": recorder}).run()
    scripted = [*scripted_run(tmp_path, warm_up_epochs=1, adaptation_epochs=3).methods(), "close"]
    # Whether a real seed drifts past drift_warn depends on training; the script always warns once.
    assert [call for call in recorder.calls if call != "on_warning"] == [c for c in scripted if c != "on_warning"]
