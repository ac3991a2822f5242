"""MorphogeneticNet: structure, slot arithmetic, parameter counts and model files."""

import pytest
import torch

from kaslite.config import SeedConfig
from kaslite.errors import ConfigError, UnknownNameError
from kaslite.models import load_model, save_model
from kaslite.nn import MorphogeneticNet, SeedState
from kaslite.plugins import BLUEPRINT, get_plugin_manager


def make_net(**kwargs) -> MorphogeneticNet:
    torch.manual_seed(0)
    args = {"input_dim": 3, "hidden_dim": 8, "num_layers": 2, "seeds_per_layer": 2, "num_classes": 4}
    return MorphogeneticNet(**{**args, **kwargs}, seed_config=SeedConfig(blend_steps=2))


def trunk_only(net: MorphogeneticNet, x: torch.Tensor) -> torch.Tensor:
    h = torch.relu(net.input_layer(x))
    for block in net.blocks:
        h = torch.relu(block(h))
    return net.head(h)


def test_structure_names_and_attributes():
    net = make_net()
    assert list(net.seeds) == ["seed1_1", "seed1_2", "seed2_1", "seed2_2"]
    assert [s.layer for s in net.seeds.values()] == [1, 1, 2, 2]
    assert (net.input_dim, net.num_classes) == (3, 4)
    assert net(torch.randn(5, 3)).shape == (5, 4)


def test_dormant_network_is_bitwise_the_trunk():
    net = make_net().train()
    x = torch.randn(16, 3)
    assert torch.equal(net(x), trunk_only(net, x))


def test_slot_output_is_x_plus_the_sum_of_seed_deltas():
    net = make_net().eval()
    a, b = net.seeds["seed1_1"], net.seeds["seed1_2"]
    for seed in (a, b):
        seed.germinate()
        seed.start_blending()
        seed.advance_blend()  # alpha 0.5
    x = torch.randn(6, 8)
    with torch.no_grad():
        expected = x + (0.5 * (a.child(x) - x)) + (0.5 * (b.child(x) - x))
        assert torch.allclose(net.slots[0](x), expected)


def test_param_counts_include_only_grown_children():
    from kaslite.train import count_parameters

    net = make_net()
    trunk, total = count_parameters(net)
    assert trunk == total == sum(p.numel() for p in net.trunk_parameters())
    net.seeds["seed2_1"].germinate()
    child = sum(p.numel() for p in net.seeds["seed2_1"].child.parameters())
    assert count_parameters(net) == (trunk, trunk + child)


def test_blueprint_choice_and_options():
    net = make_net(blueprint="bottleneck")
    assert net.seeds["seed1_1"].child[0].out_features == 4  # dim // 2
    net = make_net(blueprint="mlp", blueprint_options={"hidden": 5})
    assert net.seeds["seed1_1"].child[0].out_features == 5
    with pytest.raises(ConfigError) as bad:
        make_net(blueprint_options={"width": 3})
    assert (
        str(bad.value) == "unknown field(s) width in blueprint 'mlp' (plugin kaslite-core) parameters; allowed: hidden"
    )
    with pytest.raises(UnknownNameError) as info:
        make_net(blueprint="wide")
    installed = sorted(get_plugin_manager().registrations(BLUEPRINT))
    assert {"bottleneck", "mlp"} <= set(installed)
    assert str(info.value) == f"unknown blueprint 'wide'; available: {', '.join(installed)}"


def test_model_file_round_trip_with_weights_only(tmp_path):
    net = make_net()
    seed = net.seeds["seed1_2"]
    seed.germinate()
    seed.start_blending()
    while not seed.advance_blend():
        pass
    seed.activate()
    training = net.seeds["seed2_1"]
    training.germinate()
    net.train()(torch.randn(4, 3))
    training.observe()  # a training seed with a reservoir
    training.shadow_step()
    path = save_model(net, tmp_path / "model.pt", {"val_acc": 0.9, "tags": ["a"]})

    raw = torch.load(path, weights_only=True)
    assert raw["seeds"]["seed1_2"] == {"state": "active", "alpha": 1.0}
    assert raw["builder"]["factory"] == "kaslite.nn.network:MorphogeneticNet.from_architecture"
    assert raw["builder"]["kwargs"]["architecture"]["blueprint"] == "mlp"
    # Nothing of training: no reservoir, no shadow optimizer, no health estimate.
    assert not [key for key in raw["state_dict"] if "reservoir" in key or "shadow" in key or "health" in key]

    rng_before = torch.get_rng_state()
    loaded = load_model(path)
    assert torch.equal(torch.get_rng_state(), rng_before)  # loading does not disturb the caller
    assert loaded.metadata == {"val_acc": 0.9, "tags": ["a"]}
    assert not loaded.training
    assert {sid: s.state for sid, s in loaded.seeds.items()} == {sid: s.state for sid, s in net.seeds.items()}
    assert loaded.seeds["seed1_2"].state is SeedState.ACTIVE
    x = torch.randn(7, 3)
    assert torch.equal(loaded(x), net.eval()(x))


def test_load_model_rejects_other_files(tmp_path):
    from kaslite.models.files import ModelFileError

    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ModelFileError, match="is not a kaslite model file"):
        load_model(tmp_path / "other.pt")
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "missing.pt")


def test_file_model_source(tmp_path):
    from kaslite.plugins import get_model_source

    net = make_net()
    save_model(net, tmp_path / "m.pt", {"run": "x"})
    source = get_model_source("file")
    loaded = source.load(f"file://{tmp_path / 'm.pt'}")
    assert loaded.metadata == {"run": "x"} and loaded.net.num_classes == 4
    (version,) = source.list_versions(str(tmp_path / "m.pt"))
    assert version["metadata"] == {"run": "x"}


def test_from_config_builds_the_network_kaslite_run_and_fit_train_by_default():
    """One source of defaults: ModelConfig's. The constructor's own defaults are a bare network."""
    import kaslite
    from kaslite.config import ModelConfig

    data = tuple(torch.randn(n, 2) if i % 2 == 0 else torch.randint(0, 2, (n,)) for i, n in enumerate((64, 64, 16, 16)))
    torch.manual_seed(0)
    fitted = kaslite.fit(None, data, config={"train": {"warm_up_epochs": 1, "adaptation_epochs": 0}}).model
    torch.manual_seed(0)
    built = MorphogeneticNet.from_config(2, 2)
    assert list(built.seeds) == list(fitted.seeds)
    assert {k: v.shape for k, v in built.state_dict().items()} == {k: v.shape for k, v in fitted.state_dict().items()}
    defaults = ModelConfig()
    kinds = {s.kind for s in built.seeds.values()}
    assert kinds == {"deep", "wide", "width"} and defaults.blueprint == "residual"
    bare = MorphogeneticNet(2, defaults.hidden_dim, defaults.num_layers, defaults.seeds_per_layer, 2)
    assert {s.kind for s in bare.seeds.values()} == {"deep"}  # the documented difference
