"""The ``console`` tracker: a live Rich dashboard on a terminal, plain lines otherwise."""

import sys
from typing import Any

from kaslite.train.events import (
    EpochRecord,
    PhaseChange,
    RunContext,
    RunSummary,
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


def summary_line(summary: RunSummary) -> str:
    """The one line a run ends with (and all that ``--quiet`` prints)."""
    m = summary.metrics
    return (
        f"{summary.run_name}: val_acc {m['val_acc']:.4f} (best {m['best_acc']:.4f}), "
        f"seeds active {m['seeds_activated']}/{m['total_seeds']}, {m['wall_time_s']:.1f} s -> {summary.run_dir}"
    )


def epoch_line(record: EpochRecord, total: int) -> str:
    active = sum(seed.state == "active" for seed in record.seeds)
    return (
        f"epoch {record.epoch}/{total} phase {record.phase} train_loss {record.train_loss:.4f} "
        f"val_loss {record.val_loss:.4f} val_acc {record.val_acc:.4f} best {record.best_acc:.4f} "
        f"seeds {active}/{len(record.seeds)} active"
    )


class ConsoleTracker(Tracker):
    """Plain lines when stdout is not a terminal; a Rich dashboard when it is."""

    def __init__(self, quiet: bool = False, live: bool | None = None) -> None:
        self.quiet = quiet
        self.live_mode = sys.stdout.isatty() if live is None else live
        self.total = 0
        self._dashboard: Dashboard | None = None

    def _print(self, text: str) -> None:
        if self._dashboard is not None:
            self._dashboard.banner(text)
        elif not self.quiet:
            print(text, flush=True)

    def on_run_start(self, run: RunContext) -> None:
        self.total = run.total_epochs
        if self.quiet:
            return
        if self.live_mode:
            self._dashboard = Dashboard(run)
        what = "resuming" if run.resumed else "starting"
        threads = f", {run.threads} thread{'s' if run.threads != 1 else ''}" if run.threads else ""
        self._print(f"{what} {run.run_name} ({run.total_epochs} epochs{threads}) -> {run.run_dir}")

    def on_epoch_end(self, record: EpochRecord) -> None:
        if self._dashboard is not None:
            self._dashboard.update(record)
        elif not self.quiet:
            print(epoch_line(record, self.total), flush=True)

    def on_phase_change(self, event: PhaseChange) -> None:
        self._print(f"== phase {event.phase} (adaptation) begins at epoch {event.epoch} ==")

    def on_seed_transition(self, event: SeedTransition) -> None:
        self._print(
            f"** {event.seed_id}: {event.from_state} -> {event.to_state} at epoch {event.epoch} "
            f"(alpha {event.alpha:.2f}, output change {event.output_change:.2e}) **"
        )

    def on_warning(self, event: RunWarning) -> None:
        self._print(f"warning: {event.message}")

    def on_run_end(self, summary: RunSummary) -> None:
        self.close()
        print(summary_line(summary), flush=True)

    def close(self) -> None:
        if self._dashboard is not None:
            self._dashboard.stop()
            self._dashboard = None


class Dashboard:
    """Progress per phase, a metrics table, a seed panel, banners above them."""

    def __init__(self, run: RunContext) -> None:
        from rich.console import Console
        from rich.live import Live
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console()
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
        )
        warm_up = run.warm_up_epochs
        done = run.start_epoch
        self.phase_tasks = {
            1: self.progress.add_task("phase 1 warm-up", total=warm_up, completed=min(done, warm_up)),
            2: self.progress.add_task(
                "phase 2 adaptation", total=run.total_epochs - warm_up, completed=max(0, done - warm_up)
            ),
        }
        self.rows: list[EpochRecord] = []
        self.live = Live(self._render(), console=self.console, auto_refresh=False)
        self.live.start()

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
                seeds.append(f" {s.seed_id} {s.state} α={s.alpha:.2f} ", style=STATE_STYLES.get(s.state, ""))
        return Group(self.progress, table, Panel(seeds, title="seeds"))

    def update(self, record: EpochRecord) -> None:
        self.rows.append(record)
        self.progress.update(self.phase_tasks[record.phase], advance=1)
        self.live.update(self._render(), refresh=True)

    def banner(self, text: str) -> None:
        from rich.rule import Rule

        self.live.console.print(Rule(text, style="bold magenta"))

    def stop(self) -> None:
        self.live.stop()
