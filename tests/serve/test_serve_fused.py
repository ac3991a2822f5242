"""The server predicts with the grown network fused into plain layers, and still reports its seeds."""

import time

import torch

from kaslite.models import LoadedModel
from kaslite.nn import MorphogeneticNet, SentinelSeed
from kaslite_serve.holder import ServedModel


def grown_net() -> MorphogeneticNet:
    torch.manual_seed(0)
    net = MorphogeneticNet(3, 8, 2, 1, 4, blueprint_options={"hidden": 8})
    seed = net.seeds["seed1_1"]
    seed.germinate()
    seed.start_blending()
    while not seed.advance_blend():
        pass
    seed.activate()
    net.seeds["seed2_1"].germinate()
    return net.eval()


def test_the_served_network_is_the_fused_one():
    net = grown_net()
    served = ServedModel.prepare(LoadedModel(net=net, metadata={}, uri="file:///m.pt"), time.perf_counter())
    assert not [m for m in served.net.modules() if isinstance(m, SentinelSeed)]
    assert (served.input_dim, served.num_classes) == (3, 4)
    x = torch.randn(16, 3)
    classes, probabilities = served.predict(x)
    with torch.no_grad():
        expected = torch.softmax(net(x), dim=1)
    assert (classes == expected.argmax(dim=1).numpy()).all()
    assert abs(probabilities - expected.numpy()).max() <= 1e-6
    assert served.seeds() == {
        "seed1_1": {"state": "active", "alpha": 1.0},
        "seed2_1": {"state": "training", "alpha": 0.0},
    }
