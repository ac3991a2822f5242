"""The ``json`` tracker: metrics.json, timing.json, history.csv and events.jsonl in the run directory.

metrics.json holds what the run computed, so the same config and seed give the
same file byte for byte (pipelines such as DVC see an unchanged result);
timing.json holds what this machine measured (the wall time).
"""

import csv
import json
from pathlib import Path
from typing import Any, TextIO

from kaslite.train.events import (
    EpochRecord,
    GrowthDecision,
    PhaseChange,
    RunContext,
    RunSummary,
    RunWarning,
    SeedTransition,
    event_dict,
)
from kaslite.train.tracker import Tracker

METRICS = "metrics.json"
TIMING = "timing.json"
TIMING_KEYS = ("wall_time_s",)
HISTORY = "history.csv"
EVENTS = "events.jsonl"


def run_files_content(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"metrics.json": results, "timing.json": measurements}`` from a run's final metrics."""
    return {
        METRICS: {key: value for key, value in metrics.items() if key not in TIMING_KEYS},
        TIMING: {key: metrics[key] for key in TIMING_KEYS if key in metrics},
    }


class RunFilesTracker(Tracker):
    """Writes the run's files as it goes, flushing every line so a killed run keeps them."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self._history: TextIO | None = None
        self._writer: csv.DictWriter[str] | None = None
        self._events: TextIO | None = None

    def on_run_start(self, run: RunContext) -> None:
        # A resumed run rewrites exactly what its checkpoint knew, dropping any
        # rows written after that checkpoint by the run that was killed.
        self._events = (self.run_dir / EVENTS).open("w")
        for event in run.events:
            self._write_event(event)
        self._history = (self.run_dir / HISTORY).open("w", newline="")
        for row in run.history:
            self._write_row(row)

    def _write_row(self, row: dict[str, Any]) -> None:
        assert self._history is not None
        if self._writer is None:
            self._writer = csv.DictWriter(self._history, fieldnames=list(row))
            self._writer.writeheader()
        self._writer.writerow(row)
        self._history.flush()

    def _write_event(self, event: dict[str, Any]) -> None:
        assert self._events is not None
        self._events.write(json.dumps(event) + "\n")
        self._events.flush()

    def on_epoch_end(self, record: EpochRecord) -> None:
        self._write_row(record.row())

    def on_phase_change(self, event: PhaseChange) -> None:
        self._write_event(event_dict(event))

    def on_seed_transition(self, event: SeedTransition) -> None:
        self._write_event(event_dict(event))

    def on_growth_decision(self, event: GrowthDecision) -> None:
        self._write_event(event_dict(event))

    def on_warning(self, event: RunWarning) -> None:
        self._write_event(event_dict(event))

    def on_run_end(self, summary: RunSummary) -> None:
        for name, content in run_files_content(summary.metrics).items():
            (self.run_dir / name).write_text(json.dumps(content, indent=2) + "\n")

    def close(self) -> None:
        for handle in (self._history, self._events):
            if handle is not None:
                handle.close()
        self._history = self._events = None
