"""kaslite.Grower: growth driven from a user's own module and training loop."""

import copy
import csv
import math
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import kaslite
from kaslite.control import Controller, Germinate
from kaslite.errors import ConfigError
from kaslite.models import load_model, save_model
from kaslite.train import GrowthPolicyError, Tracker, run_experiment
from kaslite.train.data import load_split
from kaslite.train.trainer import build_net

from .test_trainer import tiny_config
from .user_model import UserNet, end_epoch, setup, train_step

HERE = Path(__file__).resolve().parent


class Recorder(Tracker):
    def __init__(self):
        self.transitions, self.records, self.phases = [], [], []

    def on_seed_transition(self, event):
        self.transitions.append(event)

    def on_epoch_end(self, record):
        self.records.append(record)

    def on_phase_change(self, event):
        self.phases.append(event)


def optimizer_state(optimizer) -> dict:
    return copy.deepcopy(optimizer.state_dict())


def test_a_user_module_grows_with_adamw_a_cosine_schedule_and_a_dataloader():
    run = setup(epochs=12)
    model, optimizer, grower = run["model"], run["optimizer"], run["grower"]
    recorder = Recorder()
    grower.trackers.trackers["recorder"] = recorder
    assert list(grower.seeds) == ["grow_a", "grow_b"]
    children = {id(p) for seed in grower.seeds.values() for p in seed.child.parameters()}
    # One optimizer over every parameter, children included, from the start.
    assert {id(p) for group in optimizer.param_groups for p in group["params"]} == {id(p) for p in model.parameters()}
    checked_germination = False
    for _ in range(12):
        for xb, yb in run["loader"]:
            train_step(run, xb, yb)
        lrs_before = {group["lr"] for group in optimizer.param_groups}
        before = optimizer_state(optimizer)
        dormant = {sid for sid, seed in grower.seeds.items() if seed.state.value == "dormant"}
        made = end_epoch(run, step_scheduler=False)
        if any(t.to_state == "training" and t.seed_id in dormant for t in made):
            checked_germination = True
            after = optimizer.state_dict()
            assert after["param_groups"] == before["param_groups"]
            assert after["state"].keys() == before["state"].keys()
            for index, state in before["state"].items():
                for key, value in state.items():
                    assert torch.equal(after["state"][index][key], value), (index, key)
        run["scheduler"].step()
        assert len(lrs_before) == 1 and len({group["lr"] for group in optimizer.param_groups}) == 1
    assert checked_germination
    assert {seed.state.value for seed in grower.seeds.values()} == {"active"}
    # Every transition went through, each moving the output by at most 1e-6.
    assert [(t.seed_id, t.to_state) for t in recorder.transitions if t.seed_id == "grow_a"] == [
        ("grow_a", "training"),
        ("grow_a", "blending"),
        ("grow_a", "active"),
    ]
    assert len(recorder.transitions) == 6
    assert all(t.output_change <= 1e-6 for t in recorder.transitions)
    # The children learned from the task once blending: the optimizer holds state for them now.
    grown_params = [p for p in model.parameters() if id(p) in children]
    assert all(optimizer.state[p] for p in grown_params)
    assert [r.epoch for r in recorder.records] == list(range(1, 13))


def test_children_of_dormant_seeds_are_untouched_by_the_task_optimizer():
    run = setup()
    seed = run["grower"].seeds["grow_b"]
    before = [p.detach().clone() for p in seed.child.parameters()]
    for xb, yb in run["loader"]:
        train_step(run, xb, yb)
    assert all(torch.equal(a, b) for a, b in zip(before, seed.child.parameters(), strict=True))
    assert all(p.grad is None for p in seed.child.parameters())
    assert not any(run["optimizer"].state[p] for p in seed.child.parameters())


def _run_to_mid_blend(run: dict) -> None:
    grower = run["grower"]
    for _ in range(20):
        for xb, yb in run["loader"]:
            train_step(run, xb, yb)
            if any(seed.state.value == "blending" and 0 < seed.blend_step < 8 for seed in grower.seeds.values()):
                return
        end_epoch(run)
    raise AssertionError("no seed reached the middle of blending")


def _next_steps(run: dict, count: int) -> None:
    done = 0
    while done < count:
        for xb, yb in run["loader"]:
            train_step(run, xb, yb)
            done += 1
            if done == count:
                return
        end_epoch(run)


def test_state_dict_mid_blend_resumes_bitwise_in_a_fresh_process(tmp_path):
    run = setup()
    _run_to_mid_blend(run)
    snapshot = {
        "model": run["model"].state_dict(),
        "optimizer": run["optimizer"].state_dict(),
        "scheduler": run["scheduler"].state_dict(),
        "grower": run["grower"].state_dict(),
        "rng": torch.get_rng_state(),
        "loader_rng": run["loader"].generator.get_state(),
    }
    torch.save(snapshot, tmp_path / "mid.pt")
    _next_steps(run, 50)
    expected = {name: t.clone() for name, t in run["model"].state_dict().items()}

    # The same thread count as this process: another splits some sums differently, which is not bit for bit.
    script = f"""
import sys, torch
torch.set_num_threads({torch.get_num_threads()})
sys.path.insert(0, {str(HERE.parent)!r})
from core.user_model import setup
from core.test_grower import _next_steps
run = setup()
state = torch.load({str(tmp_path / "mid.pt")!r}, weights_only=True)
run["model"].load_state_dict(state["model"])
run["grower"].load_state_dict(state["grower"])
run["optimizer"].load_state_dict(state["optimizer"])
run["scheduler"].load_state_dict(state["scheduler"])
torch.set_rng_state(state["rng"])
run["loader"].generator.set_state(state["loader_rng"])
_next_steps(run, 50)
torch.save(run["model"].state_dict(), {str(tmp_path / "after.pt")!r})
"""
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path)
    resumed = torch.load(tmp_path / "after.pt", weights_only=True)
    assert resumed.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(resumed[name], tensor), name


def test_a_user_loop_and_kaslite_run_give_identical_metrics(tiny_data, tmp_path):
    """The trainer is built on Grower: the same loop written by hand gives the same numbers."""
    config = tiny_config()
    expected = run_experiment(config, tmp_path, "run", trackers=["json"]).metrics

    t = config.train
    torch.manual_seed(t.seed)
    data = load_split(config.data, t.seed, torch.device("cpu"))
    net = build_net(config, data.input_dim, data.num_classes)
    net.input_scale.fit(data.x_train)  # kaslite's network standardises its inputs by the training split
    optimizer = torch.optim.Adam(net.parameters(), lr=t.lr)
    epochs = t.warm_up_epochs + t.adaptation_epochs
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)  # train.lr_schedule
    recorder = Recorder()
    grower = kaslite.Grower(
        net, "periodic", controller_config=config.controller, warm_up_epochs=t.warm_up_epochs,
        trackers=[recorder], probe=data.x_val[: t.probe_size],
        score_batch=(data.x_train[: t.probe_size], data.y_train[: t.probe_size]),
    )  # fmt: skip
    shuffle = torch.Generator().manual_seed(t.seed + 1)
    loss_fn = torch.nn.CrossEntropyLoss()
    for _ in range(epochs):
        net.train()
        order = torch.randperm(data.x_train.shape[0], generator=shuffle)
        total = 0.0
        for start in range(0, order.shape[0], t.batch_size):
            index = order[start : start + t.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(net(data.x_train[index]), data.y_train[index])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), t.grad_clip)  # train.grad_clip
            optimizer.step()
            grower.step()
            total += loss.item() * index.shape[0]
        net.eval()
        with torch.no_grad():
            logits = net(data.x_val)
        acc = int((logits.argmax(dim=1) == data.y_val).sum()) / data.y_val.shape[0]
        scheduler.step()
        grower.epoch_end(train_loss=total / order.shape[0], val_loss=float(loss_fn(logits, data.y_val)), val_acc=acc)
    rows = [{key: str(value) for key, value in record.row().items()} for record in recorder.records]
    with (tmp_path / "run" / "history.csv").open() as handle:
        assert rows == list(csv.DictReader(handle))  # every epoch, every number, bit for bit
    assert float(rows[-1]["val_acc"]) == expected["val_acc"]
    assert grower.best_acc == expected["best_acc"]
    assert sum(seed.state.value == "active" for seed in grower.seeds.values()) == expected["seeds_activated"]
    assert grower.param_counts() == (expected["params_trunk"], expected["params_total"])
    assert [p.epoch for p in recorder.phases] == [4]


def test_save_and_load_a_user_module(tmp_path):
    run = setup()
    _run_to_mid_blend(run)
    model = run["model"].eval()
    x = torch.randn(5, 2)
    # A module that cannot describe itself: the caller builds it, load_model fills it.
    plain = save_model(model, tmp_path / "plain.pt", {"note": "user"})
    with pytest.raises(kaslite.models.files.ModelFileError, match=r"load_model\(path, model=MyNet"):
        load_model(plain)
    loaded = load_model(plain, model=UserNet())
    assert torch.equal(loaded(x), model(x)) and loaded.metadata == {"note": "user"}
    assert {s.seed_id: s.state for s in kaslite.train.find_seeds(loaded)} == {
        sid: s.state for sid, s in run["grower"].seeds.items()
    }
    # Or with a factory the file names.
    named = save_model(model, tmp_path / "named.pt", factory="core.user_model:UserNet", factory_kwargs={"width": 16})
    sys.path.insert(0, str(HERE.parent))
    try:
        assert torch.equal(load_model(named)(x), model(x))
    finally:
        sys.path.remove(str(HERE.parent))
    raw = torch.load(named, weights_only=True)
    assert not [key for key in raw["state_dict"] if "reservoir" in key or "shadow" in key or "health" in key]


def test_training_state_is_copied_never_shared():
    run = setup()
    _run_to_mid_blend(run)
    state = run["grower"].state_dict()
    first, second = setup(), setup()
    for other in (first, second):
        other["model"].load_state_dict(run["model"].state_dict())
        other["grower"].load_state_dict(state)
    a, b = first["grower"].seeds["grow_a"], second["grower"].seeds["grow_a"]
    a.health_var.add_(1.0)
    assert not torch.equal(a.health_var, b.health_var)
    assert a.health_var.data_ptr() != state["seeds"]["grow_a"]["health_var"].data_ptr()


def test_a_raising_policy_is_named_with_its_epoch_after_the_epoch_is_logged():
    class Broken(Controller):
        def decide(self, obs):
            raise ValueError("no idea\nsecond line")

    recorder = Recorder()
    model = UserNet()
    grower = kaslite.Grower(model, Broken(), warm_up_epochs=1, trackers=[recorder])
    grower.epoch_end(val_loss=1.0)
    with pytest.raises(GrowthPolicyError, match=r"^growth policy Broken raised at epoch 2: ValueError: no idea$"):
        grower.epoch_end(val_loss=1.0)
    assert [r.epoch for r in recorder.records] == [1, 2]


def test_a_policy_naming_an_unknown_seed_is_a_clear_error():
    class Typo(Controller):
        def decide(self, obs):
            return [Germinate("grow_c")]

    grower = kaslite.Grower(UserNet(), Typo())
    message = "growth policy Typo at epoch 1 named unknown seed 'grow_c'; seeds: grow_a, grow_b"
    with pytest.raises(GrowthPolicyError, match=f"^{re.escape(message)}$"):
        grower.epoch_end(val_loss=1.0)


def test_bad_construction_is_a_clear_error():
    with pytest.raises(ConfigError, match="Linear holds no SentinelSeed"):
        kaslite.Grower(torch.nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="unknown field"):
        kaslite.Grower(UserNet(), "periodic", perid=3)
    with pytest.raises(kaslite.errors.UnknownNameError, match="unknown controller 'kasmna'"):
        kaslite.Grower(UserNet(), "kasmna")


def test_without_a_probe_output_change_is_nan():
    recorder = Recorder()
    grower = kaslite.Grower(UserNet(), "periodic", period=1, trackers=[recorder])
    (made,) = grower.epoch_end(val_loss=1.0)
    assert made.to_state == "training" and math.isnan(made.output_change)
    assert recorder.phases[0].epoch == 1  # no warm-up: phase 2 is announced at once


def test_run_experiment_with_no_trackers_writes_no_tracker_files(tiny_data, tmp_path):
    run_experiment(tiny_config(train={"adaptation_epochs": 1}), tmp_path, "quiet", trackers=[])
    assert sorted(p.name for p in (tmp_path / "quiet").iterdir()) == ["checkpoint.pt", "config.yaml", "model.pt"]


def test_a_checkpoint_taken_while_a_seed_shadow_trains_resumes_bitwise():
    """Reservoir, shadow moments and health all come back: the next steps match an uninterrupted run."""
    from kaslite.config import SeedConfig
    from kaslite.nn import MorphogeneticNet

    def build():
        torch.manual_seed(3)
        config = SeedConfig(progress_thresh=0.99, buffer_size=48, health_every=2)
        net = MorphogeneticNet(2, 8, 2, 1, 2, blueprint_options={"hidden": 8}, seed_config=config)
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
        return net, optimizer, kaslite.Grower(net, "kasmina", patience=1, delta=10.0, acc_threshold=1.0)

    def steps(net, optimizer, grower, count, g):
        for _ in range(count):
            x, y = torch.randn(16, 2, generator=g), torch.randint(0, 2, (16,), generator=g)
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(net.train()(x), y).backward()
            optimizer.step()
            grower.step()

    net, optimizer, grower = build()
    g = torch.Generator().manual_seed(0)
    steps(net, optimizer, grower, 10, g)
    grower.epoch_end(val_loss=1.0, val_acc=0.5)
    grower.epoch_end(val_loss=1.0, val_acc=0.5)  # a plateau: kasmina germinates
    steps(net, optimizer, grower, 10, g)
    training = [seed for seed in grower.seeds.values() if seed.state.value == "training"]
    assert training and training[0].reservoir().shape[0] > 16 and training[0]._shadow_steps > 0
    saved = copy.deepcopy(
        {"model": net.state_dict(), "grower": grower.state_dict(), "optimizer": optimizer.state_dict()}
    )
    saved.update(rng=torch.get_rng_state(), g=g.get_state())
    steps(net, optimizer, grower, 15, g)
    expected = {name: t.clone() for name, t in net.state_dict().items()}
    expected_health = {sid: seed.health_var.clone() for sid, seed in grower.seeds.items()}

    net2, optimizer2, grower2 = build()
    net2.load_state_dict(saved["model"])
    grower2.load_state_dict(saved["grower"])
    optimizer2.load_state_dict(saved["optimizer"])
    torch.set_rng_state(saved["rng"])
    g.set_state(saved["g"])
    steps(net2, optimizer2, grower2, 15, g)
    for name, tensor in expected.items():
        assert torch.equal(net2.state_dict()[name], tensor), name
    for sid, health in expected_health.items():
        assert torch.equal(grower2.seeds[sid].health_var, health), sid


def test_a_factory_function_annotated_to_build_a_module_rebuilds_the_model(tmp_path, monkeypatch):
    model = UserNet(width=8).eval()
    x = torch.randn(5, 2)
    monkeypatch.syspath_prepend(str(HERE.parent))
    path = save_model(model, tmp_path / "made.pt", factory="core.user_model:make_user_net", factory_kwargs={"width": 8})
    assert torch.equal(load_model(path)(x), model(x))
    unannotated = save_model(model, tmp_path / "u.pt", factory="core.user_model:unannotated_factory")
    with pytest.raises(kaslite.models.files.ModelFileError, match=r"nor a function annotated to return one"):
        load_model(unannotated)


def test_a_model_file_naming_something_other_than_a_module_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    payload = {
        "format": "kaslite-model",
        "format_version": 2,
        "builder": {"factory": "os:system", "kwargs": {"command": f"touch {marker}"}},
        "state_dict": {},
        "seeds": {},
        "metadata": {},
    }
    torch.save(payload, tmp_path / "evil.pt")
    with pytest.raises(kaslite.models.files.ModelFileError, match=r"'os:system', which is not a torch\.nn\.Module"):
        load_model(tmp_path / "evil.pt")
    assert not marker.exists()


def test_save_model_keeps_a_user_module_that_has_a_submodule_named_module(tmp_path):
    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.module = UserNet()
            self.extra = torch.nn.Linear(2, 2)

        def forward(self, x):
            return self.extra(self.module(x))

    model = Wrapper()
    save_model(model, tmp_path / "w.pt")
    raw = torch.load(tmp_path / "w.pt", weights_only=True)
    assert "extra.weight" in raw["state_dict"] and "module.head.weight" in raw["state_dict"]


def test_a_policy_acting_on_a_seed_in_the_wrong_state_changes_nothing():
    class Twice(Controller):
        def decide(self, obs):
            return [Germinate("grow_a"), Germinate("grow_a")]

    grower = kaslite.Grower(UserNet(), Twice())
    with pytest.raises(GrowthPolicyError, match=r"asked to germinate grow_a, which is training$"):
        grower.epoch_end(val_loss=1.0)
    assert grower.seeds["grow_a"].state.value == "dormant"  # nothing applied


def test_the_probe_puts_every_module_back_in_its_own_mode():
    model = UserNet().train()
    model.mid[2].eval()  # the user keeps this dropout in eval
    grower = kaslite.Grower(model, "periodic", period=1, probe=torch.randn(4, 2))
    grower.epoch_end(val_loss=1.0)
    assert model.training and not model.mid[2].training


def test_an_activation_is_stamped_with_the_epoch_it_happens_in():
    recorder = Recorder()
    model = UserNet()
    grower = kaslite.Grower(model, "periodic", period=1, trackers=[recorder])
    seed = grower.seeds["grow_a"]
    grower.epoch_end(val_loss=1.0)  # epoch 1: germinates grow_a
    seed.progress = 1.0
    seed.start_blending()
    while seed.state.value == "blending":
        model.train()(torch.randn(4, 2))
        grower.step()  # during epoch 2
    assert [(t.epoch, t.to_state) for t in recorder.transitions if t.seed_id == "grow_a"][-1] == (2, "active")


class OneSeedNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Linear(2, 4)
        self.grow = kaslite.nn.SentinelSeed(4, config=kaslite.config.SeedConfig(blend_steps=4, progress_thresh=0.0))
        self.head = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.grow(torch.relu(self.stem(x))))


def test_an_epoch_without_grower_step_warns_once():
    model = OneSeedNet()
    grower = kaslite.Grower(model, "never")
    with pytest.warns(UserWarning, match=r"epoch_end\(\) after an epoch without grower.step\(\): call grower.step"):
        grower.epoch_end(val_loss=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grower.epoch_end(val_loss=1.0)  # said once
        grower.step()
        grower.epoch_end(val_loss=1.0)


def test_a_step_the_grad_scaler_skipped_does_not_advance_the_blend():
    torch.manual_seed(0)
    model = OneSeedNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu")
    grower = kaslite.Grower(model, "never", optimizer=optimizer)
    model.grow.germinate()
    model.grow.start_blending()
    x, y = torch.randn(8, 2), torch.randint(0, 2, (8,))
    alphas = []
    for poison in (False, True, False):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y) * (math.inf if poison else 1.0)
        scaler.scale(loss).backward()
        scaler.step(optimizer)  # skipped when the gradients hold inf
        scaler.update()
        grower.step()
        alphas.append(model.grow.alpha)
    assert alphas == [0.25, 0.25, 0.5]
