"""kaslite-example, tested the way a plugin author would: only kaslite.testing's fixtures."""

import numpy as np
import pytest
import torch
import yaml

import kaslite_example.plugin as example
from kaslite.config.structure import structure
from kaslite.control import Cull, Germinate
from kaslite.errors import ConfigError, InvalidValue
from kaslite.nn import MorphogeneticNet
from kaslite.plugins import BLUEPRINT, CONTROLLER, DATASET
from kaslite.testing import invoke, observation, seed_view
from kaslite.train import Trainer
from kaslite_example.checkerboard import CheckerboardParams
from kaslite_example.policy import GapAwareParams, GapAwarePolicy


def test_registers_its_three_things(kaslite_plugin_manager):
    kaslite_plugin_manager.register(example, name="example")
    assert "checkerboard" in kaslite_plugin_manager.registrations(DATASET)
    assert "gap-aware" in kaslite_plugin_manager.registrations(CONTROLLER)
    assert "lowrank" in kaslite_plugin_manager.registrations(BLUEPRINT)


def test_checkerboard_labels_follow_the_squares(kaslite_plugin_manager):
    kaslite_plugin_manager.register(example, name="example")
    spec = kaslite_plugin_manager.lookup(DATASET, "checkerboard")
    data = spec.generate(CheckerboardParams(n_samples=400, k=3, noise=0.0, input_dim=4), seed=1)
    assert data.X.shape == (400, 4) and data.X.dtype == np.float32 and data.y.dtype == np.int64
    cells = np.floor(data.X[:, :2] * 3).astype(int)
    assert np.array_equal(data.y, cells.sum(axis=1) % 2)
    again = spec.generate(CheckerboardParams(n_samples=400, k=3, noise=0.0, input_dim=4), seed=1)
    other = spec.generate(CheckerboardParams(n_samples=400, k=3, noise=0.0, input_dim=4), seed=2)
    assert np.array_equal(data.X, again.X) and not np.array_equal(data.X, other.X)


@pytest.mark.parametrize(("field", "value"), [("k", 1), ("n_samples", 0), ("input_dim", 1), ("noise", -0.1)])
def test_checkerboard_rejects_bad_parameters(field, value):
    with pytest.raises(InvalidValue) as info:
        structure({field: value}, CheckerboardParams, path="checkerboard")
    assert info.value.field == f"checkerboard.{field}" and info.value.value == value


def test_lowrank_child_has_the_requested_rank(kaslite_register):
    kaslite_register(example, name="example")
    net = MorphogeneticNet(2, 10, 1, 1, 2, blueprint="lowrank", blueprint_options={"rank": 3})
    child = net.seeds["seed1_1"].child
    with torch.no_grad():
        jacobian = child[1].weight @ child[0].weight
    assert jacobian.shape == (10, 10) and int(torch.linalg.matrix_rank(jacobian)) == 3


def test_lowrank_rejects_rank_zero_naming_the_plugin(kaslite_register):
    kaslite_register(example, name="example")
    with pytest.raises(ConfigError) as info:
        MorphogeneticNet(2, 10, 1, 1, 2, blueprint="lowrank", blueprint_options={"rank": 0})
    assert str(info.value) == (
        "invalid blueprint 'lowrank' (plugin kaslite-example) parameter rank = 0: must be an integer >= 1"
    )


def seeds(**states):
    health = {"seed1_1": 0.4, "seed2_1": 0.2}
    return [seed_view(s, states.get(s, "dormant"), alpha=0.0, health=h) for s, h in health.items()]


def observe(policy, rows, states=None):
    """Feed (train_loss, val_loss) rows one epoch at a time; return {epoch: actions}."""
    out = {}
    for epoch in range(1, len(rows) + 1):
        train, val = zip(*rows[:epoch], strict=True)
        obs = observation(train_loss=train, val_loss=val, seeds=seeds(**(states or {}).get(epoch, {})))
        actions = policy.decide(obs)
        if actions:
            out[epoch] = actions
    return out


def test_policy_grows_the_least_healthy_seed_when_the_gap_stops_shrinking():
    policy = GapAwarePolicy(GapAwareParams(patience=2))
    rows = [(1.0, 1.5), (0.9, 1.2), (0.8, 1.1), (0.7, 1.0), (0.6, 0.95)]
    # gaps 0.5, 0.3, 0.3, 0.3, 0.35: best at epoch 2, stale at 3 and 4 -> grow at epoch 4
    assert observe(policy, rows) == {4: [Germinate("seed2_1")]}


def test_policy_culls_a_seed_whose_blend_raised_validation_loss():
    policy = GapAwarePolicy(GapAwareParams(patience=5, cull_margin=0.1))
    blending = {epoch: {"seed1_1": "blending"} for epoch in (2, 3, 4)}
    rows = [(0.5, 1.0), (0.5, 1.0), (0.5, 1.05), (0.5, 1.2)]
    assert observe(policy, rows, blending) == {4: [Cull("seed1_1")]}
    restored = GapAwarePolicy(GapAwareParams())
    restored.load_state_dict(policy.state_dict())
    assert restored.state_dict() == policy.state_dict()


def test_a_run_with_all_three(kaslite_register, kaslite_tiny_config, kaslite_run_dir):
    kaslite_register(example, name="example")
    config = kaslite_tiny_config(
        data={"problem": "checkerboard", "params": {"n_samples": 200, "k": 2}},
        model={"blueprint": "lowrank", "blueprint_options": {"rank": 8}},
        # A gap must shrink by 0.01 to count: on standardised inputs it shrinks a little every epoch here.
        controller={"name": "gap-aware", "options": {"patience": 1, "tolerance": 0.01}},
    )
    trainer = Trainer(config, kaslite_run_dir)
    metrics = trainer.run().metrics
    grown = [e for e in trainer.events if e["event"] == "seed_transition" and e["to_state"] == "training"]
    assert grown and metrics["epochs"] == 11
    assert (kaslite_run_dir / "model.pt").exists()


def test_the_cli_runs_the_plugin_end_to_end(tmp_path):
    args = [
        "run", "--problem", "checkerboard", "--controller", "gap-aware", "--blueprint", "lowrank",
        "--dataset-param", "n_samples=200", "--controller-param", "patience=1", "--blueprint-param", "rank=8",
        "--warm-up-epochs", "3", "--adaptation-epochs", "6", "--output-dir", str(tmp_path), "-q",
        "--tracker", "console",
    ]  # fmt: skip
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "seeds active" in result.stdout
    (config,) = tmp_path.glob("*/config.yaml")
    written = yaml.safe_load(config.read_text())
    assert written["controller"]["options"] == {"patience": 1, "tolerance": 0.0, "cull_margin": 0.1}
    assert written["data"]["params"] == {"n_samples": 200, "k": 4, "noise": 0.0, "input_dim": 2}


def test_kaslite_lists_the_plugins_parameters_with_help():
    plugins = invoke("plugins").stdout
    assert "        lowrank: rank (int, default 4): rank of the grown map\n" in plugins
    assert "gap-aware: patience (int, default 3): epochs without a smaller gap before growing; " in plugins
    datasets = invoke("datasets").stdout
    assert (
        "checkerboard: k×k board of alternating classes\n    --n-samples (int, default 1000): number of points\n"
        in (datasets)
    )


def test_a_sweep_varies_the_plugins_parameters(tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("controller_param.patience: [1, 2]\nblueprint_param.rank: [2, 8]\ndataset_param.k: 3\n")
    args = [
        "sweep", str(sweep), "--problem", "checkerboard", "--controller", "gap-aware", "--blueprint", "lowrank",
        "--n-samples", "100", "--warm-up-epochs", "1", "--adaptation-epochs", "2",
        "--output-dir", str(tmp_path / "out"), "--tracker", "json", "-q",
    ]  # fmt: skip
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    configs = [yaml.safe_load(p.read_text()) for p in sorted((tmp_path / "out").glob("run_*/config.yaml"))]
    assert sorted(
        (c["controller"]["options"]["patience"], c["model"]["blueprint_options"]["rank"]) for c in configs
    ) == [(1, 2), (1, 8), (2, 2), (2, 8)]
    assert {c["data"]["params"]["k"] for c in configs} == {3}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--controller-param", "patience=0"],
            "Error: invalid controller 'gap-aware' (plugin kaslite-example) parameter patience = 0: "
            "must be an integer >= 1",
        ),
        (
            ["--blueprint-param", "rank=0"],
            "Error: invalid blueprint 'lowrank' (plugin kaslite-example) parameter rank = 0: must be an integer >= 1",
        ),
        (
            ["--controller-param", "speed=3"],
            "Error: unknown field(s) speed in controller 'gap-aware' (plugin kaslite-example) parameters; "
            "allowed: patience, tolerance, cull_margin",
        ),
        (
            ["--dataset-param", "k=1"],
            "Error: invalid dataset 'checkerboard' (plugin kaslite-example) parameter k = 1: must be an integer >= 2",
        ),
        (
            ["--k", "1"],
            "Error: invalid dataset 'checkerboard' (plugin kaslite-example) parameter k = 1: must be an integer >= 2",
        ),
    ],
)
def test_bad_plugin_parameters_are_one_line(tmp_path, args, message):
    base = ["run", "--problem", "checkerboard", "--controller", "gap-aware", "--blueprint", "lowrank"]
    result = invoke(*base, *args, "--output-dir", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert result.stderr == message + "\n"
    assert not (tmp_path / "out").exists()
