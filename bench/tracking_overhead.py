"""What the mlflow tracker costs: model logging time, and its share of a default ``kaslite run``.

Runs the default experiment (``kaslite run -q``, spirals, 350 epochs) as a
user does, in subprocesses, with three tracker sets interleaved round by round
so machine noise hits them alike:

* ``base``: ``--tracker console --tracker json``
* ``mlflow``: base + ``--tracker mlflow``
* ``default``: no ``--tracker`` (console, json, tensorboard, mlflow)

Each round gets a fresh folder holding an already migrated SQLite store
(creating one costs ~2 s once per store, reported apart). Ratios are median
wall time ÷ median wall time of ``base``. Model logging time is what the
tracker measured around ``log_kaslite_model`` (tag ``kaslite.model_logging_s``).

    python bench/tracking_overhead.py [--json] [--rounds 3] [--threads 1] [-- extra run flags]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETS = {
    "base": ["--tracker", "console", "--tracker", "json"],
    "mlflow": ["--tracker", "console", "--tracker", "json", "--tracker", "mlflow"],
    "default": [],
}


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def migrated_store(folder: Path, env: dict[str, str]) -> float:
    """Create ``folder/mlflow.db``; returns how long creating its tables took (imports excluded)."""
    code = (
        "import time; from mlflow import MlflowClient; t = time.perf_counter()\n"
        "MlflowClient(tracking_uri='sqlite:///mlflow.db').search_experiments(); print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=folder, env=env, check=True, capture_output=True)
    return float(out.stdout)


def model_logging_times(folders: list[Path], env: dict[str, str]) -> list[float]:
    code = (
        "import json; from mlflow import MlflowClient\n"
        "c = MlflowClient(tracking_uri='sqlite:///mlflow.db')\n"
        "runs = c.search_runs([c.get_experiment_by_name('kaslite').experiment_id])\n"
        "print(json.dumps([float(r.data.tags['kaslite.model_logging_s']) for r in runs]))"
    )
    times: list[float] = []
    for folder in folders:
        out = subprocess.run([sys.executable, "-c", code], cwd=folder, env=env, check=True, capture_output=True)
        times += json.loads(out.stdout)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS for the runs (less noise on a busy machine)")
    parser.add_argument("extra", nargs="*", help="extra `kaslite run` flags (after --)")
    args = parser.parse_args()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    kaslite = [sys.executable, "-m", "kaslite", "run", "-q", *args.extra]
    walls: dict[str, list[float]] = {name: [] for name in SETS}
    migrations, folders = [], []
    root = Path(tempfile.mkdtemp(prefix="kaslite-bench-tracking-"))
    try:
        for round_ in range(args.rounds):
            for name, trackers in SETS.items():
                folder = root / f"{name}-{round_}"
                folder.mkdir()
                migrations.append(migrated_store(folder, env))
                walls[name].append(timed([*kaslite, *trackers], folder, env))
                if name != "base":
                    folders.append(folder)
        logging = model_logging_times(folders, env)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    median = {name: statistics.median(times) for name, times in walls.items()}
    result = {
        "rounds": args.rounds,
        "command": " ".join(["kaslite run -q", *args.extra]),
        "omp_num_threads": args.threads,
        "wall_s": {name: [round(t, 2) for t in times] for name, times in walls.items()},
        "median_wall_s": {name: round(value, 2) for name, value in median.items()},
        "mlflow_ratio": round(median["mlflow"] / median["base"], 3),
        "default_ratio": round(median["default"] / median["base"], 3),
        "model_logging_s": {"median": round(statistics.median(logging), 3), "all": logging},
        "store_migration_s": round(statistics.median(migrations), 2),
    }
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
