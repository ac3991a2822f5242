"""kaslite.fuse: a grown model as plain modules, equal in output, exportable."""

import pytest
import torch
from torch import nn

import kaslite
from kaslite.config import SeedConfig
from kaslite.nn import MorphogeneticNet, SentinelSeed

from .user_model import UserNet


def activate(seed: SentinelSeed) -> None:
    seed.germinate()
    seed.start_blending()
    while not seed.advance_blend():
        pass
    seed.activate()


def grown_net(**kwargs) -> MorphogeneticNet:
    """Every state at once: active, mid-blend, shadow-training, culled and dormant seeds, two per slot."""
    torch.manual_seed(0)
    net = MorphogeneticNet(3, 8, 3, 2, 4, blueprint_options={"hidden": 8}, seed_config=SeedConfig(blend_steps=4))
    seeds = net.seeds
    activate(seeds["seed1_1"])
    activate(seeds["seed3_2"])
    seeds["seed1_2"].germinate()
    seeds["seed1_2"].start_blending()
    seeds["seed1_2"].advance_blend()  # alpha 0.25
    seeds["seed2_1"].germinate()  # shadow-training: still the identity
    activate(seeds["seed2_2"])
    seeds["seed2_2"].cull()
    with torch.no_grad():  # give the children some weight so every branch matters
        for seed in seeds.values():
            for p in seed.child.parameters():
                p.add_(0.1 * torch.randn_like(p))
    return net.eval()


def test_the_fused_network_computes_the_same_function():
    net = grown_net()
    fused = kaslite.fuse(net)
    assert isinstance(fused, nn.Sequential) and not fused.training
    assert not [m for m in fused.modules() if isinstance(m, SentinelSeed)]
    x = torch.randn(32, 3)
    with torch.no_grad():
        assert (fused(x) - net(x)).abs().max() <= 1e-6
    # Fewer parameters: dormant, shadow-training and culled children are gone.
    assert sum(p.numel() for p in fused.parameters()) < sum(p.numel() for p in net.parameters())
    assert net.seeds["seed1_1"].state.value == "active"  # the grown model is untouched


def test_active_seeds_fuse_bit_for_bit():
    torch.manual_seed(0)
    net = MorphogeneticNet(3, 8, 2, 1, 4, blueprint_options={"hidden": 8}).eval()
    for seed in net.seeds.values():
        activate(seed)
    x = torch.randn(16, 3)
    with torch.no_grad():
        assert torch.equal(kaslite.fuse(net)(x), net(x))


def test_a_user_module_keeps_its_class_with_seeds_replaced():
    model = UserNet().eval()
    activate(model.grow_a)
    fused = kaslite.fuse(model)
    assert isinstance(fused, UserNet)
    assert isinstance(fused.grow_b, nn.Identity) and not isinstance(fused.grow_a, SentinelSeed)
    x = torch.randn(8, 2)
    with torch.no_grad():
        assert torch.equal(fused(x), model(x))


def test_fuse_ignores_batches_a_training_forward_left_behind():
    model = UserNet()
    activate(model.grow_a)
    model.train()(torch.randn(4, 2)).sum().backward()  # the seeds keep the batch they saw
    fused = kaslite.fuse(model)
    x = torch.randn(8, 2)
    with torch.no_grad():
        assert torch.equal(fused(x), model.eval()(x))


@pytest.fixture
def fused_and_input():
    net = grown_net()
    return kaslite.fuse(net), torch.randn(10, 3), net


def test_torch_export(fused_and_input):
    fused, x, net = fused_and_input
    program = torch.export.export(fused, (x,))
    with torch.no_grad():
        assert (program.module()(x) - net(x)).abs().max() <= 1e-6


def test_torchscript(fused_and_input, tmp_path):
    fused, x, net = fused_and_input
    torch.jit.save(torch.jit.script(fused), tmp_path / "fused.pt")
    scripted = torch.jit.load(tmp_path / "fused.pt")
    with torch.no_grad():
        assert (scripted(x) - net(x)).abs().max() <= 1e-6


def test_onnx_checked_with_onnxruntime(fused_and_input, tmp_path):
    import onnxruntime

    fused, x, net = fused_and_input
    torch.onnx.export(fused, (x,), tmp_path / "fused.onnx", input_names=["x"], dynamo=True)
    session = onnxruntime.InferenceSession(str(tmp_path / "fused.onnx"))
    (out,) = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        assert abs(out - net(x).numpy()).max() <= 1e-6


def test_a_cnn_trunk_fuses_too():
    torch.manual_seed(0)
    net = MorphogeneticNet(1, 4, 2, 1, 3, blueprint="conv", trunk="cnn").eval()
    activate(net.seeds["seed2_1"])
    with torch.no_grad():
        net.seeds["seed2_1"].child.outer.weight.normal_()
    x = torch.randn(5, 1, 8, 8)
    fused = kaslite.fuse(net)
    with torch.no_grad():
        assert torch.equal(fused(x), net(x))
    scripted = torch.jit.script(fused)
    with torch.no_grad():
        assert torch.equal(scripted(x), net(x))
