"""Does the default run hold on every seed? ``kaslite run --seed S`` with every default, and its trunk alone.

For each seed S (0-19 by default) the real CLI runs twice, one torch thread each:
``kaslite run --seed S`` (every default) and ``kaslite run --seed S --controller never``
(the trunk alone). Writes bench/results/default-seeds.json: each run's final val acc, and
the means and minimum.

    python bench/default_seeds.py --jobs 2
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
CONTROLLERS = ("kasmina", "never")


def run(seed: int, controller: str, output_dir: Path) -> dict[str, float | int | str]:
    """One ``kaslite run`` in a process of its own; its metrics.json."""
    name = f"{controller}-{seed}"
    command = [sys.executable, "-m", "kaslite", "run", "--seed", str(seed), "--threads", "1", "--quiet"]
    command += ["--tracker", "json", "--output-dir", str(output_dir), "--run-name", name]
    if controller != "kasmina":  # kasmina is the default: its runs name no controller at all
        command += ["--controller", controller]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    metrics = json.loads((output_dir / name / "metrics.json").read_text())
    return {"seed": seed, "controller": controller, "val_acc": metrics["val_acc"], "params": metrics["params_total"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(20)))
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=RESULTS / "default-seeds.json")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        jobs = [(seed, controller) for seed in args.seeds for controller in CONTROLLERS]
        runs = list(pool.map(lambda job: run(*job, Path(tmp)), jobs))
    summary = {}
    for controller in CONTROLLERS:
        accs = [r["val_acc"] for r in runs if r["controller"] == controller]
        summary[controller] = {"mean": round(statistics.mean(accs), 4), "min": min(accs)}
    report = {"command": "kaslite run --seed S --threads 1 [--controller never]", "summary": summary, "runs": runs}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    for controller, figures in summary.items():
        print(f"{controller}: mean {figures['mean']:.4f}, min {figures['min']:.4f}")
    print(f"{len(runs)} runs in {time.perf_counter() - started:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
