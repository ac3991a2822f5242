"""Overhead of kaslite's seeds, as ratios against plain PyTorch networks in the same process.

Training steps (each followed by ``grower.step()`` as in a user's loop, one
optimizer over every parameter, kaslite's fused Adam for both sides):

- ``dormant_ratio`` (and ``cnn_``, ``compiled_``): every seed dormant, against
  an ``nn.Sequential`` of the same trunk;
- ``active_vs_fused_ratio``: kaslite's default network with every seed grown,
  against ``kaslite.fuse`` of it trained as a plain module (the same function,
  so the same arithmetic: what is left is kaslite's overhead);
- ``shadow_ratio``: the same while one seed shadow-trains, against the fused
  network (where that seed is not yet part of the function). The default
  network's seeds have nothing to learn in the shadow (their zero branches
  already reproduce their input), so this one is the same network with the
  ``mlp`` blueprint, a child that learns its slot's activations;
- ``blend_ratio``: the same while one seed blends in, halfway (α = 0.5) and
  with a branch that is not zero, as after a few steps of training (fused at
  α = 0, or with its zero branch, the seed would be an identity and leave the
  fused network, which would then not compute the same function).

``run_ratio``: a whole default ``kaslite.fit`` run (its process time) against
training the fused final network from scratch for the same epochs and batches,
with the same optimizer, schedule and validation each epoch.

Inference: ``kaslite.fuse`` of a fully grown network against the equivalent
plain ``nn.Sequential`` built by hand, at batch 1 and 64. Each pair of steps
is timed interleaved, round by round, single-threaded, so machine noise hits
both alike; a ratio is the median time of kaslite ÷ the median time of plain.
Targets: dormant ≤ 1.05, active_vs_fused ≤ 1.10, shadow ≤ 1.30, blend ≤ 1.20,
run ≤ 1.25, inference ≤ 1.05.

    python bench/overhead.py [--json] [--rounds 15] [--steps 200] [--no-run]
"""

import argparse
import copy
import json
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

import kaslite
from kaslite.config import SeedConfig, build_config
from kaslite.nn import MorphogeneticNet
from kaslite.train.trainer import build_net, default_optimizer

Batches = list[tuple[torch.Tensor, torch.Tensor]]
TARGETS = {
    "dormant_ratio": 1.05,
    "cnn_dormant_ratio": 1.05,
    "compiled_dormant_ratio": 1.05,
    "active_vs_fused_ratio": 1.10,
    "shadow_ratio": 1.30,
    "blend_ratio": 1.20,
    "run_ratio": 1.25,
    "inference_ratio_b1": 1.05,
    "inference_ratio_b64": 1.05,
}


def plain_copy(net: MorphogeneticNet) -> nn.Sequential:
    """The same trunk as ``net`` without seed slots, with a copy of its weights."""
    layers: list[nn.Module] = [net.input_layer, nn.ReLU()]
    for block in net.blocks:
        layers += [block, nn.ReLU()]
    if net.pool is not None:
        layers.append(net.pool)
    return copy.deepcopy(nn.Sequential(*layers, net.head))


def train_stepper(model: nn.Module, batches: Batches, grower: kaslite.Grower | None) -> Callable[[int], float]:
    optimizer = default_optimizer(model.parameters(), 1e-3, torch.device("cpu"))
    loss_fn = nn.CrossEntropyLoss()
    model.train()

    def run(steps: int) -> float:
        started = time.perf_counter()
        for i in range(steps):
            x, y = batches[i % len(batches)]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            optimizer.step()
            if grower is not None:
                grower.step()
        return (time.perf_counter() - started) / steps

    return run


def inference_stepper(model: nn.Module, x: torch.Tensor) -> Callable[[int], float]:
    model.eval()

    @torch.inference_mode()
    def run(steps: int) -> float:
        started = time.perf_counter()
        for _ in range(steps):
            model(x)
        return (time.perf_counter() - started) / steps

    return run


def ratio(kaslite_step: Callable[[int], float], plain_step: Callable[[int], float], rounds: int, steps: int) -> float:
    kaslite_step(steps), plain_step(steps)  # warm-up (and compilation)
    k_times, p_times = [], []
    for _ in range(rounds):
        p_times.append(plain_step(steps))
        k_times.append(kaslite_step(steps))
    return statistics.median(k_times) / statistics.median(p_times)


def make_batches(shape: tuple[int, ...], classes: int, batch_size: int) -> Batches:
    g = torch.Generator().manual_seed(0)
    return [
        (torch.randn(batch_size, *shape, generator=g), torch.randint(classes, (batch_size,), generator=g))
        for _ in range(16)
    ]


def grown(net: MorphogeneticNet) -> MorphogeneticNet:
    for seed in net.seeds.values():
        seed.germinate()
        seed.start_blending()
        while not seed.advance_blend():
            pass
        seed.activate()
    return net


def default_net(blueprint: str = "residual", **seeds: int) -> MorphogeneticNet:
    """kaslite's default network (``kaslite run``'s: deep, width and wide seeds) for 2 features and
    2 classes, its deep seeds growing ``blueprint``; ``seeds`` overrides its SeedConfig."""
    return build_net(build_config({"model": {"blueprint": blueprint}, "seeds": seeds}), 2, 2)


def versus_fused(net: MorphogeneticNet, batches: Batches, rounds: int, steps: int) -> float:
    """A training step of ``net`` as it stands, against one of ``kaslite.fuse(net)`` as a plain module."""
    return ratio(
        train_stepper(net, batches, kaslite.Grower(net, "never")),
        train_stepper(kaslite.fuse(net), batches, None),
        rounds,
        steps,
    )


def run_ratio() -> float:
    """A default ``kaslite.fit`` run's process time ÷ that of training its fused final network from
    scratch for the same epochs and batches (same optimizer, clipping, schedule, validation each epoch)."""
    from kaslite.train.data import TensorBatches, load_split

    kaslite.fit(config={"train": {"warm_up_epochs": 1, "adaptation_epochs": 0}})  # one-off imports
    config = build_config()
    started = time.process_time()
    result = kaslite.fit(config=config)
    grown_s = time.process_time() - started

    torch.manual_seed(0)
    plain = kaslite.fuse(result.model)
    for module in plain.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    split = load_split(config.data, config.train.seed, torch.device("cpu"))
    batches = TensorBatches(split, config.train.batch_size, config.train.seed)
    epochs = config.train.warm_up_epochs + config.train.adaptation_epochs
    started = time.process_time()
    params = list(plain.parameters())
    optimizer = default_optimizer(params, config.train.lr, torch.device("cpu"))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        plain.train()
        for x, y in batches.train():
            optimizer.zero_grad(set_to_none=True)
            loss_fn(plain(x), y).backward()
            if config.train.grad_clip:  # as the trainer does
                nn.utils.clip_grad_norm_(params, config.train.grad_clip, foreach=True)
            optimizer.step()
        scheduler.step()
        plain.eval()
        with torch.no_grad():
            for x, y in batches.val():
                loss_fn(plain(x), y).item()
    return grown_s / (time.process_time() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--no-run", dest="run", action="store_false", help="skip run_ratio (a 30 s default run)")
    args = parser.parse_args()
    rounds, steps = args.rounds, args.steps

    torch.set_num_threads(1)
    torch.manual_seed(0)
    quick = SeedConfig(blend_steps=1)
    vectors = make_batches((2,), 2, args.batch_size)
    images = make_batches((1, 8, 8), 10, args.batch_size)

    def mlp_net() -> MorphogeneticNet:
        return MorphogeneticNet(2, 16, 2, 1, 2, seed_config=quick)

    def cnn_net() -> MorphogeneticNet:
        return MorphogeneticNet(1, 8, 2, 1, 10, blueprint="conv", seed_config=quick, trunk="cnn")

    result: dict[str, float] = {}
    for name, make, batches in (("dormant_ratio", mlp_net, vectors), ("cnn_dormant_ratio", cnn_net, images)):
        net = make()
        result[name] = ratio(
            train_stepper(net, batches, kaslite.Grower(net, "never")),
            train_stepper(plain_copy(net), batches, None),
            rounds,
            steps,
        )
    # The default network against its own fused form: every seed grown; one seed shadow-training;
    # one seed blending in (slowly enough to stay mid-blend while it is timed).
    result["active_vs_fused_ratio"] = versus_fused(grown(default_net()), vectors, rounds, steps)
    net = default_net("mlp")
    net.seeds["seed1_1"].germinate()
    assert net.seeds["seed1_1"].shadow_trains()
    result["shadow_ratio"] = versus_fused(net, vectors, rounds, steps)
    net = default_net(blend_steps=10**9)
    blending = net.seeds["seed1_1"]
    blending.germinate()
    blending.start_blending()
    blending._set_blend_step(10**9 // 2)  # α = 0.5: it stays about there while it is timed
    torch.nn.init.normal_(blending.child.outer.weight, std=0.1)
    result["blend_ratio"] = versus_fused(net, vectors, rounds, steps)
    # Compiled: the graphs are built in the warm-up, then steps are timed as above.
    net = mlp_net()
    result["compiled_dormant_ratio"] = ratio(
        train_stepper(torch.compile(net), vectors, kaslite.Grower(net, "never")),
        train_stepper(torch.compile(plain_copy(net)), vectors, None),
        rounds,
        steps,
    )
    # Inference: the fused grown network against the plain network a user would write by hand
    # (the trunk's layers with each grown child in its slot's place).
    unfused = grown(MorphogeneticNet(2, 16, 2, 1, 2, blueprint_options={"hidden": 32}))
    fused = kaslite.fuse(unfused)
    layers: list[nn.Module] = [unfused.input_layer, nn.ReLU()]
    for block, slot in zip(unfused.blocks, unfused.slots, strict=True):
        layers += [block, nn.ReLU(), slot._seed_list[0].child]
    by_hand = copy.deepcopy(nn.Sequential(*layers, unfused.head))
    for batch in (1, 64):
        x = torch.randn(batch, 2)
        result[f"inference_ratio_b{batch}"] = ratio(
            inference_stepper(fused, x), inference_stepper(by_hand, x), rounds, steps * 5
        )
        # For reference: the grown network as it trains, seeds and all, against the same plain layers.
        result[f"unfused_inference_ratio_b{batch}"] = ratio(
            inference_stepper(unfused, x), inference_stepper(by_hand, x), rounds, steps * 5
        )
    if args.run:
        result["run_ratio"] = run_ratio()
    result = {key: round(value, 3) for key, value in result.items()}
    if args.json:
        print(json.dumps(result))
        return
    print(f"time per step, kaslite ÷ plain (batch {args.batch_size} for training, 1 thread):")
    for key, value in result.items():
        target = f" (target ≤ {TARGETS[key]:.2f})" if key in TARGETS else ""
        print(f"  {key:24s} {value:.3f}{target}")


if __name__ == "__main__":
    main()
