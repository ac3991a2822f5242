"""A run that fails mid-way loses nothing: one line, files and checkpoint kept, trackers told, resumable."""

import csv
from pathlib import Path

import pytest
import torch

import kaslite
from kaslite.config import build_config
from kaslite.control import Controller, Germinate
from kaslite.hookspecs import ControllerSpec, TrackerSpec
from kaslite.testing import invoke
from kaslite.train import Tracker, Trainer

pytestmark = pytest.mark.usefixtures("tiny_data")

TINY = [
    "--problem", "xor", "--n-samples", "120", "--hidden-dim", "8", "--blueprint-hidden", "16",
    "--warm-up-epochs", "2", "--adaptation-epochs", "6", "--blend-steps", "3", "--progress-thresh", "0",
    "--batch-size", "16", "--controller", "moody",
]  # fmt: skip
FAIL_AT = {"epoch": 5}  # the epoch at which the moody policy raises; None: it never does


class Moody(Controller):
    """Germinates the next dormant seed each epoch, and raises at ``FAIL_AT["epoch"]``."""

    def decide(self, obs):
        if obs.epoch == FAIL_AT["epoch"]:
            raise ValueError("moody policy had a bad day\nand a second line")
        dormant = obs.in_state("dormant")
        return [Germinate(dormant[0].seed_id)] if dormant else []


HEARD: list[tuple[str, object]] = []  # what every Listener heard, in order


class Listener(Tracker):
    def on_run_failed(self, event):
        HEARD.append(("failed", event))

    def on_run_end(self, summary):
        HEARD.append(("end", summary))

    def close(self):
        HEARD.append(("closed", None))


class Plugin:
    @kaslite.hookimpl
    def kaslite_controllers(self):
        return [ControllerSpec("moody", lambda config: Moody(), "fails on purpose")]

    @kaslite.hookimpl
    def kaslite_trackers(self):
        return [TrackerSpec("listener", lambda run: Listener(), "records failures")]


@pytest.fixture(autouse=True)
def moody(monkeypatch):
    manager = kaslite.get_plugin_manager()
    manager.register(Plugin(), name="moody-plugin")
    monkeypatch.setitem(FAIL_AT, "epoch", 5)
    HEARD.clear()
    yield
    manager.unregister(name="moody-plugin")


def history(run_dir: Path) -> list[dict]:
    with (run_dir / "history.csv").open() as handle:
        return list(csv.DictReader(handle))


def saved_epoch(run_dir: Path) -> int:
    return int(torch.load(run_dir / "checkpoint.pt", weights_only=True)["grower"]["epoch"])


def test_a_raising_policy_stops_the_run_in_one_line_keeping_everything(tmp_path):
    result = invoke("run", *TINY, "--output-dir", str(tmp_path), "--run-name", "r", "--tracker", "listener")
    run_dir = tmp_path / "r"
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line == (
        "Error: growth policy 'moody' (plugin moody-plugin) raised at epoch 5: ValueError: moody policy had a "
        f"bad day; the run is kept in {run_dir} (checkpoint: epoch 4); once it is fixed, continue with "
        f"kaslite run --resume {run_dir}"
    )
    assert [int(row["epoch"]) for row in history(run_dir)] == [1, 2, 3, 4, 5]  # the failing epoch is logged
    assert (run_dir / "events.jsonl").read_text()
    assert saved_epoch(run_dir) == 4
    assert not (run_dir / "metrics.json").exists()
    (failed,) = [event for kind, event in HEARD if kind == "failed"]
    assert failed.epoch == 5 and failed.error.startswith("GrowthPolicyError: growth policy 'moody'")
    assert not failed.interrupted and HEARD[-1][0] == "closed"


def test_once_the_policy_is_fixed_the_resumed_run_ends_as_an_uninterrupted_one(tmp_path, monkeypatch):
    invoke("run", *TINY, "--output-dir", str(tmp_path), "--run-name", "broken")
    monkeypatch.setitem(FAIL_AT, "epoch", None)
    resumed = invoke("run", "--resume", str(tmp_path / "broken"))
    assert resumed.exit_code == 0, resumed.stderr
    whole = invoke("run", *TINY, "--output-dir", str(tmp_path), "--run-name", "whole")
    assert whole.exit_code == 0
    # metrics.json holds only what the run computed (wall time is in timing.json): the same bytes.
    assert (tmp_path / "broken" / "metrics.json").read_bytes() == (tmp_path / "whole" / "metrics.json").read_bytes()
    assert history(tmp_path / "broken") == history(tmp_path / "whole")


def test_resume_accepts_safe_overrides_and_refuses_the_others(tmp_path, monkeypatch):
    monkeypatch.setitem(FAIL_AT, "epoch", None)
    assert invoke("run", *TINY, "--output-dir", str(tmp_path), "--run-name", "r").exit_code == 0
    run_dir = tmp_path / "r"
    refused = invoke("run", "--resume", str(run_dir), "--lr", "0.1", "--hidden-dim", "4")
    assert refused.exit_code == 2
    assert refused.stderr.strip() == (
        "Error: cannot change model.hidden_dim, train.lr when resuming (the run was made with other values); "
        "a resume may change train.adaptation_epochs, train.threads, the controller's settings, "
        "the trackers and their options"
    )
    longer = invoke("run", "--resume", str(run_dir), "--adaptation-epochs", "8", "--patience", "2", "--threads", "1")
    assert longer.exit_code == 0, longer.stderr
    assert [int(row["epoch"]) for row in history(run_dir)] == list(range(1, 11))
    assert "adaptation_epochs: 8" in (run_dir / "config.yaml").read_text()
    assert "threads: 1" in (run_dir / "config.yaml").read_text()


def test_resuming_a_finished_run_does_nothing(tmp_path, monkeypatch):
    monkeypatch.setitem(FAIL_AT, "epoch", None)
    invoke("run", *TINY, "--output-dir", str(tmp_path), "--run-name", "done")
    run_dir = tmp_path / "done"
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}
    HEARD.clear()
    again = invoke("run", "--resume", str(run_dir), "--tracker", "listener")
    assert again.exit_code == 0
    assert (
        again.stdout.strip()
        == f"{run_dir} already finished all its epochs; nothing to do (ask for more with --adaptation-epochs N)"
    )
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()} == before
    assert HEARD == []  # no run end fired again, so no second registered model


def tiny_config(**sections):
    base = {
        "data": {"problem": "xor", "params": {"n_samples": 120}},
        "model": {"hidden_dim": 8, "blueprint_options": {"hidden": 16}},
        "controller": {"name": "never"},
        "train": {"warm_up_epochs": 2, "adaptation_epochs": 2, "batch_size": 16},
    }
    return build_config(base, sections)


def test_ctrl_c_keeps_the_checkpoint_and_says_how_to_resume(tmp_path):
    from kaslite.errors import RunStopped
    from kaslite.train.runner import _train

    class CtrlC(Tracker):
        def on_epoch_end(self, record):
            if record.epoch == 3:
                raise KeyboardInterrupt

    listener = Listener()
    trainer = Trainer(tiny_config(), tmp_path, {"ctrl-c": CtrlC(), "listener": listener})
    with pytest.raises(RunStopped) as stopped:
        _train(trainer)
    assert stopped.value.exit_code == 130
    assert str(stopped.value) == (
        f"interrupted at epoch 3; the run is kept in {tmp_path} (checkpoint: epoch 2); "
        f"continue with kaslite run --resume {tmp_path}"
    )
    (failed,) = [event for kind, event in HEARD if kind == "failed"]
    assert failed.interrupted and failed.error == "KeyboardInterrupt"


def test_trackers_are_closed_when_setup_raises(tmp_path):
    listener = Listener()
    config = tiny_config(data={"params": {"n_samples": 120}}, train={"device": "cpu"})
    trainer = Trainer(config, tmp_path, {"listener": listener}, data=(torch.zeros(4, 2), torch.zeros(4)))
    with pytest.raises(kaslite.errors.ConfigError):
        trainer.run()
    assert HEARD == [("closed", None)]


def test_without_warm_up_phase_two_is_announced_at_epoch_one(tmp_path):
    trainer = Trainer(tiny_config(train={"warm_up_epochs": 0}), tmp_path)
    trainer.run()
    assert trainer.events[0] == {"event": "phase_change", "epoch": 1, "phase": 2, "previous": 1}


def test_a_slot_of_two_seeds_reports_each_seeds_real_alpha_and_drift():
    from kaslite.nn import MorphogeneticNet

    torch.manual_seed(0)
    config = kaslite.config.SeedConfig(blend_steps=1, health_every=1)
    net = MorphogeneticNet(2, 8, 1, 2, 2, blueprint_options={"hidden": 8}, seed_config=config).train()
    first, second = net.seeds["seed1_1"], net.seeds["seed1_2"]
    first.germinate()
    first.start_blending()
    first.advance_blend()
    first.activate()
    x = torch.relu(net.input_layer(torch.randn(16, 2)))
    x = torch.relu(net.blocks[0](x)).detach()
    out = net.slots[0](x)
    with torch.no_grad():
        change = first.child(x) - x
        assert torch.allclose(out, x + change)  # the active seed adds its whole change, not half of it
    probe = torch.randn(16, 2)
    grower = kaslite.Grower(net, "never", probe=probe)
    grower.epoch_end(val_loss=1.0)
    with torch.no_grad():
        full = net.eval()(probe)
        first._child_in_use = False
        without = net(probe)
        first._child_in_use = True
    moved = float((full - without).norm())
    expected = moved / (moved + float(without.norm()))
    assert first.alpha == 1.0 and first.drift == pytest.approx(expected, rel=1e-6) and 0.0 < expected < 1.0
    assert second.alpha == 0.0 and second.drift == 0.0
