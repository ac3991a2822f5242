"""One picture of how a network grew: the run's curves and every seed's life on one epoch axis.

Panels, top to bottom, sharing the epoch axis: train and val loss; val
accuracy; the parameter count; α of each seed that blended; a timeline with
a row per seed (shadow training, blending and active as bars, each transition
as a marker: ▲ germinate, ◆ blend start, ● active, ✕ cull); and, when the
policy measured them, the expansion score of every candidate (★ where it
grew). A dashed line marks the start of phase 2.

With one run every seed has its own colour; with several runs (a grown one and
its ``--controller never`` twin) every run has one colour throughout.

Built on ``matplotlib.figure.Figure``, never pyplot: no global state, no
display, safe inside a training process or a server.
"""

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kaslite.plot.runs import ALPHA_SUFFIX, STATE_SUFFIX, RunRecord

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# A transition's name and marker, by the states it joins.
TRANSITIONS = {"training": ("germinate", "^"), "blending": ("blend start", "D"), "active": ("active", "o")}
CULL = ("cull", "X")
# How strongly a timeline bar is drawn in each state a seed lives through.
STATE_SHADE = {"training": 0.3, "blending": 0.6, "active": 1.0}
PALETTE = "tab10"
PANEL_HEIGHT = 1.7  # inches per panel


def transition_name(event: dict[str, Any]) -> tuple[str, str]:
    """(name, marker) of a seed_transition event."""
    if event.get("to_state") == "culled":
        return CULL
    return TRANSITIONS.get(str(event.get("to_state")), (str(event.get("to_state")), "s"))


def seed_kinds(run: RunRecord) -> dict[str, str]:
    """Each seed's kind, as the run's events name it (transitions, and the policy's candidates)."""
    kinds: dict[str, str] = {}
    for entry in run.of_kind("growth_decision"):
        for candidate in entry.get("candidates", []):
            if candidate.get("kind"):
                kinds[str(candidate["seed_id"])] = str(candidate["kind"])
    for entry in run.of_kind("seed_transition"):
        if entry.get("kind"):
            kinds[str(entry["seed_id"])] = str(entry["kind"])
    return kinds


def _segments(run: RunRecord, seed_id: str) -> list[tuple[str, float, float]]:
    """(state, first epoch, last epoch) of each stretch a seed spent in a grown state."""
    segments: list[tuple[str, float, float]] = []
    for epoch, row in zip(run.epochs, run.history, strict=True):
        state = str(row.get(seed_id + STATE_SUFFIX, ""))
        if state not in STATE_SHADE:
            continue
        if segments and segments[-1][0] == state and segments[-1][2] == epoch - 1:
            segments[-1] = (state, segments[-1][1], epoch)
        else:
            segments.append((state, epoch, epoch))
    return segments


class _Colours:
    """One colour per run, or with a single run one per seed."""

    def __init__(self, runs: Sequence[RunRecord]) -> None:
        from matplotlib import colormaps

        self.cmap = colormaps[PALETTE]
        self.per_seed = len(runs) == 1
        seeds = list(dict.fromkeys(sid for run in runs for sid in run.seed_ids))
        self.seed_index = {sid: i for i, sid in enumerate(seeds)}

    def run(self, index: int) -> Any:
        return self.cmap(index % self.cmap.N)

    def seed(self, run_index: int, seed_id: str) -> Any:
        return self.cmap(self.seed_index.get(seed_id, 0) % self.cmap.N) if self.per_seed else self.run(run_index)


def run_figure(runs: Sequence[RunRecord], title: str | None = None) -> "Figure":
    """The figure of one run, or of several overlaid (one colour per run)."""
    from matplotlib.figure import Figure

    if not runs:
        raise ValueError("run_figure needs at least one run")
    with_scores = any(entry.get("candidates") for run in runs for entry in run.of_kind("growth_decision"))
    names = ["loss", "accuracy", "parameters", "alpha", "seeds"] + (["scores"] if with_scores else [])
    seeds = list(dict.fromkeys(sid for run in runs for sid in run.seed_ids))
    heights = [1.0, 1.0, 0.8, 0.8, max(0.8, 0.18 * len(seeds)), 1.0][: len(names)]
    height = PANEL_HEIGHT * sum(heights) + 0.8
    figure = Figure(figsize=(10, height), dpi=80)
    # Fixed margins: a layout engine would double the cost of drawing (a run's end pays for it).
    axes = figure.subplots(len(names), 1, sharex=True, height_ratios=heights)
    figure.subplots_adjust(left=0.15, right=0.98, top=1 - 0.45 / height, bottom=0.45 / height, hspace=0.12)
    panels = dict(zip(names, axes, strict=True))
    for name, ax in panels.items():
        ax.set_label(name)  # tests and users find panels by name: figure.axes[i].get_label()
        ax.grid(alpha=0.3)
    colours = _Colours(runs)
    for index, run in enumerate(runs):
        _draw_curves(panels, run, colours.run(index), label=run.name if len(runs) > 1 else "")
        _draw_alpha(panels["alpha"], run, index, colours)
        _draw_timeline(panels["seeds"], run, index, len(runs), seeds, colours)
        if with_scores:
            _draw_scores(panels["scores"], run, index, colours)
        start = run.phase2_start
        if start is not None:
            for ax in axes:
                ax.axvline(start - 0.5, color=colours.run(index), linestyle="--", linewidth=0.8, gid="phase2")
    _label(figure, panels, seeds, runs)
    figure.suptitle(title or (runs[0].name if len(runs) == 1 else " vs ".join(run.name for run in runs)))
    return figure


def _draw_curves(panels: dict[str, "Axes"], run: RunRecord, colour: Any, label: str) -> None:
    epochs, name = run.epochs, run.name
    panels["loss"].plot(
        epochs, run.column("train_loss"), color=colour, linestyle=":", label=f"{label} train".strip(),
        gid=f"train_loss:{name}",
    )  # fmt: skip
    panels["loss"].plot(
        epochs, run.column("val_loss"), color=colour, label=f"{label} val".strip(), gid=f"val_loss:{name}"
    )
    panels["accuracy"].plot(epochs, run.column("val_acc"), color=colour, label=label, gid=f"val_acc:{name}")
    if run.has("params"):
        panels["parameters"].step(
            epochs, run.column("params"), where="post", color=colour, label=label, gid=f"params:{name}"
        )
    elif run.metrics.get("params_total") is not None:  # an older run: only its final count is known
        panels["parameters"].plot(
            [epochs[-1]], [run.metrics["params_total"]], marker="s", color=colour, linestyle="", label=label,
            gid=f"params:{name}",
        )  # fmt: skip


def _draw_alpha(ax: "Axes", run: RunRecord, index: int, colours: _Colours) -> None:
    for seed_id in run.seed_ids:
        alphas = run.column(seed_id + ALPHA_SUFFIX)
        if not any(a > 0 for a in alphas if not math.isnan(a)):
            continue
        colour = colours.seed(index, seed_id)
        ax.plot(run.epochs, alphas, color=colour, label=seed_id, gid=f"alpha:{run.name}:{seed_id}")


def _draw_timeline(ax: "Axes", run: RunRecord, index: int, count: int, seeds: list[str], colours: _Colours) -> None:
    height = 0.8 / count
    for seed_id in run.seed_ids:
        row = seeds.index(seed_id)
        bottom = row - 0.4 + index * height
        colour = colours.seed(index, seed_id)
        for state, first, last in _segments(run, seed_id):
            ax.broken_barh(
                [(first - 0.5, last - first + 1)], (bottom, height), color=colour, alpha=STATE_SHADE[state], linewidth=0
            )
    by_name: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    for entry in run.of_kind("seed_transition"):
        seed_id = str(entry.get("seed_id"))
        if seed_id not in seeds:
            continue
        xs, ys = by_name.setdefault(transition_name(entry), ([], []))
        xs.append(float(entry["epoch"]))
        ys.append(seeds.index(seed_id) - 0.4 + (index + 0.5) * height)
    for (name, marker), (xs, ys) in by_name.items():
        ax.plot(
            xs, ys, marker=marker, linestyle="", color="black", markersize=5,
            markerfacecolor=colours.run(index) if count > 1 else "white",
            label=name, gid=f"transition:{run.name}:{name}",
        )  # fmt: skip


def _draw_scores(ax: "Axes", run: RunRecord, index: int, colours: _Colours) -> None:
    series: dict[str, tuple[list[float], list[float]]] = {}
    chosen: tuple[list[float], list[float]] = ([], [])
    for entry in run.of_kind("growth_decision"):
        epoch = float(entry["epoch"])
        scores = {str(c["seed_id"]): float(c["score"]) for c in entry.get("candidates", [])}
        for seed_id, score in scores.items():
            xs, ys = series.setdefault(seed_id, ([], []))
            xs.append(epoch)
            ys.append(score)
        for seed_id in entry.get("chosen", []):
            if seed_id in scores:
                chosen[0].append(epoch)
                chosen[1].append(scores[seed_id])
    for seed_id, (xs, ys) in series.items():
        ax.plot(
            xs, ys, color=colours.seed(index, seed_id), linewidth=1, label=seed_id, gid=f"score:{run.name}:{seed_id}"
        )
    if chosen[0]:
        ax.plot(*chosen, marker="*", markersize=10, linestyle="", color="black", label="grew", gid=f"grew:{run.name}")
    _log_scale_if_wide(ax)


def _log_scale_if_wide(ax: "Axes") -> None:
    """A log y axis where the lines span more than a decade, labelled in plain text (TeX-style labels
    cost a math parser per run)."""
    from matplotlib.ticker import LogFormatter, NullFormatter

    values = [y for line in _labelled(ax) for y in line.get_ydata() if math.isfinite(y) and y > 0]
    if not values or max(values) < 10 * min(values):
        return
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(LogFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())


def _labelled(ax: "Axes") -> list[Any]:
    """The lines a legend shows (matplotlib names the others ``_child...``)."""
    return [line for line in ax.get_lines() if not str(line.get_label()).startswith("_")]


def _label(figure: "Figure", panels: dict[str, "Axes"], seeds: list[str], runs: Sequence[RunRecord]) -> None:
    kinds: dict[str, str] = {}
    for run in runs:
        kinds.update(seed_kinds(run))
    panels["loss"].set_ylabel("loss")
    _log_scale_if_wide(panels["loss"])
    panels["loss"].legend(fontsize=7, loc="upper right", ncols=2)
    panels["accuracy"].set_ylabel("val acc")
    panels["parameters"].set_ylabel("parameters")
    panels["alpha"].set_ylabel("α")
    panels["alpha"].set_ylim(-0.05, 1.05)
    if _labelled(panels["alpha"]) and len(runs) == 1:
        panels["alpha"].legend(fontsize=6, loc="lower right", ncols=4)
    timeline = panels["seeds"]
    timeline.set_yticks(range(len(seeds)))
    timeline.set_yticklabels([f"{sid} ({kinds[sid]})" if sid in kinds else sid for sid in seeds], fontsize=7)
    timeline.set_ylim(max(len(seeds), 1) - 0.5, -0.5)
    markers = {line.get_label(): line for line in _labelled(timeline)}
    if markers:
        # Beside the title, where it hides no seed's row.
        figure.legend(list(markers.values()), list(markers), fontsize=7, loc="upper right", ncols=4, frameon=False)
    if "scores" in panels:
        panels["scores"].set_ylabel("expansion score")
        if len(runs) == 1 and _labelled(panels["scores"]):
            panels["scores"].legend(fontsize=6, loc="upper right", ncols=5)
    if len(runs) > 1:
        panels["accuracy"].legend(fontsize=7, loc="lower right")
    list(panels.values())[-1].set_xlabel("epoch")


def png_bytes(figure: "Figure") -> bytes:
    """``figure`` as PNG, in memory."""
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
