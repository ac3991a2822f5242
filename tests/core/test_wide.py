"""Wide seeds: growth in width beside the trunk, exact at every transition, fused and saved."""

import pytest
import torch

import kaslite
from kaslite.config import SeedConfig
from kaslite.errors import InvalidValue
from kaslite.models import load_model, save_model
from kaslite.nn import MorphogeneticNet, SeedState, WideSeed
from kaslite.nn.fuse import WideAndDeep

from .test_fit import QUICK, xor


def wide_net(**kwargs) -> MorphogeneticNet:
    torch.manual_seed(0)
    args = {"input_dim": 3, "hidden_dim": 8, "num_layers": 1, "seeds_per_layer": 1, "num_classes": 4}
    args |= {"wide_seeds": 2, "wide_units": 5, "seed_config": SeedConfig(blend_steps=4)}
    return MorphogeneticNet(**{**args, **kwargs})


def trained(seed: WideSeed) -> None:
    """Weights a trained branch might have (a new branch's output layer is zero)."""
    with torch.no_grad():
        for p in seed.child.parameters():
            p.add_(0.3 * torch.randn_like(p))


def test_wide_seeds_follow_the_deep_ones_and_start_as_exact_zeros():
    net = wide_net().train()
    assert list(net.seeds) == ["seed1_1", "wide_1", "wide_2"]
    x = torch.randn(6, 3)
    before = net(x)
    seed = net.seeds["wide_1"]
    seed.germinate()
    assert torch.equal(net(x), before)  # shadow-training: not in the output
    assert seed.measure_progress() == 1.0  # nothing to learn: ready to blend at once
    assert seed.shadow_step() is None and seed.reservoir().shape == (0, 3)
    seed.start_blending()
    seed.advance_blend()
    assert torch.equal(net(x), before)  # the branch's output layer is zero: α does not matter yet


def test_the_output_is_the_trunk_plus_alpha_times_each_branch():
    net = wide_net().eval()
    a, b = net.seeds["wide_1"], net.seeds["wide_2"]
    a.germinate()
    a.start_blending()
    a.advance_blend()  # α 0.25
    b.germinate()  # not in the output
    trained(a)
    trained(b)
    x = torch.randn(7, 3)
    with torch.no_grad():
        trunk = net.head(net.slots[0](torch.relu(net.blocks[0](torch.relu(net.input_layer(x))))))
        assert torch.allclose(net(x), trunk + 0.25 * a.child(x))
        assert torch.equal(b(x), torch.zeros(7, 4))


def test_fuse_folds_grown_branches_into_plain_modules():
    net = wide_net().eval()
    a, b = net.seeds["wide_1"], net.seeds["wide_2"]
    for seed in (a, b):
        seed.germinate()
        seed.start_blending()
        trained(seed)
    while not a.advance_blend():
        pass
    a.activate()
    b.advance_blend()  # b stays mid-blend
    fused = kaslite.fuse(net)
    assert isinstance(fused, WideAndDeep) and not [m for m in fused.modules() if isinstance(m, WideSeed)]
    x = torch.randn(16, 3)
    with torch.no_grad():
        assert torch.allclose(fused(x), net(x), atol=1e-6)
    exported = torch.export.export(fused, (x,))
    assert torch.allclose(exported.module()(x), net(x), atol=1e-6)
    # Before any branch grows, the fused network is the plain trunk.
    assert isinstance(kaslite.fuse(wide_net()), torch.nn.Sequential)


def test_a_model_file_keeps_the_wide_seeds(tmp_path):
    net = wide_net().eval()
    seed = net.seeds["wide_2"]
    seed.germinate()
    seed.start_blending()
    trained(seed)
    save_model(net, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")
    assert (loaded.wide_seeds, loaded.wide_units) == (2, 5)
    assert loaded.seeds["wide_2"].state is SeedState.BLENDING
    x = torch.randn(5, 3)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))


def test_fit_grows_width_and_no_transition_moves_the_output():
    model = {"hidden_dim": 4, "num_layers": 1, "seeds_per_layer": 0, "wide_seeds": 2, "width_seeds": 0}
    config = {**QUICK, "model": model}
    torch.manual_seed(0)
    result = kaslite.fit(None, xor(), config=config)
    grown = {e["seed_id"]: e for e in result.events if e["event"] == "seed_transition" and e["to_state"] == "active"}
    assert set(grown) == {"wide_1", "wide_2"}
    changes = [e["output_change"] for e in result.events if e["event"] == "seed_transition"]
    assert changes and max(changes) == 0.0
    trunk = 2 * 4 + 4 + 4 * 4 + 4 + 4 * 2 + 2
    assert result.metrics["params_total"] == trunk + 2 * (2 * 64 + 64 + 64 * 2 + 2)


def test_wide_seeds_need_the_mlp_trunk():
    with pytest.raises(InvalidValue, match=r"model\.wide_seeds.*2.*cnn trunk"):
        MorphogeneticNet(1, 4, 1, 1, 2, blueprint="conv", trunk="cnn", wide_seeds=2)
    with pytest.raises(InvalidValue, match=r"model\.wide_units.*0"):
        wide_net(wide_units=0)


class UserWide(torch.nn.Module):
    """A user's model with a wide seed beside its own layers."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
        self.wide = WideSeed(2, 8, 2, SeedConfig(blend_steps=3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.wide(x)


def test_a_users_module_grows_a_wide_seed_and_fuses():
    torch.manual_seed(0)
    model = UserWide()
    kaslite.fit(model, xor(), config=QUICK)
    assert model.wide.state is SeedState.ACTIVE and model.wide.child.outer.weight.abs().sum() > 0
    fused = kaslite.fuse(model)
    assert not [m for m in fused.modules() if isinstance(m, WideSeed)]
    x = torch.randn(9, 2)
    with torch.no_grad():
        assert torch.equal(fused(x), model.eval()(x))
    dormant = UserWide().eval()
    with torch.no_grad():  # a branch that never grew fuses to zeros: the user's own layers alone
        assert torch.equal(kaslite.fuse(dormant)(x), dormant.body(x))


def test_a_bfloat16_network_grows_its_wide_seed_in_bfloat16():
    net = wide_net().to(torch.bfloat16).train()
    seed = net.seeds["wide_1"]
    seed.germinate()
    seed.start_blending()
    trained(seed)
    x = torch.randn(6, 3, dtype=torch.bfloat16)
    out = net(x)
    out.float().sum().backward()
    assert out.dtype is torch.bfloat16 and seed.child.outer.weight.grad is not None
    dormant = net.seeds["wide_2"]
    dormant.observe()  # health from the bfloat16 batch
    assert dormant.health > 0.0
