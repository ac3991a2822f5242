"""Growth under torch.compile: a few recompiles per seed transition, never one per step."""

import torch
from torch import nn
from torch._dynamo.utils import counters

import kaslite
from kaslite.config import SeedConfig
from kaslite.nn import MorphogeneticNet

STEPS_PER_EPOCH = 6


def grow_compiled(net: MorphogeneticNet, epochs: int) -> tuple[nn.Module, torch.Tensor, list[int], int]:
    """Train ``torch.compile(net)`` with a periodic Grower (period 2) on random data from a fresh
    dynamo cache: the compiled model, a validation batch, the unique graphs after each epoch, and
    the transitions epoch_end made."""
    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(net)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    grower = kaslite.Grower(net, "periodic", period=2)
    g = torch.Generator().manual_seed(0)
    x_val, y_val = torch.randn(32, 2, generator=g), torch.randint(0, 2, (32,), generator=g)
    graphs_per_epoch, transitions = [], 0
    for _ in range(epochs):
        compiled.train()
        for _ in range(STEPS_PER_EPOCH):
            x, y = torch.randn(16, 2, generator=g), torch.randint(0, 2, (16,), generator=g)
            optimizer.zero_grad()
            nn.functional.cross_entropy(compiled(x), y).backward()
            optimizer.step()
            grower.step()
        compiled.eval()
        with torch.no_grad():
            val_loss = nn.functional.cross_entropy(compiled(x_val), y_val).item()
        transitions += len(grower.epoch_end(val_loss=val_loss))
        graphs_per_epoch.append(counters["stats"]["unique_graphs"])
    return compiled, x_val, graphs_per_epoch, transitions


def test_a_compiled_run_recompiles_only_at_transitions():
    torch.manual_seed(0)
    config = SeedConfig(blend_steps=4, buffer_size=32, progress_thresh=0.0)
    net = MorphogeneticNet(2, 8, 2, 1, 2, blueprint_options={"hidden": 8}, seed_config=config)
    compiled, x_val, graphs_per_epoch, transitions = grow_compiled(net, epochs=10)
    active = [seed.state.value for seed in net.seeds.values()]
    assert active == ["active", "active"]
    transitions += 2  # the two activations happen inside grower.step()
    assert transitions == 6
    graphs = counters["stats"]["unique_graphs"]
    # A graph per mode and state the seeds pass through together: in training (none shadow-training
    # or in use, seed 1 shadow-training, seed 1 in use, + seed 2 shadow-training, both in use) and in
    # eval (no child, one, both in use): 8 for the whole run, each compiled once, none falling back.
    assert graphs == 8, (graphs, transitions, graphs_per_epoch)
    assert torch._dynamo.config.recompile_limit >= 4 * 2 + 8  # the Grower made room for them
    assert counters["frames"]["total"] == counters["frames"]["ok"] == graphs
    assert graphs_per_epoch[-4:] == [graphs] * 4  # settled: nothing recompiles while nothing changes
    # And the compiled model computes what the eager one does.
    with torch.no_grad():
        assert torch.allclose(compiled(x_val), net(x_val), atol=1e-5)


def test_a_compiled_wide_seed_grows_with_a_few_graphs_and_agrees_with_eager():
    torch.manual_seed(0)
    net = MorphogeneticNet(2, 8, 1, 0, 2, seed_config=SeedConfig(blend_steps=4), wide_seeds=1, wide_units=6)
    compiled, x_val, graphs_per_epoch, _ = grow_compiled(net, epochs=8)
    assert net.seeds["wide_1"].state.value == "active"
    assert net.wide[0].child.outer.weight.abs().sum() > 0  # the task loss grew the branch
    # Training: dormant, germinated (its batches kept for observe()), in use; eval: dormant, in use.
    # The bound the README gives, 3 per seed + 2, and none per step.
    assert counters["stats"]["unique_graphs"] == 5, graphs_per_epoch
    assert graphs_per_epoch[-3:] == [graphs_per_epoch[-1]] * 3
    assert counters["frames"]["total"] == counters["frames"]["ok"]
    with torch.no_grad():
        assert torch.allclose(compiled(x_val), net(x_val), atol=1e-5)


def test_compiled_width_growth_costs_a_few_graphs_and_agrees_with_eager():
    torch.manual_seed(0)
    # One width seed in the input layer and one in the hidden layer: two growths of 4 units.
    net = MorphogeneticNet(2, 8, 1, 0, 2, seed_config=SeedConfig(blend_steps=4), width_seeds=1, width_units=4)
    compiled, x_val, graphs_per_epoch, _ = grow_compiled(net, epochs=10)
    assert [seed.state.value for seed in net.seeds.values()] == ["active", "active"]
    # As a deep or wide seed does, each width seed adds a training graph when germinated and when its
    # units come into use, and an eval graph once in use: the README's bound, 3 per seed + 2.
    assert counters["stats"]["unique_graphs"] == 3 * 2 + 2, graphs_per_epoch
    assert graphs_per_epoch[-3:] == [graphs_per_epoch[-1]] * 3
    assert counters["frames"]["total"] == counters["frames"]["ok"]
    with torch.no_grad():
        assert torch.allclose(compiled(x_val), net(x_val), atol=1e-5)


def test_an_in_place_op_after_a_seed_is_seen_alike_eager_and_compiled():
    """ReLU(inplace=True) after a seed: eager and compiled learn the same health and reservoir, from the
    seed's input (negatives included), on the same batches."""

    def model() -> nn.Module:
        torch.manual_seed(0)
        seed = kaslite.nn.SentinelSeed(4, config=SeedConfig(health_every=1, buffer_size=64), seed_id="s")
        return nn.Sequential(nn.Linear(3, 4), seed, nn.ReLU(inplace=True), nn.Linear(4, 2))

    torch._dynamo.reset()
    learnt = []
    for compile_it in (False, True):
        net = model()
        net[1].germinate()  # shadow-training: every batch goes to the reservoir
        run = torch.compile(net) if compile_it else net
        g = torch.Generator().manual_seed(1)
        for _ in range(3):
            run(torch.randn(16, 3, generator=g)).sum().backward()
            net[1].observe()
        learnt.append((net[1].reservoir().clone(), net[1].health_mean.clone(), net[1].health_var.clone()))
    (eager, compiled) = learnt
    assert (eager[0] < 0).any()  # the seed's input, not the ReLU's output
    for a, b in zip(eager, compiled, strict=True):
        torch.testing.assert_close(a, b)
