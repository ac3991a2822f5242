"""Overhead of kaslite's seeds on a training step, as a ratio against a plain MLP.

Times optimizer steps of ``MorphogeneticNet`` (every seed dormant, then one
seed active) and of an ``nn.Sequential`` MLP with the same trunk, on the same
batches, interleaved round by round in one single-threaded process so machine
noise hits both alike. Ratios are time per step of kaslite ÷ plain (median of
rounds). Target: dormant_ratio ≤ 1.10.

    python bench/overhead.py [--json] [--rounds 15] [--steps 200]
"""

import argparse
import json
import statistics
import time

import torch
from torch import nn

from kaslite.config import SeedConfig
from kaslite.nn import MorphogeneticNet


def plain_mlp(net: MorphogeneticNet) -> nn.Sequential:
    """The same trunk as ``net`` without seed slots, with a copy of its weights."""
    layers: list[nn.Module] = [nn.Linear(net.input_dim, net.hidden_dim), nn.ReLU()]
    for _ in range(net.num_layers):
        layers += [nn.Linear(net.hidden_dim, net.hidden_dim), nn.ReLU()]
    layers.append(nn.Linear(net.hidden_dim, net.num_classes))
    mlp = nn.Sequential(*layers)
    trunk = [net.input_layer, *net.blocks, net.head]
    linears = [m for m in mlp if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for src, dst in zip(trunk, linears, strict=True):
            dst.weight.copy_(src.weight)
            dst.bias.copy_(src.bias)
    return mlp


def make_stepper(model: nn.Module, params: list[nn.Parameter], batches: list[tuple[torch.Tensor, torch.Tensor]]):
    optimizer = torch.optim.Adam(params, lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    model.train()

    def run(steps: int) -> float:
        started = time.perf_counter()
        for i in range(steps):
            x, y = batches[i % len(batches)]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            optimizer.step()
        return (time.perf_counter() - started) / steps

    return run


def ratio(kaslite_step, plain_step, rounds: int, steps: int) -> float:
    kaslite_step(steps), plain_step(steps)  # warm-up
    k_times, p_times = [], []
    for _ in range(rounds):
        p_times.append(plain_step(steps))
        k_times.append(kaslite_step(steps))
    return statistics.median(k_times) / statistics.median(p_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    batches = [
        (
            torch.randn(args.batch_size, 2, generator=generator),
            torch.randint(2, (args.batch_size,), generator=generator),
        )
        for _ in range(16)
    ]
    net = MorphogeneticNet(2, 16, 2, 1, 2, seed_config=SeedConfig(blend_steps=1))
    plain = plain_mlp(net)
    dormant = ratio(
        make_stepper(net, net.trunk_parameters(), batches),
        make_stepper(plain, list(plain.parameters()), batches),
        args.rounds,
        args.steps,
    )

    active_net = MorphogeneticNet(2, 16, 2, 1, 2, seed_config=SeedConfig(blend_steps=1))
    seed = active_net.seeds["seed1_1"]
    seed.germinate()
    seed.start_blending()
    seed.advance_blend()
    seed.activate()
    active_plain = plain_mlp(active_net)
    active = ratio(
        make_stepper(active_net, [*active_net.trunk_parameters(), *seed.child.parameters()], batches),
        make_stepper(active_plain, list(active_plain.parameters()), batches),
        args.rounds,
        args.steps,
    )
    result = {"dormant_ratio": round(dormant, 3), "active_ratio": round(active, 3)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"time per training step, kaslite ÷ plain MLP (batch {args.batch_size}, 1 thread):")
        print(f"  every seed dormant: {dormant:.3f}  (target ≤ 1.10)")
        print(f"  one seed active:    {active:.3f}")


if __name__ == "__main__":
    main()
