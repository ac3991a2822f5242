"""Torch threads for training: one thread against every thread torch would use, per network size.

For each network (kaslite's default trunk at several widths) and batch size,
optimizer steps are timed on one thread and on all of them, interleaved round
by round in this process so machine noise hits both alike. The ratio is the
median step time on all threads ÷ the median on one: above 1, one thread is
faster. The last column is what ``train.threads = 0`` (automatic) picks,
:func:`kaslite.train.threads.auto_threads`. The machine's load average is
printed too: threads that share busy cores wait on each other, so run it on an
idle machine for the threshold and on a busy one to see why it is cautious.

    python bench/threads.py [--json] [--rounds 7] [--steps 100]
"""

import argparse
import json
import os
import statistics
import time

import attrs
import torch
from torch import nn

from kaslite.config import ExperimentConfig
from kaslite.train.threads import auto_threads
from kaslite.train.trainer import build_net, default_optimizer

SIZES = [(16, 32), (64, 32), (64, 256), (256, 32), (256, 256), (1024, 32), (1024, 256)]  # (hidden_dim, batch)


def stepper(hidden: int, batch: int) -> tuple[int, "object"]:
    """(parameters, a function running ``steps`` optimizer steps and returning seconds per step)."""
    config = ExperimentConfig()
    config = attrs.evolve(config, model=attrs.evolve(config.model, hidden_dim=hidden))
    torch.manual_seed(0)
    net = build_net(config, input_dim=2, num_classes=2)
    optimizer = default_optimizer(net.parameters(), 1e-3, torch.device("cpu"))  # as the trainer steps
    loss_fn = nn.CrossEntropyLoss()
    x, y = torch.randn(batch, 2), torch.randint(0, 2, (batch,))

    def run(steps: int) -> float:
        started = time.perf_counter()
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            loss_fn(net(x), y).backward()
            optimizer.step()
        return (time.perf_counter() - started) / steps

    return sum(p.numel() for p in net.parameters()), run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    available = torch.get_num_threads()
    rows = []
    for hidden, batch in SIZES:
        params, run = stepper(hidden, batch)
        times: dict[int, list[float]] = {1: [], available: []}
        for _ in range(args.rounds):
            for threads in times:
                torch.set_num_threads(threads)
                run(max(1, args.steps // 10))  # warm the pool at this size
                times[threads].append(run(args.steps))
        one, every = statistics.median(times[1]), statistics.median(times[available])
        rows.append(
            {
                "hidden_dim": hidden,
                "batch": batch,
                "params": params,
                "one_thread_ms": round(one * 1e3, 3),
                f"{available}_threads_ms": round(every * 1e3, 3),
                "ratio": round(every / one, 2),
                "auto": auto_threads(params, batch, available),
            }
        )
    torch.set_num_threads(available)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    if args.json:
        print(json.dumps({"threads": available, "load_average": load, "rows": rows}, indent=2))
        return
    print(f"{available} threads available, load average {load:.2f}")
    many = f"{available} threads ms"
    print(f"{'hidden':>6} {'batch':>5} {'params':>9} {'1 thread ms':>11} {many:>13} {'ratio':>6} auto")
    for row in rows:
        print(
            f"{row['hidden_dim']:>6} {row['batch']:>5} {row['params']:>9} {row['one_thread_ms']:>11} "
            f"{row[f'{available}_threads_ms']:>13} {row['ratio']:>6} {row['auto']}"
        )


if __name__ == "__main__":
    main()
