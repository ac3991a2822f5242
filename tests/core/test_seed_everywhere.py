"""Seeds on every activation shape, under every dtype and autocast, and moved by ``.to()``."""

import pytest
import torch
from torch import nn

import kaslite
from kaslite.config import SeedConfig
from kaslite.nn import MorphogeneticNet, SentinelSeed
from kaslite.nn.blueprints import conv, mlp

QUICK = SeedConfig(blend_steps=3, buffer_size=16, progress_thresh=0.0, health_every=1)
SHAPES = {"vectors": (6, 8), "sequences": (6, 5, 8), "feature maps": (6, 8, 4, 4)}


def seed_for(shape: tuple[int, ...]) -> SentinelSeed:
    torch.manual_seed(0)
    child = conv(8) if len(shape) == 4 else mlp(8, 12)
    if len(shape) == 4:  # a branch that is not zero, so the child has something to learn in the shadow
        nn.init.normal_(child.outer.weight, std=0.1)
    return SentinelSeed(8, child, QUICK, seed_id="s").train()


def lifecycle(seed: SentinelSeed, x: torch.Tensor) -> list[torch.Tensor]:
    """Dormant step, germinate, shadow step, blend to the end, activate; the outputs along the way."""
    outs = [seed(x)]
    seed.observe()
    seed.germinate()
    outs.append(seed(x))
    seed.observe()
    assert seed.shadow_step() is not None
    seed.measure_progress()
    seed.start_blending()
    while True:
        outs.append(seed(x))
        seed.observe()
        if seed.advance_blend():
            break
    seed.activate()
    outs.append(seed(x))
    return outs


@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
def test_every_activation_shape_goes_through_the_lifecycle(shape):
    seed = seed_for(shape)
    x = torch.randn(shape)
    outs = lifecycle(seed, x)
    assert outs[0] is x and outs[1] is x  # dormant and shadow-training: the identity itself
    # Health is per feature (last axis) or per channel (axis 1 of a feature map).
    axis = 1 if len(shape) == 4 else len(shape) - 1
    rows = x.movedim(axis, -1).reshape(-1, 8)
    assert torch.allclose(seed.health_var, rows.var(dim=0, unbiased=False))
    with torch.no_grad():
        assert torch.equal(outs[-1], seed.child(x))  # active: exactly the child's output


@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
def test_the_reservoir_keeps_whole_samples(shape):
    seed = seed_for(shape)
    seed.germinate()
    seed(torch.randn(shape))
    seed.observe()
    assert seed.reservoir().shape == shape
    assert 0.0 <= seed.measure_progress() <= 1.0


def grow_through(model: nn.Module, batches, shadow_learns: bool = True, **autocast) -> kaslite.Grower:
    """Train ``model`` through germination → active of every seed, under ``autocast`` if given.

    ``shadow_learns``: each child's reconstruction loss starts above zero, so shadow training must
    change it before it blends (a residual child with a zero-initialised outer layer starts at zero)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    at_blend = BlendSnapshots()
    grower = kaslite.Grower(model, "periodic", period=1, trackers=[at_blend])
    at_blend.seeds = grower.seeds
    # progress_thresh=0 lets every seed blend as soon as it may: that shadow training taught its child
    # something by then (nothing else trains a child before it blends) is checked below.
    initial = {seed_id: [p.detach().clone() for p in seed.child.parameters()] for seed_id, seed in grower.seeds.items()}
    for _ in range(8):
        for x, y in batches:
            optimizer.zero_grad()
            with torch.autocast("cpu", **autocast) if autocast else torch.enable_grad():
                loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            grower.step()
        grower.epoch_end(val_loss=loss.item())
    assert {seed.state.value for seed in grower.seeds.values()} == {"active"}
    for seed_id, before in initial.items() if shadow_learns else ():
        moved = [not torch.equal(a, b) for a, b in zip(before, at_blend.children[seed_id], strict=True)]
        assert any(moved), f"{seed_id}: shadow training left its child as it was"
    return grower


class BlendSnapshots(kaslite.train.Tracker):
    """Each seed's child parameters at the moment it starts blending."""

    def __init__(self) -> None:
        self.seeds: dict = {}
        self.children: dict[str, list[torch.Tensor]] = {}

    def on_seed_transition(self, event) -> None:
        if event.to_state == "blending":
            self.children[event.seed_id] = [p.detach().clone() for p in self.seeds[event.seed_id].child.parameters()]


def tiny_net(**kwargs) -> MorphogeneticNet:
    torch.manual_seed(0)
    return MorphogeneticNet(2, 8, 2, 1, 2, blueprint_options={"hidden": 8}, seed_config=QUICK, **kwargs)


def batches(dtype=torch.float32, count=4):
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(16, 2, generator=g).to(dtype), torch.randint(0, 2, (16,), generator=g)) for _ in range(count)]


def test_float64_training():
    net = tiny_net().double()
    grower = grow_through(net, batches(torch.float64))
    for seed in grower.seeds.values():
        assert seed.health_var.dtype == torch.float64 and seed.blend_alpha.dtype == torch.float64
        assert all(p.dtype == torch.float64 for p in seed.child.parameters())


def test_bfloat16_autocast_training_grows_what_float32_training_grows():
    # The same run in float32 and under bf16 autocast: the seeds learn alike, to bf16's precision.
    full, mixed = tiny_net(), tiny_net()
    grow_through(full, batches())
    grow_through(mixed, batches(), dtype=torch.bfloat16)
    x = batches(count=1)[0][0]
    with torch.no_grad():
        torch.testing.assert_close(mixed.eval()(x), full.eval()(x), rtol=0.05, atol=0.05)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            in_bf16 = mixed(x)
    assert in_bf16.dtype == torch.bfloat16 and bool(torch.isfinite(in_bf16).all())


def test_bfloat16_weights_training():
    net = tiny_net().to(torch.bfloat16)
    grower = grow_through(net, batches(torch.bfloat16))
    assert all(seed.health_var.dtype == torch.bfloat16 for seed in grower.seeds.values())


def test_a_cnn_trunk_grows_conv_seeds():
    torch.manual_seed(0)
    net = MorphogeneticNet(1, 4, 2, 1, 3, blueprint="conv", seed_config=QUICK, trunk="cnn")
    g = torch.Generator().manual_seed(0)
    images = [(torch.randn(8, 1, 6, 6, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(3)]
    grower = grow_through(net, images, shadow_learns=False)
    # The zero-initialised branches learned from the task once blended in.
    assert all(seed.child.outer.weight.abs().sum() > 0 for seed in grower.seeds.values())


def test_a_blueprint_that_does_not_fit_the_trunk_is_refused():
    with pytest.raises(kaslite.errors.InvalidValue, match=r"model\.blueprint = 'mlp': does not fit the cnn trunk"):
        MorphogeneticNet(1, 4, 1, 1, 2, blueprint="mlp", trunk="cnn")


def test_to_moves_every_buffer_training_state_included():
    net = tiny_net()
    grower = kaslite.Grower(net, "periodic", period=1)
    grower.epoch_end(val_loss=1.0)  # germinates seed1_1
    net.train()(torch.randn(16, 2))
    grower.step()  # fills its reservoir, allocates its shadow moments
    seed = grower.seeds["seed1_1"]
    names = {name for name, _ in seed.named_buffers()}
    assert {"reservoir_data", "shadow_exp_avg_0", "health_var", "blend_alpha"} <= names
    net.to("meta")
    assert all(buffer.device.type == "meta" for buffer in net.buffers())
    assert seed.reservoir_data is not None and seed.reservoir_data.device.type == "meta"


def test_an_in_place_op_after_the_seed_cannot_rewrite_what_it_learns():
    """ReLU(inplace=True) right after a seed: health and reservoir see the seed's input, negatives included."""
    torch.manual_seed(0)
    config = SeedConfig(health_every=1, buffer_size=64)
    seed = SentinelSeed(4, config=config, seed_id="s")
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), seed, torch.nn.ReLU(inplace=True), torch.nn.Linear(4, 2))
    x = torch.randn(16, 3)
    before = model[0](x).detach()
    assert (before < 0).any()
    model(x)  # dormant: the batch feeds the health
    seed.observe()
    torch.testing.assert_close(seed.health_mean, before.mean(0))
    seed.germinate()  # shadow-training: every batch goes to the reservoir
    model(x)
    seed.observe()
    torch.testing.assert_close(seed.reservoir(), before)


def test_the_reservoir_is_bounded_in_bytes_and_progress_is_measured_in_chunks(monkeypatch):
    import kaslite.nn.seed as seed_module

    torch.manual_seed(0)
    # (4, 16, 16) float maps are 4 KiB a sample: 0.25 MiB holds 64 of them, not buffer_size's 2,048.
    seed = SentinelSeed(4, config=SeedConfig(buffer_size=2048, buffer_mb=0.25), blueprint="conv").train()
    nn.init.normal_(seed.child.outer.weight, std=0.1)  # not an identity: it learns in the shadow
    seed.germinate()
    batches = [torch.randn(32, 4, 16, 16) for _ in range(3)]
    for batch in batches:
        seed(batch)
        seed.observe()
    assert tuple(seed.reservoir_data.shape) == (64, 4, 16, 16) and seed.reservoir().shape[0] == 64
    assert {tuple(row.flatten()[:3].tolist()) for row in seed.reservoir()} == {
        tuple(row.flatten()[:3].tolist()) for row in torch.cat(batches[1:])
    }  # the latest 64 samples
    with torch.no_grad():
        seed.child.outer.weight.normal_(0, 0.1)  # a child that reproduces its input only in part
    monkeypatch.setattr(seed_module, "PROGRESS_CHUNK", 7)
    chunked = seed.measure_progress()
    monkeypatch.setattr(seed_module, "PROGRESS_CHUNK", 1 << 30)
    assert 0.0 < chunked < 1.0 and chunked == pytest.approx(seed.measure_progress(), abs=1e-6)
