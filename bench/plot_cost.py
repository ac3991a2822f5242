"""What the run figure adds to a run: the mlflow and tensorboard trackers log it at the run's end.

Figures, on the default run (`kaslite run --seed 0`, one thread):

  end_wait_s         what the run's end waits for the figure, with every tracker that logs it (json,
                     tensorboard, mlflow on a SQLite store): the trainer hands the run to the helper
                     before saving and logging the model, which the drawing overlaps
  draw_s             the same wait with nothing to overlap (a run handed to the helper only at
                     on_run_end), median of 5
  import_s           importing matplotlib in a fresh interpreter: the helper does it while the run
                     trains (kaslite.plot.tracking.prepare)
  helper_in_run_s    what the helper adds to a short training run's wall time: the same run in fresh
                     interpreters with and without it, interleaved (median difference over 3 pairs;
                     noise is about ±0.1 s)

    python bench/plot_cost.py            # prints JSON; the figure must add at most 0.3 s (end_wait + helper_in_run)
"""

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 0.3
SHORT_RUN = """
import sys, time
import torch
torch.set_num_threads(1)
import kaslite
from kaslite.config import build_config
from kaslite.plot import tracking
started = time.perf_counter()
if sys.argv[1] == "prepare":
    tracking.prepare()
kaslite.fit(None, None, config=build_config({"train": {"seed": 0, "adaptation_epochs": 60}}))
tracking.release()
print(time.perf_counter() - started)
"""
IMPORT = """
import time
started = time.perf_counter()
import matplotlib.backends.backend_agg, matplotlib.figure
print(time.perf_counter() - started)
"""


def default_run(folder: Path) -> tuple[object, float]:
    """The default run with the json, tensorboard and mlflow trackers; its summary, and the seconds its
    end spent waiting for the figure."""
    import os

    import torch

    from kaslite.config import build_config
    from kaslite.plot import tracking
    from kaslite.train.runner import run_experiment

    torch.set_num_threads(1)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    waited = []
    summary_png = tracking.summary_png

    def timed(summary: object) -> bytes | None:
        started = time.perf_counter()
        try:
            return summary_png(summary)  # type: ignore[arg-type]
        finally:
            waited.append(time.perf_counter() - started)

    tracking.summary_png = timed  # type: ignore[assignment]
    settings = {"tracking_uri": f"sqlite:///{folder / 'mlflow.db'}", "tensorboard_dir": str(folder / "tb")}
    try:
        trackers = ["json", "tensorboard", "mlflow"]
        config = build_config({"train": {"seed": 0}})
        summary = run_experiment(config, folder, "default", trackers, quiet=True, tracker_settings=settings)
    finally:
        tracking.summary_png = summary_png  # type: ignore[assignment]
    return summary, sum(waited)


def draw_seconds(summary: object) -> float:
    from kaslite.plot import tracking

    times = []
    for _ in range(5):
        tracking._drawn = None  # forget the last drawing, so each round draws anew
        tracking.prepare()
        time.sleep(3)  # the helper's imports, done while a run would train
        started = time.perf_counter()
        assert tracking.summary_png(summary) is not None
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def python(code: str, *args: str) -> float:
    return float(subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True).stdout)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        summary, end_wait = default_run(Path(folder))
        draw = draw_seconds(summary)
    imports = statistics.median(python(IMPORT) for _ in range(3))
    differences = []
    for _ in range(3):
        without = python(SHORT_RUN, "plain")
        differences.append(python(SHORT_RUN, "prepare") - without)
    in_run = statistics.median(differences)
    added = end_wait + max(in_run, 0.0)
    print(
        json.dumps(
            {
                "end_wait_s": round(end_wait, 3),
                "draw_s": round(draw, 3),
                "import_s": round(imports, 3),
                "helper_in_run_s": round(in_run, 3),
                "added_s": round(added, 3),
                "target_s": TARGET_S,
                "met": added <= TARGET_S,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
