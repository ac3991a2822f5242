"""Where the main job's time goes: ``kaslite run`` with every plugin installed, phase by phase.

Outside, each in a fresh interpreter: the wall time of ``import torch``, ``import mlflow`` and
``import kaslite.cli.main``, and of the real CLI, ``kaslite run`` with every default (the
README's main job) and with ``--tracker json`` only, both for ``--epochs`` epochs.

Inside: the same run in this process, its phases timed by wrapping what the CLI calls: loading
the plugins, the trainer's setup (data, model, optimizer), each tracker's hooks (starting, each
epoch, logging the model, ending, closing), the training epochs net of the trackers' per-epoch
hooks, and saving model.pt. One torch thread, as the README's runs. The mlflow and tensorboard
trackers live in a helper process (kaslite.train.tracker_host): their hooks' times here are what
the run waits for them (sending each event; at the end, the helper finishing its work).

    python bench/startup.py                 # the default run (320 epochs)
    python bench/startup.py --epochs 2      # fixed costs: every plugin against json only
    python bench/startup.py --json
"""

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

IMPORTS = ("torch", "mlflow", "kaslite.cli.main")


def wall(command: list[str], cwd: Path) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def outside(epochs: list[str], folder: Path) -> dict[str, float]:
    """Wall seconds of each import and of the CLI, each in a fresh interpreter."""
    times = {f"import {module}": wall([sys.executable, "-c", f"import {module}"], folder) for module in IMPORTS}
    times["python -c pass"] = wall([sys.executable, "-c", "pass"], folder)
    run = [sys.executable, "-m", "kaslite", "run", "--threads", "1", "--quiet", *epochs]
    times["kaslite run (every plugin)"] = wall([*run, "--run-name", "every"], folder)
    times["kaslite run --tracker json"] = wall([*run, "--tracker", "json", "--run-name", "json"], folder)
    return times


def timed(seconds: dict[str, float], key: str, function: Any) -> Any:
    """``function``, adding the seconds each call takes to ``seconds[key]``."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            seconds[key] += time.perf_counter() - started

    return wrapper


class TimedTracker:
    """A tracker whose hooks add their seconds to ``seconds["<tracker>.<hook>"]``."""

    def __init__(self, name: str, tracker: Any, seconds: dict[str, float]) -> None:
        self._name, self._tracker, self._seconds = name, tracker, seconds

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(self._tracker, attribute)
        if not callable(value) or not (attribute.startswith("on_") or attribute in ("close", "where")):
            return value
        return timed(self._seconds, f"{self._name}.{attribute}", value)


def inside(epochs: list[str], folder: Path) -> dict[str, float]:
    """The phases of one ``kaslite run`` in this process, in wall seconds."""
    import kaslite.plugins
    from kaslite.cli.main import cli
    from kaslite.train import runner, trainer

    seconds: dict[str, float] = defaultdict(float)
    make_trackers = runner.make_trackers

    def timed_trackers(names: list[str], context: Any, host: bool = False) -> dict[str, Any]:
        made = timed(seconds, "trackers: create", make_trackers)(names, context, host)
        return {name: TimedTracker(name, tracker, seconds) for name, tracker in made.items()}

    patches = [
        (kaslite.plugins, "get_plugin_manager", timed(seconds, "plugins: load", kaslite.plugins.get_plugin_manager)),
        (runner, "make_trackers", timed_trackers),
        (trainer.Trainer, "_setup", timed(seconds, "setup: data, model, optimizer", trainer.Trainer._setup)),
        (trainer.Trainer, "_run_epoch", timed(seconds, "training epochs", trainer.Trainer._run_epoch)),
        (trainer, "save_model", timed(seconds, "save model.pt", trainer.save_model)),
    ]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for owner, name, replacement in patches:
        setattr(owner, name, replacement)
    cwd = Path.cwd()
    os.chdir(folder)
    started = time.perf_counter()
    try:
        cli.main(["run", "--threads", "1", "--quiet", "--run-name", "inside", *epochs])
    except SystemExit as exc:  # the CLI always exits; anything but 0 is a failed run
        if exc.code:
            raise
    finally:
        total = time.perf_counter() - started
        os.chdir(cwd)
        for owner, name, original in saved:
            setattr(owner, name, original)
    per_epoch = sum(value for key, value in seconds.items() if key.endswith((".on_epoch_end", ".on_growth_decision")))
    seconds["training epochs"] -= per_epoch  # what the trackers took each epoch is listed per tracker
    seconds["other (flags, config, run folder, summary)"] = total - sum(seconds.values())
    seconds["total"] = total
    return dict(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, help="train.adaptation_epochs + warm-up (default: the config's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    epochs = [] if args.epochs is None else ["--warm-up-epochs", "1", "--adaptation-epochs", str(args.epochs - 1)]
    with tempfile.TemporaryDirectory() as tmp:
        report = {"outside": outside(epochs, Path(tmp)), "inside": inside(epochs, Path(tmp))}
    report = {part: {key: round(value, 3) for key, value in times.items()} for part, times in report.items()}
    if args.json:
        print(json.dumps(report))
        return
    for part, times in report.items():
        print(f"{part}:")
        shown = {key: value for key, value in times.items() if value >= 0.01}
        for key, value in sorted(shown.items(), key=lambda item: -item[1]):
            print(f"  {value:8.2f} s  {key}")
        rest = [value for key, value in times.items() if key not in shown]
        if rest:
            print(f"  {sum(rest):8.2f} s  {len(rest)} more under 10 ms each")


if __name__ == "__main__":
    main()
