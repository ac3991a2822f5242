"""Width seeds: new units in an existing layer, GradMax fan-in, exact transitions, fused to plain wider layers."""

import pytest
import torch
from torch import nn

import kaslite
from kaslite.config import SeedConfig
from kaslite.errors import InvalidValue
from kaslite.models import load_model, save_model
from kaslite.nn import MorphogeneticNet, SeedState, WidenableConvPair, WidenablePair, WidthSeed
from kaslite.nn.width import FAN_IN_NORM, gradmax_fan_in
from kaslite.train import Tracker, Trainer
from kaslite.train.scores import measure_gradients

from .test_fit import QUICK, xor
from .test_trainer import KilledAt, tiny_config, transitions

pytestmark = pytest.mark.usefixtures("tiny_data")


def width_net(**kwargs) -> MorphogeneticNet:
    torch.manual_seed(0)
    args = {"input_dim": 3, "hidden_dim": 8, "num_layers": 2, "seeds_per_layer": 1, "num_classes": 4}
    args |= {"width_seeds": 2, "width_units": 3, "wide_seeds": 1, "seed_config": SeedConfig(blend_steps=4)}
    return MorphogeneticNet(**{**args, **kwargs})


def grow(seed: WidthSeed, steps: int) -> None:
    """Germinate, blend ``steps`` steps (activating once α reaches 1) and give the units trained weights."""
    seed.germinate()
    seed.start_blending()
    with torch.no_grad():
        for p in seed.child.parameters():
            p.add_(0.3 * torch.randn_like(p))
    for _ in range(steps):
        if seed.advance_blend():
            seed.activate()
            break


def test_width_seeds_sit_in_every_hidden_layer_and_start_as_exact_zeros():
    net = width_net().train()
    widths = [sid for sid in net.seeds if sid.startswith("width")]
    assert widths == ["width0_1", "width0_2", "width1_1", "width1_2", "width2_1", "width2_2"]
    assert {net.seeds[sid].kind for sid in widths} == {"width"}
    assert (net.seeds["width0_1"].dim, net.seeds["width0_1"].outputs) == (3, 8)  # input layer: reads x
    assert (net.seeds["width2_1"].dim, net.seeds["width2_1"].outputs) == (8, 4)  # last layer: writes the head
    x = torch.randn(6, 3)
    before = net(x)
    for sid in widths:
        seed = net.seeds[sid]
        seed.germinate()
        assert torch.equal(net(x), before)
        seed.start_blending()
        seed.advance_blend()
        assert torch.equal(net(x), before)  # zero fan-out: α does not matter yet


def test_the_output_is_the_next_layers_pre_activation_plus_alpha_times_the_units():
    net = width_net(seeds_per_layer=0, wide_seeds=0).eval()
    seed = net.seeds["width0_1"]
    grow(seed, 1)  # α = 0.25
    x = torch.randn(5, 3)
    with torch.no_grad():
        h0 = torch.relu(net.input_layer(x))
        z1 = net.blocks[0](h0) + 0.25 * seed.child(x)
        h2 = torch.relu(net.blocks[1](torch.relu(z1)))
        assert torch.allclose(net(x), net.head(h2))


def test_fuse_concatenates_grown_units_into_plain_wider_layers():
    net = width_net().eval()
    torch.manual_seed(1)
    grow(net.seeds["width0_1"], 4)  # active
    grow(net.seeds["width1_2"], 2)  # mid-blend
    grow(net.seeds["width2_1"], 4)
    grow(net.seeds["seed1_1"], 4)  # a residual block between widened layers
    fused = kaslite.fuse(net)
    assert isinstance(fused, nn.Sequential)  # the wide seed did not grow: no branch beside the trunk
    trunk = [m for m in fused if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in trunk] == [(3, 11), (11, 11), (11, 11), (11, 4)]
    assert not [m for m in fused.modules() if isinstance(m, WidthSeed)]
    x = torch.randn(32, 3)
    with torch.no_grad():
        assert torch.allclose(fused(x), net(x), atol=1e-6)
    exported = torch.export.export(fused, (x,))
    assert torch.allclose(exported.module()(x), net(x), atol=1e-6)


def test_gradmax_fan_in_follows_the_top_singular_directions_and_receives_more_gradient():
    torch.manual_seed(0)
    inputs = torch.randn(256, 5)
    # The loss gradient at the layer the units write into depends on two input directions only.
    deltas = torch.stack([torch.relu(inputs[:, 0] - inputs[:, 1]), torch.relu(inputs[:, 2])], dim=1)
    current = torch.randn(4, 6)
    rows = gradmax_fan_in(current, inputs, deltas)
    assert torch.allclose(rows[:2].norm(dim=1), torch.full((2,), FAN_IN_NORM))
    assert torch.equal(rows[2:], current[2:])  # beyond the rank of M: left as they were

    def fan_out_gradient(fan_in: torch.Tensor) -> float:
        augmented = torch.cat([inputs, torch.ones(256, 1)], dim=1)
        return float((deltas.T @ torch.relu(augmented @ fan_in.T)).norm())

    kaiming = current / current.norm(dim=1, keepdim=True) * FAN_IN_NORM
    assert fan_out_gradient(rows[:2]) > 2 * fan_out_gradient(kaiming[:2])


def test_the_grower_gives_germinated_width_seeds_gradmax_fan_in_without_moving_the_output():
    net = width_net(seeds_per_layer=0, wide_seeds=0, width_seeds=1)
    x, y = torch.randn(64, 3), torch.randint(0, 4, (64,))
    grower = kaslite.Grower(net, "periodic", period=1, probe=x, score_batch=(x, y))
    seed = net.seeds["width1_1"]
    kaiming = seed.child.inner.weight.clone()
    measured, _ = measure_gradients(net, [seed], x, y, nn.functional.cross_entropy)
    grower.epoch_end(val_loss=1.0)  # periodic germinates width0_1 first
    grower.epoch_end(val_loss=1.0)
    assert seed.state is SeedState.TRAINING
    expected = gradmax_fan_in(
        torch.cat([kaiming, torch.zeros(3, 1)], dim=1), measured["width1_1"].inputs, measured["width1_1"].deltas
    )
    assert torch.allclose(seed.child.inner.weight, expected[:, :-1])


def test_kaslite_run_grows_width_and_no_transition_moves_the_output(tmp_path):
    trainer = Trainer(tiny_config(model={"seeds_per_layer": 0, "wide_seeds": 0, "width_seeds": 1}), tmp_path)
    trainer.run()
    seen = {(e["seed_id"], e["to_state"]): e["output_change"] for e in transitions(trainer.events)}
    assert {sid for sid, state in seen if state == "active"} == {"width0_1", "width1_1", "width2_1"}
    assert set(seen.values()) == {0.0}

    def linear(inputs: int, outputs: int) -> int:
        return inputs * outputs + outputs

    trunk = linear(2, 8) + 2 * linear(8, 8) + linear(8, 2)
    units = trainer.net.width_units  # 8: into the input layer, the two hidden blocks' inputs, the head's
    grown = linear(2, units) + linear(units, 8) + 2 * linear(8, units) + linear(units, 8) + linear(units, 2)
    assert trainer.grower.param_counts() == (trunk, trunk + grown)


def test_a_killed_width_run_resumes_to_the_uninterrupted_result(tmp_path):
    config = {"model": {"seeds_per_layer": 0, "wide_seeds": 0, "width_seeds": 1}}
    whole = Trainer(tiny_config(**config), tmp_path / "whole").run().metrics
    with pytest.raises(KeyboardInterrupt):
        Trainer(tiny_config(**config), tmp_path / "split", {"kill": KilledAt(7)}).run()  # in the middle of growth
    resumed = Trainer(tiny_config(**config), tmp_path / "split").run(resume=True).metrics
    for metrics in (whole, resumed):
        metrics.pop("wall_time_s")
    assert resumed == whole


def test_a_model_file_keeps_the_width_seeds(tmp_path):
    net = width_net().eval()
    grow(net.seeds["width1_1"], 2)
    save_model(net, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")
    assert (loaded.width_seeds, loaded.width_units) == (2, 3)
    assert loaded.seeds["width1_1"].state is SeedState.BLENDING
    x = torch.randn(5, 3)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))


def test_width_seeds_need_the_mlp_trunk_and_at_least_one_unit():
    with pytest.raises(InvalidValue, match=r"model\.width_seeds.*1.*cnn trunk"):
        MorphogeneticNet(1, 4, 1, 1, 2, blueprint="conv", trunk="cnn", width_seeds=1)
    with pytest.raises(InvalidValue, match=r"model\.width_units.*0"):
        width_net(width_units=0)


class UserPairs(nn.Module):
    """A user's MLP whose first hidden layer can grow wider."""

    def __init__(self) -> None:
        super().__init__()
        self.pair = WidenablePair(nn.Linear(2, 6), nn.Linear(6, 2), units=4, config=SeedConfig(blend_steps=3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pair(x)


def test_a_users_layer_pair_grows_wider_and_fuses_to_two_plain_linear_layers():
    torch.manual_seed(0)
    model = UserPairs()
    result = kaslite.fit(model, xor(), config=QUICK)
    assert model.pair.seed.state is SeedState.ACTIVE and model.pair.seed.child.outer.weight.abs().sum() > 0
    assert [e["output_change"] for e in result.events if e["event"] == "seed_transition"] == [0.0] * 3
    fused = kaslite.fuse(model)
    assert isinstance(fused.pair, nn.Sequential)
    assert [(m.in_features, m.out_features) for m in fused.pair if isinstance(m, nn.Linear)] == [(2, 10), (10, 2)]
    x = torch.randn(9, 2)
    with torch.no_grad():
        assert torch.allclose(fused(x), model.eval()(x), atol=1e-6)
    dormant = UserPairs().eval()
    assert [m.out_features for m in kaslite.fuse(dormant).pair if isinstance(m, nn.Linear)] == [6, 2]


def test_a_pair_of_layers_that_do_not_connect_is_refused():
    with pytest.raises(InvalidValue, match=r"second\.in_features.*5.*first\.out_features \(6\)"):
        WidenablePair(nn.Linear(2, 6), nn.Linear(5, 2), units=4)


def conv_model() -> nn.Sequential:
    """A user's CNN whose first convolution can grow 5 channels."""
    first, second = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 6, 3, padding=1)
    pair = WidenableConvPair(first, second, 5, SeedConfig(blend_steps=20))
    return nn.Sequential(pair, nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, 2))


def test_a_users_conv_pair_grows_channels_exactly_and_fuses_to_two_plain_convolutions():
    torch.manual_seed(0)
    x = torch.randn(300, 1, 8, 8)
    y = (x[:, 0, :4].sum((1, 2)) > x[:, 0, 4:].sum((1, 2))).long()
    model = conv_model()
    seen: list = []

    class Events(Tracker):
        def on_seed_transition(self, event):
            seen.append(event)

        def on_growth_decision(self, event):
            seen.append(event)

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    grower = kaslite.Grower(
        model, "expand", threshold=0.0, patience=1, probe=x[250:], score_batch=(x[:128], y[:128]), trackers=[Events()]
    )
    for _ in range(12):
        model.train()
        for batch in torch.randperm(250).split(50):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
            grower.step()
        model.eval()
        with torch.no_grad():
            logits = model(x[250:])
        grower.epoch_end(val_loss=nn.functional.cross_entropy(logits, y[250:]).item())
    seed = model[0].seed
    assert seed.state is SeedState.ACTIVE and seed.child.outer.weight.abs().sum() > 0
    moves = [(e.to_state, e.output_change) for e in seen if hasattr(e, "output_change")]
    assert moves == [("training", 0.0), ("blending", 0.0), ("active", 0.0)]
    (candidate,) = next(e for e in seen if hasattr(e, "candidates")).candidates
    assert (candidate.kind, candidate.units) == ("width", 5) and candidate.gain > 0 and candidate.score > 0

    fused = kaslite.fuse(model)
    convs = [m for m in fused[0] if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 9), (9, 6)]
    with torch.no_grad():
        assert torch.allclose(fused(x), model(x), atol=1e-6)
    reloaded = conv_model()
    reloaded.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(reloaded.eval()(x), model(x))
    assert [m.out_channels for m in kaslite.fuse(conv_model())[0] if isinstance(m, nn.Conv2d)] == [4, 6]


@pytest.mark.parametrize(
    ("first", "second", "match"),
    [
        (nn.Conv2d(1, 4, 3, padding=1, stride=2), nn.Conv2d(4, 6, 3, padding=1), r"first.*must keep the spatial size"),
        (nn.Conv2d(1, 4, 2, padding=1), nn.Conv2d(4, 6, 3, padding=1), r"first.*an odd kernel"),
        (nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 6, 3, padding=0), r"second.*padding kernel_size // 2"),
        (nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(5, 6, 3, padding=1), r"second\.in_channels.*5.*\(4\)"),
    ],
)
def test_a_conv_pair_that_changes_the_size_or_does_not_connect_is_refused(first, second, match):
    with pytest.raises(InvalidValue, match=match):
        WidenableConvPair(first, second, units=3)
