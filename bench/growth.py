"""Does growth pay? kaslite's grown networks against the networks a user would train instead.

Every arm of a (task, seed) trains on the identical tensors, with the same
optimiser (Adam at kaslite's default lr), batch size and total epochs:

  grown               kaslite's defaults: the small trunk, seeds grown by the kasmina policy
  periodic            the same trunk, a seed germinated every `period` epochs
  never               the trunk alone
  from-scratch        the architecture `grown` reached, trained as a static network from epoch 0
  static-wide         a plain 128×3 MLP
  static-same-params  the best plain MLP of a fixed family of shapes within the grown network's
                      parameter count (chosen on seeds 10-19, reported on 0-9; see --select)
  gromo               gromo 0.1.0's GrowingMLP grown with TINY (bench/gromo_arm.py), where installed

Tasks: spirals-hard is the original design's problem as an outside evaluator drew it (two
spirals, radius = angle, 4 turns, 2000 points, noise 0.25, class 1 = class 0 negated, one extra
N(0, 1) input, standardised on the train split); spirals-default is `kaslite run`'s problem;
digits is scikit-learn's 8×8 digits, grown in width; moons, clusters and spheres are easy
problems on which growth must do no harm. Defaults (the residual blueprint, one wide seed) and
the task settings were chosen on seeds 10-19; figures are reported on seeds 0-9.

Writes bench/results/growth.json (one record per task, arm and seed), growth.md (the table),
growth-pareto.png (val acc against parameters, a marker per arm and seed).

    python bench/growth.py --jobs 2                 # seeds 0-9, every task and arm but digits-cnn
    python bench/growth.py --tasks digits-cnn --jobs 2   # the CNN on digits (seeds 0-4); other tasks' rows kept
    python bench/growth.py --select --jobs 2        # re-choose static-same-params' shapes (seeds 10-19)
"""

import argparse
import json
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
SHAPES_FILE = RESULTS / "growth-shapes.json"
REPORT_SEEDS = list(range(10))
SELECTION_SEEDS = list(range(10, 20))

# Each task: the dataset, whether to standardise features on the train split, and what it
# overrides of kaslite's default experiment (a small trunk where the default is too small for it).
TASKS: dict[str, dict[str, Any]] = {
    "spirals-hard": {
        "data": {
            "problem": "spirals",
            "params": {
                "rotations": 4.0,
                "n_samples": 2000,
                "noise": 0.25,
                "input_dim": 3,
                "mirror": True,
                "extra_std": 1.0,
            },
        },
        "standardize": True,
        "config": {
            "model": {"hidden_dim": 32, "num_layers": 3, "blueprint_options": {"hidden": 24}},
            "train": {"batch_size": 64},
        },
    },
    "spirals-default": {"data": {"problem": "spirals", "params": {}}},
    # On digits a plain MLP loses accuracy with every hidden layer it adds and gains with width: a
    # one-block trunk that grows two wide seeds and no deep ones (chosen on seeds 10-19).
    "digits": {
        "data": {"problem": "digits", "params": {}},
        "config": {
            "model": {"num_layers": 1, "seeds_per_layer": 0, "wide_seeds": 2, "wide_units": 32},
            "train": {"batch_size": 64},
        },
    },
    # 8×8 digits as 1×8×8 images: a small CNN trunk (8 channels) whose seeds grow residual conv blocks.
    "digits-cnn": {
        "data": {"problem": "digits", "params": {"images": True}},
        "config": {
            "model": {"trunk": "cnn", "blueprint": "conv", "hidden_dim": 8, "num_layers": 2},
            "train": {"batch_size": 64},
        },
        "arms": ["grown", "never", "from-scratch", "static-same-params"],
        "seeds": [0, 1, 2, 3, 4],
    },
    "moons": {"data": {"problem": "moons", "params": {"noise": 0.1}}},
    "clusters": {"data": {"problem": "clusters", "params": {"n_centers": 4}}},
    "spheres": {"data": {"problem": "spheres", "params": {"n_shells": 3, "input_dim": 3}}},
}
# digits-cnn runs only when asked (--tasks digits-cnn): it alone costs a third of the whole benchmark.
DEFAULT_TASKS = [task for task in TASKS if task != "digits-cnn"]
ARMS = ["grown", "periodic", "never", "from-scratch", "static-wide", "static-same-params", "gromo"]
GROWING_ARMS = {"grown": "kasmina", "periodic": "periodic", "never": "never"}
# Where growth happens, the grown network meets the best plain network of its size and gromo.
SAME_PARAMS_TASKS = ("spirals-hard", "spirals-default", "digits", "digits-cnn")
GROMO_TASKS = ("spirals-hard", "digits")
# The plain networks static-same-params chooses from: MLP widths × numbers of hidden layers, and for
# images CNNs of 3×3 convolutions (channels × layers) pooled to 2×2 before a linear head.
FAMILY = [(width, depth) for width in (16, 32, 48, 64, 96) for depth in (2, 3, 4, 5)]
CNN_FAMILY = [(channels, depth) for channels in (4, 8, 12, 16, 24) for depth in (1, 2, 3, 4)]
WIDE = (128, 3)


def config_for(task: str, seed: int, controller: str = "kasmina") -> Any:
    from kaslite.config import build_config

    spec = TASKS[task]
    return build_config(
        {"data": spec["data"], "controller": {"name": controller}, "train": {"seed": seed}},
        spec.get("config", {}),
    )


def split_for(task: str, seed: int) -> Any:
    """The (task, seed)'s tensors, standardised on the train split where the task says so."""
    import torch

    from kaslite.train.data import SplitData, load_split

    config = config_for(task, seed)
    split = load_split(config.data, seed, torch.device("cpu"))
    if not TASKS[task].get("standardize"):
        return split
    mean, std = split.x_train.mean(0), split.x_train.std(0).clamp_min(1e-12)
    return SplitData(
        (split.x_train - mean) / std, split.y_train, (split.x_val - mean) / std, split.y_val, split.num_classes
    )


def plain_net(task: str, inputs: int, width: int, depth: int, classes: int) -> Any:
    """The plain network of ``task``'s family: an MLP, or a CNN for image tasks."""
    from torch import nn

    if not is_cnn(task):
        return plain_mlp(inputs, width, depth, classes)
    layers: list[nn.Module] = []
    for index in range(depth):
        layers += [nn.Conv2d(inputs if index == 0 else width, width, 3, padding=1), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(4 * width, classes))


def is_cnn(task: str) -> bool:
    return TASKS[task].get("config", {}).get("model", {}).get("trunk") == "cnn"


def plain_mlp(inputs: int, width: int, depth: int, classes: int) -> Any:
    from torch import nn

    layers: list[nn.Module] = []
    for index in range(depth):
        layers += [nn.Linear(inputs if index == 0 else width, width), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, classes))


def count(net: Any) -> int:
    return sum(p.numel() for p in net.parameters())


def train_static(net: Any, split: Any, config: Any) -> float:
    """Plain training of every parameter from epoch 0: the trainer's batches, optimiser and epochs."""
    import torch

    from kaslite.train.data import TensorBatches

    batches = TensorBatches(split, config.train.batch_size, config.train.seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.train.lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    for _ in range(config.train.warm_up_epochs + config.train.adaptation_epochs):
        net.train()
        for x, y in batches.train():
            optimizer.zero_grad(set_to_none=True)
            loss_fn(net(x), y).backward()
            optimizer.step()
    net.eval()
    with torch.no_grad():
        return int((net(split.x_val).argmax(dim=1) == split.y_val).sum()) / split.y_val.shape[0]


def run_growing(task: str, arm: str, seed: int, split: Any) -> dict[str, Any]:
    import kaslite

    result = kaslite.fit(None, split, config=config_for(task, seed, GROWING_ARMS[arm]))
    states = {e["seed_id"]: e["to_state"] for e in result.events if e["event"] == "seed_transition"}
    return {
        "val_acc": result.metrics["val_acc"],
        "params": result.metrics["params_total"],
        "grown_seeds": sorted(sid for sid, state in states.items() if state == "active"),
    }


def run_from_scratch(task: str, seed: int, split: Any, grown_seeds: list[str]) -> dict[str, Any]:
    import torch

    from kaslite.train import count_parameters
    from kaslite.train.trainer import build_net

    config = config_for(task, seed, "never")
    torch.manual_seed(seed)
    net = build_net(config, split.input_dim, split.num_classes)
    for seed_id in grown_seeds:
        grown = net.seeds[seed_id]
        grown.germinate()
        grown.start_blending()
        while not grown.advance_blend():
            pass
        grown.activate()
    params = count_parameters(net)[1]
    return {"val_acc": train_static(net, split, config), "params": params}


def run_plain(task: str, seed: int, split: Any, shape: tuple[int, int]) -> dict[str, Any]:
    import torch

    torch.manual_seed(seed)
    net = plain_net(task, split.input_dim, *shape, split.num_classes)
    return {"val_acc": train_static(net, split, config_for(task, seed)), "params": count(net), "shape": list(shape)}


def run_gromo(task: str, seed: int, split: Any) -> dict[str, Any]:
    from gromo_arm import train_gromo

    config = config_for(task, seed)
    epochs = config.train.warm_up_epochs + config.train.adaptation_epochs
    out = train_gromo(
        split.x_train,
        split.y_train,
        split.x_val,
        split.y_val,
        seed=seed,
        epochs=epochs,
        batch_size=config.train.batch_size,
        lr=config.train.lr,
        num_classes=split.num_classes,
    )
    return {"val_acc": out["val_acc"], "params": out["params"]}


def applies(arm: str, task: str, shapes: dict[str, list[int]]) -> bool:
    if arm not in TASKS[task].get("arms", ARMS):
        return False
    if arm == "static-same-params":
        return task in shapes
    if arm == "gromo":
        return task in GROMO_TASKS and gromo_installed()
    return True


def run_seed(task: str, seed: int, arms: list[str], shapes: dict[str, list[int]]) -> list[dict[str, Any]]:
    """Every chosen arm on one (task, seed); from-scratch needs grown's architecture first."""
    import torch

    torch.set_num_threads(1)
    split = split_for(task, seed)
    records: list[dict[str, Any]] = []
    grown: dict[str, Any] = {}
    for arm in (arm for arm in arms if applies(arm, task, shapes)):
        started = time.perf_counter()
        if arm in GROWING_ARMS:
            record = run_growing(task, arm, seed, split)
        elif arm == "from-scratch":
            grown = grown or run_growing(task, "grown", seed, split)
            record = run_from_scratch(task, seed, split, grown["grown_seeds"])
        elif arm == "static-wide":
            record = run_plain(task, seed, split, WIDE)
        elif arm == "static-same-params":
            width, depth = shapes[task]
            record = run_plain(task, seed, split, (width, depth))
        else:
            record = run_gromo(task, seed, split)
        if arm == "grown":
            grown = record
        wall = round(time.perf_counter() - started, 2)
        kept = {key: value for key, value in record.items() if key != "grown_seeds"}
        records.append({"task": task, "arm": arm, "seed": seed, **kept, "wall_s": wall})
    return records


def gromo_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("gromo") is not None


# -- choosing static-same-params' shape on the selection seeds -----------------------------------


def select_shapes(tasks: list[str], jobs: int) -> dict[str, list[int]]:
    """For each task: the grown arm's mean parameter count on seeds 10-19 is the budget; the
    family shape within it with the best mean val acc on those seeds wins."""
    choices: dict[str, list[int]] = {}
    report: dict[str, Any] = {}
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for task in tasks:
            grown = list(
                pool.map(
                    run_seed,
                    [task] * len(SELECTION_SEEDS),
                    SELECTION_SEEDS,
                    [["grown"]] * len(SELECTION_SEEDS),
                    [{}] * len(SELECTION_SEEDS),
                )
            )
            budget = statistics.mean(rows[0]["params"] for rows in grown)
            grown_acc = statistics.mean(rows[0]["val_acc"] for rows in grown)
            split = split_for(task, SELECTION_SEEDS[0])
            family = CNN_FAMILY if is_cnn(task) else FAMILY
            candidates = [
                shape
                for shape in family
                if count(plain_net(task, split.input_dim, *shape, split.num_classes)) <= budget
            ]
            jobs_args = [(task, seed, shape) for shape in candidates for seed in SELECTION_SEEDS]
            scores = list(pool.map(_plain_job, *zip(*jobs_args, strict=True)))
            by_shape = {
                shape: statistics.mean(acc for (_, _, s), acc in zip(jobs_args, scores, strict=True) if s == shape)
                for shape in candidates
            }
            best = max(by_shape, key=lambda shape: by_shape[shape])
            choices[task] = list(best)
            report[task] = {
                "budget": round(budget),
                "grown_mean_val_acc": round(grown_acc, 4),
                "chosen": list(best),
                "mean_val_acc": {f"{w}x{d}": round(a, 4) for (w, d), a in by_shape.items()},
            }
            print(f"{task}: budget {budget:,.0f} params -> {best[0]}x{best[1]} ({by_shape[best]:.4f})", flush=True)
    # Other tasks' earlier choices stay: --select --tasks X re-chooses X's alone.
    saved = json.loads(SHAPES_FILE.read_text()) if SHAPES_FILE.exists() else {"choices": {}, "selection": {}}
    saved["choices"].update(choices)
    saved["selection"].update(report)
    SHAPES_FILE.write_text(json.dumps(saved, indent=1) + "\n")
    return saved["choices"]


def _plain_job(task: str, seed: int, shape: tuple[int, int]) -> float:
    import torch

    torch.set_num_threads(1)
    return float(run_plain(task, seed, split_for(task, seed), shape)["val_acc"])


# -- reporting -----------------------------------------------------------------------------------


def table(records: list[dict[str, Any]], shapes: dict[str, list[int]]) -> str:
    lines = [
        "| task | arm | val acc mean | val acc min | params (mean) | wall s (mean) |",
        "|---|---|---|---|---|---|",
    ]
    for task in dict.fromkeys(r["task"] for r in records):
        for arm in ARMS:
            rows = [r for r in records if r["task"] == task and r["arm"] == arm]
            if not rows:
                continue
            accs = [r["val_acc"] for r in rows]
            params = statistics.mean(r["params"] for r in rows)
            wall = statistics.mean(r["wall_s"] for r in rows)
            name = f"{arm} ({shapes[task][0]}×{shapes[task][1]})" if arm == "static-same-params" else arm
            lines.append(
                f"| {task} | {name} | {statistics.mean(accs):.3f} | {min(accs):.3f} | {params:,.0f} | {wall:.1f} |"
            )
    return "\n".join(lines) + "\n"


def plot(records: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    tasks = list(dict.fromkeys(r["task"] for r in records))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for arm, marker in zip(ARMS, "os^Dvpx", strict=True):
            rows = [r for r in records if r["task"] == task and r["arm"] == arm]
            if rows:
                ax.scatter(
                    [r["params"] for r in rows], [r["val_acc"] for r in rows], marker=marker, s=16, alpha=0.6, label=arm
                )
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(task)
        ax.set_xlabel("parameters")
        ax.set_ylabel("val acc")
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=REPORT_SEEDS)
    parser.add_argument("--tasks", nargs="+", default=DEFAULT_TASKS, choices=list(TASKS))
    parser.add_argument("--arms", nargs="+", default=ARMS, choices=ARMS)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--select", action="store_true", help="re-choose static-same-params' shapes first")
    args = parser.parse_args()

    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.select:
        shapes = select_shapes([t for t in args.tasks if t in SAME_PARAMS_TASKS], args.jobs)
    else:
        shapes = json.loads(SHAPES_FILE.read_text())["choices"] if SHAPES_FILE.exists() else {}
    jobs = [(task, seed) for task in args.tasks for seed in args.seeds if seed in TASKS[task].get("seeds", args.seeds)]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        records = [
            row
            for rows in pool.map(run_seed, *zip(*jobs, strict=True), [args.arms] * len(jobs), [shapes] * len(jobs))
            for row in rows
        ]
    made = len(records)
    # Tasks not run this time keep the rows an earlier run wrote.
    earlier = args.out / "growth.json"
    if earlier.exists():
        kept = [row for row in json.loads(earlier.read_text()) if row["task"] not in args.tasks]
        records = sorted(kept + records, key=lambda row: list(TASKS).index(row["task"]))
    (args.out / "growth.json").write_text(json.dumps(records, indent=1) + "\n")
    (args.out / "growth.md").write_text(table(records, shapes))
    plot(records, args.out / "growth-pareto.png")
    print(table(records, shapes))
    print(f"{made} runs in {time.perf_counter() - started:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
