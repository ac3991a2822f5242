"""The ``console`` tracker: a live Rich dashboard on a terminal, plain lines otherwise."""

import math
import sys
import time
from typing import Any

from kaslite.train.events import (
    EpochRecord,
    PhaseChange,
    RunContext,
    RunFailed,
    RunSummary,
    RunTracked,
    RunWarning,
    SeedTransition,
)
from kaslite.train.tracker import Tracker

STATE_STYLES = {
    "dormant": "dim",
    "training": "yellow",
    "blending": "cyan",
    "active": "bold green",
    "culled": "red",
}
REDRAW_S = 0.1  # the live dashboard's shortest interval between two drawings
# What drift is, in the words the dashboard shows under the seeds.
DRIFT_NOTE = (
    "drift: a blending or active seed's share of the network's output; kaslite warns when it is "
    "above drift_warn ({limit}) and val loss rose 10% since the seed began blending"
)


def summary_line(summary: RunSummary) -> str:
    """The one line a run ends with (and all that ``--quiet`` prints)."""
    m = summary.metrics
    return (
        f"{summary.run_name}: val_acc {m['val_acc']:.4f} (best {m['best_acc']:.4f}), "
        f"seeds active {m['seeds_activated']}/{m['total_seeds']}, {m['wall_time_s']:.1f} s -> {summary.run_dir}"
    )


def tracked_line(event: RunTracked) -> str:
    """Where the run was recorded besides its own directory: ``tracked: A; B``."""
    return "tracked: " + "; ".join(event.places)


def transition_line(event: SeedTransition, blend_steps: int) -> str:
    """A seed's transition as people read it: what happens to the network, and whether its output moved."""
    what = {
        "training": "germinated: it shadow-trains on its layer's activations, the network's output untouched",
        "blending": f"starts blending in (alpha 0 -> 1 over {blend_steps} steps)",
        "active": "is active: fully part of the network",
        "culled": "was culled: rolled back to identity",
    }.get(event.to_state, f"went {event.from_state} -> {event.to_state}")
    change = ""
    # Shadow training cannot move the output; NaN means the change was not measured (no probe batch).
    if event.to_state != "training" and math.isfinite(event.output_change):
        moved = event.output_change
        change = "; output unchanged" if moved == 0 else f"; output moved by up to {moved:.3g}"
    return f"epoch {event.epoch}: {event.seed_id} {what}{change}"


def rate_and_eta(done: int, left: int, seconds: float) -> str:
    """``12.3 epochs/s, ETA 0:00:26`` from epochs done in ``seconds``; empty before the first epoch."""
    if done <= 0 or seconds <= 0:
        return ""
    rate = done / seconds
    eta = round(left / rate)
    return f"{rate:.1f} epochs/s, ETA {eta // 3600}:{eta % 3600 // 60:02d}:{eta % 60:02d}"


def epoch_line(record: EpochRecord, total: int, progress: str = "") -> str:
    active = sum(seed.state == "active" for seed in record.seeds)
    return (
        f"epoch {record.epoch}/{total} phase {record.phase} train_loss {record.train_loss:.4f} "
        f"val_loss {record.val_loss:.4f} val_acc {record.val_acc:.4f} best {record.best_acc:.4f} "
        f"seeds {active}/{len(record.seeds)} active" + (f" ({progress})" if progress else "")
    )


class ConsoleTracker(Tracker):
    """Plain lines when stdout is not a terminal; a Rich dashboard when it is."""

    def __init__(self, quiet: bool = False, live: bool | None = None) -> None:
        self.quiet = quiet
        self.live_mode = sys.stdout.isatty() if live is None else live
        self.total = 0
        self.blend_steps = 0
        self.dashboard: Dashboard | None = None
        self._clock: tuple[float, int] | None = None  # (time, epoch) of the first epoch this session saw

    def _print(self, text: str) -> None:
        if self.dashboard is not None:
            self.dashboard.banner(text)
        elif not self.quiet:
            print(text, flush=True)

    def on_run_start(self, run: RunContext) -> None:
        self.total = run.total_epochs
        self.blend_steps = run.config.seeds.blend_steps
        if self.quiet:
            return
        if self.live_mode:
            self.dashboard = Dashboard(run)
        what = "resuming" if run.resumed else "starting"
        threads = f", {run.threads} thread{'s' if run.threads != 1 else ''}" if run.threads else ""
        self._print(f"{what} {run.run_name} ({run.total_epochs} epochs{threads}) -> {run.run_dir}")

    def on_epoch_end(self, record: EpochRecord) -> None:
        if self.dashboard is not None:
            self.dashboard.update(record)
        elif not self.quiet:
            # Timed from the first epoch's end, so the trackers' start-up does not count as training.
            now = time.monotonic()
            since, first = self._clock = self._clock or (now, record.epoch)
            progress = rate_and_eta(record.epoch - first, self.total - record.epoch, now - since)
            print(epoch_line(record, self.total, progress), flush=True)

    def on_phase_change(self, event: PhaseChange) -> None:
        if self.dashboard is not None:
            self.dashboard.start_phase(event.phase)
        self._print(f"== phase {event.phase} (adaptation) begins at epoch {event.epoch} ==")

    def on_seed_transition(self, event: SeedTransition) -> None:
        self._print(transition_line(event, self.blend_steps))

    def on_warning(self, event: RunWarning) -> None:
        self._print(f"warning: {event.message}")

    def on_run_end(self, summary: RunSummary) -> None:
        self.close()
        print(summary_line(summary), flush=True)

    def on_run_failed(self, event: RunFailed) -> None:
        self.close()  # the terminal back to plain lines for what the command prints next

    def on_run_tracked(self, event: RunTracked) -> None:
        if event.places and not self.quiet:
            print(tracked_line(event), flush=True)

    def close(self) -> None:
        if self.dashboard is not None:
            self.dashboard.stop()
            self.dashboard = None


class Dashboard:
    """Progress per phase (rate, elapsed, ETA), a metrics table, a seed panel, banners above them."""

    def __init__(self, run: RunContext) -> None:
        from rich.console import Console
        from rich.live import Live
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = Console()
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        )
        warm_up = run.warm_up_epochs
        done = run.start_epoch
        self.drift_warn = run.config.seeds.drift_warn
        # Each phase's clock starts when the phase does: phase 2's is not the run's.
        self.phase_tasks = {
            1: self.progress.add_task(
                "phase 1 warm-up", total=warm_up, completed=min(done, warm_up), start=done < warm_up, rate=""
            ),
            2: self.progress.add_task(
                "phase 2 adaptation",
                total=run.total_epochs - warm_up,
                completed=max(0, done - warm_up),
                start=done >= warm_up,
                rate="",
            ),
        }
        self.rows: list[EpochRecord] = []
        self.live = Live(self._render(), console=self.console, auto_refresh=False)
        self.live.start()
        self._drawn = time.monotonic()

    def _render(self) -> Any:
        from rich.console import Group
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text

        table = Table(title="metrics", expand=False)
        for column in ("epoch", "phase", "train loss", "val loss", "val acc", "best acc", "seeds active"):
            table.add_column(column, justify="right")
        for r in self.rows[-8:]:
            active = sum(s.state == "active" for s in r.seeds)
            table.add_row(
                str(r.epoch),
                str(r.phase),
                f"{r.train_loss:.4f}",
                f"{r.val_loss:.4f}",
                f"{r.val_acc:.4f}",
                f"{r.best_acc:.4f}",
                f"{active}/{len(r.seeds)}",
            )
        seeds = Text()
        if self.rows:
            for s in self.rows[-1].seeds:
                drift = f" drift={s.drift:.2f}" if s.state in ("blending", "active") else ""
                style = STATE_STYLES.get(s.state, "")
                seeds.append(f" {s.seed_id} {s.state} α={s.alpha:.2f}{drift} ", style=style)
        note = Text(DRIFT_NOTE.format(limit=self.drift_warn), style="dim")
        return Group(self.progress, table, Panel(Group(seeds, note), title="seeds"))

    def start_phase(self, phase: int) -> None:
        task = self.phase_tasks.get(phase)
        if task is not None:
            self.progress.start_task(task)

    def update(self, record: EpochRecord) -> None:
        self.rows.append(record)
        task_id = self.phase_tasks[record.phase]
        task = self.progress.tasks[task_id]
        if task.start_time is None:  # no phase change came first (a policy-free loop, a resume)
            self.progress.start_task(task_id)
        self.progress.update(task_id, advance=1)
        # Rich's estimate from this session's recent epochs (the one its ETA uses), not those before a resume.
        speed = task.speed
        self.progress.update(task_id, rate=f"{speed:.1f} epochs/s" if speed else "")
        # Drawn at most ten times a second: a small network finishes dozens of epochs a second,
        # and drawing each one cost about a tenth of the run.
        if time.monotonic() - self._drawn >= REDRAW_S:
            self._draw()

    def _draw(self) -> None:
        self.live.update(self._render(), refresh=True)
        self._drawn = time.monotonic()

    def banner(self, text: str) -> None:
        """A line above the live display (wrapped, never cut: warnings explain themselves)."""
        from rich.text import Text

        self.live.console.print(Text(text, style="bold magenta"))

    def stop(self) -> None:
        try:
            self._draw()  # the last epochs, whenever they came
        finally:
            self.live.stop()  # the terminal gets its cursor and output back, whatever happened
