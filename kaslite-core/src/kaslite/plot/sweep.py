"""A sweep at a glance: each trial's final val acc against its parameter count, coloured by a swept parameter.

Read from ``sweep_summary.json`` (what ``kaslite sweep`` writes and keeps up to
date while it runs): completed trials are drawn, the best one the summary names
is ringed and labelled.
"""

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kaslite.errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SUMMARY = "sweep_summary.json"
X_METRIC = "params_total"


def is_sweep_dir(path: Path) -> bool:
    return (path / SUMMARY).is_file()


def load_sweep(sweep_dir: Path) -> dict[str, Any]:
    path = sweep_dir / SUMMARY
    try:
        summary = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc.msg} (line {exc.lineno})") from exc
    if not isinstance(summary, dict) or not isinstance(summary.get("trials"), list):
        raise ConfigError(f"{path} has no trials list: not a kaslite sweep summary")
    return summary


def _value(trial: dict[str, Any], metric: str) -> float | None:
    value = (trial.get("metrics") or {}).get(metric)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def sweep_figure(summary: dict[str, Any], colour_by: str | None = None, title: str = "") -> "Figure":
    """Val acc against parameters for every completed trial of ``summary``, coloured by ``colour_by``
    (default: the first swept parameter)."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    parameters = list(summary.get("parameters") or [])
    colour_by = colour_by or (parameters[0] if parameters else None)
    if colour_by is not None and colour_by not in parameters:
        raise ConfigError(f"colour_by {colour_by!r} is not a swept parameter; swept: {', '.join(parameters) or 'none'}")
    points = [
        (x, y, trial.get(colour_by, "") if colour_by else "")
        for trial in summary["trials"]
        if trial.get("status") == "completed"
        and (x := _value(trial, X_METRIC)) is not None
        and (y := _value(trial, "val_acc")) is not None
    ]
    if not points:
        raise ConfigError(f"the sweep has no completed trial with val_acc and {X_METRIC} yet: nothing to draw")
    figure = Figure(figsize=(7, 4.5), dpi=80, layout="constrained")
    ax = figure.subplots()
    ax.set_label("sweep")
    xs, ys, values = [p[0] for p in points], [p[1] for p in points], [p[2] for p in points]
    numbers = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if colour_by is not None and len(numbers) == len(values):
        scatter = ax.scatter(xs, ys, c=numbers, cmap="viridis", norm=Normalize(min(numbers), max(numbers)),
                             s=40, edgecolors="black", linewidths=0.5, gid="trials")  # fmt: skip
        figure.colorbar(scatter, ax=ax, label=colour_by)
    else:
        cmap = colormaps["tab10"]
        for index, level in enumerate(dict.fromkeys(str(v) for v in values)):
            chosen = [i for i, v in enumerate(values) if str(v) == level]
            ax.scatter(
                [xs[i] for i in chosen], [ys[i] for i in chosen], color=cmap(index % cmap.N), s=40,
                edgecolors="black", linewidths=0.5, label=f"{colour_by}={level}" if colour_by else "trials",
                gid="trials",
            )  # fmt: skip
        ax.legend(fontsize=8, loc="lower right")
    best = summary.get("best") or {}
    best_x, best_y = _value(best, X_METRIC), _value(best, "val_acc")
    if best_x is not None and best_y is not None:
        ax.scatter([best_x], [best_y], s=200, facecolors="none", edgecolors="red", linewidths=1.5, gid="best")
        ax.annotate(f"best: {best.get('run_slug') or best.get('run_id')}", (best_x, best_y), xytext=(8, 8),
                    textcoords="offset points", fontsize=8, color="red")  # fmt: skip
    if max(xs) > 10 * min(xs):
        ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("val acc")
    ax.grid(alpha=0.3)
    ax.set_title(title or f"{summary.get('name', 'sweep')}: {len(points)} trials")
    return figure
