"""The trainer: transitions preserve the function, optimizer state survives growth, runs are deterministic."""

import csv
import json

import pytest
import torch

from kaslite.config import build_config, load_yaml
from kaslite.config.resolve import resolve_params
from kaslite.train import Tracker, Trainer, run_experiment
from kaslite.train.trainer import CHECKPOINT

pytestmark = pytest.mark.usefixtures("tiny_data")


def tiny_config(**sections):
    base = {
        "data": {"problem": "xor", "params": {"n_samples": 120}},
        # Two deep seeds and a wide one (width seeds have tests of their own: test_width.py).
        "model": {
            "hidden_dim": 8,
            "num_layers": 2,
            "seeds_per_layer": 1,
            "blueprint_options": {"hidden": 16},
            "width_seeds": 0,
        },
        "seeds": {"blend_steps": 3, "progress_thresh": 0.0, "buffer_size": 64},
        "controller": {"name": "periodic", "period": 2},
        "train": {"warm_up_epochs": 3, "adaptation_epochs": 8, "batch_size": 16, "seed": 7},
    }
    return build_config(base, sections)


def transitions(events):
    return [e for e in events if e["event"] == "seed_transition"]


def test_every_transition_preserves_the_function(tmp_path):
    trainer = Trainer(tiny_config(), tmp_path)
    trainer.run()
    seen = {(e["seed_id"], e["from_state"], e["to_state"]): e["output_change"] for e in transitions(trainer.events)}
    assert set(seen) == {
        (sid, a, b)
        for sid in ("seed1_1", "seed2_1", "wide_1")
        for a, b in [("dormant", "training"), ("training", "blending"), ("blending", "active")]
    }
    for (sid, start, end), change in seen.items():
        # Identity on both sides of germination and training→blending; the same formula at α=1 for activation.
        assert change == 0.0, (sid, start, end, change)
    assert {s.state.value for s in trainer.net.seeds.values()} == {"active"}


def test_phase_two_freezes_the_hidden_trunk_only_when_asked(tmp_path):
    trainer = Trainer(tiny_config(train={"freeze_trunk": True}), tmp_path)
    trainer.run()
    net = trainer.net
    assert all(not p.requires_grad for m in net.hidden_trunk() for p in m.parameters())
    assert all(p.requires_grad for p in net.head.parameters())


def test_same_seed_same_result(tmp_path):
    first = run_experiment(tiny_config(), tmp_path / "a", "same", trackers=["json"]).metrics
    second = run_experiment(tiny_config(), tmp_path / "b", "same", trackers=["json"]).metrics
    first.pop("wall_time_s")
    second.pop("wall_time_s")
    assert first == second
    # The files a pipeline tracks are the same byte for byte; only timing.json, measured, differs.
    for name in ("metrics.json", "history.csv", "events.jsonl", "config.yaml", "model.pt"):
        assert (tmp_path / "a" / "same" / name).read_bytes() == (tmp_path / "b" / "same" / name).read_bytes(), name
    other = run_experiment(tiny_config(train={"seed": 8}), tmp_path, "c", trackers=["json"])
    assert (tmp_path / "c" / "history.csv").read_text() != (tmp_path / "a" / "same" / "history.csv").read_text()
    assert other.metrics["epochs"] == 11


def test_run_dir_files(tmp_path):
    config = tiny_config()
    summary = run_experiment(config, tmp_path, "run", trackers=["json"])
    run_dir = tmp_path / "run"
    assert sorted(p.name for p in run_dir.iterdir()) == [
        CHECKPOINT,
        "config.yaml",
        "events.jsonl",
        "history.csv",
        "metrics.json",
        "model.pt",
        "timing.json",
    ]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    timing = json.loads((run_dir / "timing.json").read_text())
    assert {**metrics, **timing} == summary.metrics and list(timing) == ["wall_time_s"]
    assert {
        "best_acc",
        "val_acc",
        "val_loss",
        "train_loss",
        "phase1_best_acc",
        "accuracy_dip",
        "recovery_time",
        "seeds_activated",
        "total_seeds",
        "params_trunk",
        "params_total",
        "epochs",
    } <= set(metrics)
    assert metrics["seeds_activated"] == metrics["total_seeds"] == 3  # two deep seeds and a wide one
    assert metrics["params_total"] > metrics["params_trunk"]
    rows = list(csv.DictReader((run_dir / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 12))
    assert list(rows[0])[:5] == ["epoch", "phase", "train_loss", "val_loss", "val_acc"]
    assert {"seed1_1_state", "seed1_1_alpha", "seed2_1_state", "seed2_1_alpha"} <= set(rows[0])
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert events[0] == {"event": "phase_change", "epoch": 4, "phase": 2, "previous": 1}
    assert len(transitions(events)) == 9
    assert build_config(load_yaml(run_dir / "config.yaml")) == resolve_params(config)


def test_fresh_run_never_overwrites_an_earlier_one(tmp_path):
    run_experiment(tiny_config(), tmp_path, "same", trackers=["json"])
    summary = run_experiment(tiny_config(), tmp_path, "same", trackers=["json"])
    assert summary.run_dir == tmp_path / "same-2"


def test_a_raising_tracker_is_detached_and_the_run_goes_on(tmp_path, caplog):
    class Flaky(Tracker):
        def __init__(self):
            self.calls = 0

        def on_epoch_end(self, record):
            self.calls += 1
            if record.epoch == 2:
                raise ConnectionError("store went away")

    class Recorder(Tracker):
        def __init__(self):
            self.warnings = []
            self.ended = False

        def on_warning(self, event):
            self.warnings.append(event)

        def on_run_end(self, summary):
            self.ended = True

    flaky, recorder = Flaky(), Recorder()
    Trainer(tiny_config(), tmp_path, {"flaky": flaky, "recorder": recorder}).run()
    assert flaky.calls == 2
    assert recorder.ended
    (warning,) = [w for w in recorder.warnings if w.kind == "tracker"]
    assert "tracker 'flaky' failed in on_epoch_end" in warning.message
    assert "ConnectionError: store went away" in warning.message
    assert caplog.text.count("tracker 'flaky' failed") == 1


def test_a_raising_tracker_stops_the_run_in_strict_mode_with_its_checkpoint_kept(tmp_path, monkeypatch):
    from kaslite.errors import KasliteError

    class Broken(Tracker):
        def on_epoch_end(self, record):
            if record.epoch == 2:
                raise ConnectionError("store went away")

    monkeypatch.setenv("KASLITE_STRICT_PLUGINS", "1")
    with pytest.raises(KasliteError, match=r"tracker 'broken' failed in on_epoch_end: ConnectionError: store went"):
        Trainer(tiny_config(), tmp_path / "run", {"broken": Broken()}).run()
    monkeypatch.delenv("KASLITE_STRICT_PLUGINS")
    resumed = Trainer(tiny_config(), tmp_path / "run").run(resume=True)  # the checkpoint was kept
    train = tiny_config().train
    assert [row["epoch"] for row in resumed.history] == list(
        range(1, train.warm_up_epochs + train.adaptation_epochs + 1)
    )


class KilledAt(Tracker):
    """Stops the run at the end of ``epoch``, before its checkpoint: the last one is the epoch before."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, record):
        if record.epoch == self.epoch:
            raise KeyboardInterrupt


def test_in_process_resume_matches_an_uninterrupted_run(tmp_path):
    whole = Trainer(tiny_config(), tmp_path / "whole")
    expected = whole.run().metrics

    with pytest.raises(KeyboardInterrupt):
        Trainer(tiny_config(), tmp_path / "split", {"kill": KilledAt(7)}).run()  # checkpoint: epoch 6 of 11
    resumed = Trainer(tiny_config(), tmp_path / "split").run(resume=True).metrics
    for metrics in (expected, resumed):
        metrics.pop("wall_time_s")
    assert resumed == expected


def test_checkpoints_are_written_every_few_seconds_and_a_killed_run_replays_what_it_lost(tmp_path, monkeypatch):
    import kaslite.train.trainer as trainer_module

    written = []
    save = torch.save

    def recording(payload, path):
        if str(path).endswith(CHECKPOINT + ".tmp"):
            written.append(int(payload["grower"]["epoch"]))
        return save(payload, path)

    monkeypatch.setattr(torch, "save", recording)
    expected = Trainer(tiny_config(), tmp_path / "whole").run().metrics
    assert written == [1, 11]  # fast epochs: the first and the last, not one a epoch

    # A process killed at epoch 7 runs no except clause: nothing is written as it dies.
    written.clear()
    monkeypatch.setattr(Trainer, "_write_last_epoch", lambda self: None)
    with pytest.raises(KeyboardInterrupt):
        Trainer(tiny_config(), tmp_path / "killed", {"kill": KilledAt(7)}).run()
    assert written == [1]
    monkeypatch.undo()
    resumed = Trainer(tiny_config(), tmp_path / "killed").run(resume=True)  # epochs 2-6 again, to the same values
    assert [row["epoch"] for row in resumed.history] == list(range(1, 12))
    for metrics in (expected, resumed.metrics):
        metrics.pop("wall_time_s")
    assert resumed.metrics == expected

    # Epochs longer than the interval: every one is written.
    monkeypatch.setattr(trainer_module, "CHECKPOINT_EVERY_S", 0.0)
    monkeypatch.setattr(torch, "save", recording)
    written.clear()
    Trainer(tiny_config(), tmp_path / "slow").run()
    assert written == list(range(1, 12))


def test_a_drift_warning_needs_the_val_loss_to_have_risen_since_the_blend_began():
    from kaslite.config import SeedConfig
    from kaslite.nn import MorphogeneticNet
    from kaslite.train import Grower

    torch.manual_seed(0)
    config = SeedConfig(blend_steps=1, progress_thresh=0.0, drift_warn=0.1)
    net = MorphogeneticNet(2, 8, 1, 1, 2, blueprint="residual", blueprint_options={"hidden": 8}, seed_config=config)
    warnings = []

    class Warnings(Tracker):
        def on_warning(self, event):
            warnings.append(event)

    grower = Grower(net, "periodic", period=1, probe=torch.randn(32, 2), trackers=[Warnings()])
    grower.epoch_end(val_loss=1.0)  # germinates seed1_1
    grower.epoch_end(val_loss=1.0)  # it starts blending at val loss 1.0
    grower.step()  # α reaches 1: active
    seed = net.seeds["seed1_1"]
    with torch.no_grad():
        seed.child.outer.weight.normal_()  # what training might make of it
    grower.epoch_end(val_loss=0.9)
    assert seed.drift > 0.1 and warnings == []  # a large share of the output, and the loss fell: growth
    grower.epoch_end(val_loss=1.05)
    assert warnings == []  # 5% above: noise, not a reason to act
    grower.epoch_end(val_loss=1.2)
    grower.epoch_end(val_loss=1.3)  # still above: warned once per crossing
    (warning,) = warnings
    assert (warning.kind, warning.seed_id, warning.value) == ("drift", "seed1_1", seed.drift)
    assert warning.message.startswith(f"seed1_1 drift {seed.drift:.3f} is above drift_warn 0.1: it makes up ")
    assert "val loss rose from 1.0000 to 1.2000 since it began blending" in warning.message


def test_an_active_seeds_drift_is_measured_again_every_few_epochs_while_the_loss_is_up():
    from kaslite.config import SeedConfig
    from kaslite.nn import MorphogeneticNet
    from kaslite.train import Grower
    from kaslite.train.grower import DRIFT_EVERY

    torch.manual_seed(0)
    config = SeedConfig(blend_steps=1, progress_thresh=0.0)
    net = MorphogeneticNet(2, 8, 1, 1, 2, blueprint="residual", blueprint_options={"hidden": 8}, seed_config=config)
    grower = Grower(net, "periodic", period=1, probe=torch.randn(32, 2))
    grower.epoch_end(val_loss=1.0)  # germinates seed1_1
    grower.epoch_end(val_loss=1.0)  # it starts blending at val loss 1.0
    grower.step()  # active
    seed = net.seeds["seed1_1"]
    with torch.no_grad():
        seed.child.outer.weight.normal_()
    grower.epoch_end(val_loss=0.9)  # epoch 3: first seen active, measured
    first = seed.drift
    assert first > 0
    with torch.no_grad():
        seed.child.outer.weight.mul_(10)
    while grower.epoch + 1 < DRIFT_EVERY:
        grower.epoch_end(val_loss=2.0)  # the loss is up, but not a measuring epoch: the last figure stays
        assert seed.drift == first
    grower.epoch_end(val_loss=2.0)
    assert grower.epoch == DRIFT_EVERY and seed.drift > first
    with torch.no_grad():
        seed.child.outer.weight.mul_(10)
    measured = seed.drift
    while grower.epoch < 2 * DRIFT_EVERY:
        grower.epoch_end(val_loss=0.5)  # the loss is down: nothing to warn about, nothing measured
    assert seed.drift == measured


def test_a_start_failure_is_told_to_the_others_only_after_they_started(tmp_path):
    calls = []

    class BrokenAtStart(Tracker):
        def on_run_start(self, run):
            raise OSError("port taken")

    class Listener(Tracker):
        def on_run_start(self, run):
            calls.append("start")

        def on_warning(self, event):
            calls.append(event.message)

    Trainer(tiny_config(), tmp_path, {"broken": BrokenAtStart(), "listener": Listener()}).run()
    assert calls[0] == "start"
    assert calls[1].startswith("tracker 'broken' failed in on_run_start and was detached")


def test_by_default_the_whole_network_keeps_learning_in_phase_two(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "set_num_threads", lambda threads: None)  # _setup alone would keep its count
    trainer = Trainer(tiny_config(), tmp_path)
    trainer._setup()
    first = [p.detach().clone() for p in trainer.net.hidden_trunk()[0].parameters()]
    trainer.run()
    assert all(p.requires_grad for p in trainer.net.parameters())
    assert not all(torch.equal(a, b) for a, b in zip(first, trainer.net.hidden_trunk()[0].parameters(), strict=True))


def test_freezing_a_module_that_cannot_say_what_to_freeze_is_a_clear_error(tmp_path):
    from kaslite.errors import ConfigError

    from .user_model import UserNet

    with pytest.raises(ConfigError, match=r"train\.freeze_trunk is true but UserNet has no hidden_trunk"):
        Trainer(tiny_config(train={"freeze_trunk": True}), model=UserNet()).run()


def test_a_run_resolves_its_plugins_parameters_and_its_device_once(tmp_path, monkeypatch):
    import kaslite.train.runner as runner
    import kaslite.train.trainer as trainer

    calls = {"resolve_params": 0, "resolve_device": 0}

    def counted(module, name):
        original = getattr(module, name)

        def count(*args, **kwargs):
            calls[name] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, count)

    counted(runner, "resolve_params")
    counted(runner, "resolve_device")
    counted(trainer, "resolve_device")
    run_experiment(tiny_config(), tmp_path, "once", trackers=["json"])
    assert calls == {"resolve_params": 1, "resolve_device": 1}
