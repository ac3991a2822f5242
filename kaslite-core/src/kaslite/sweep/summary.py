"""One row per slot, read from the study (so any worker, on any machine, can write the whole summary).

A slot may have several attempts (a retry after a worker died); its row shows
the attempt that counts: a completed one, else a pruned one, else one that
failed with an error, else the one still running or queued.
"""

import csv
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from kaslite.sweep.grid import grid_points, slot_count
from kaslite.sweep.spec import Scalar, SweepSpec
from kaslite.sweep.study import ERROR, METRICS, RUN_SLUG, SLOT, SURPLUS, WALL_TIME, WORKER

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

METRIC_COLUMNS = (
    "best_acc", "val_acc", "accuracy_dip", "recovery_time", "seeds_activated", "total_seeds", "params_total",
)  # fmt: skip
CSV_FILE = "sweep_summary.csv"
JSON_FILE = "sweep_summary.json"
FINISHED = ("completed", "failed", "pruned")


@attrs.frozen
class TrialRow:
    """One slot of the sweep as the summary shows it."""

    run_id: int
    run_slug: str
    params: dict[str, Scalar]
    metrics: dict[str, Any]
    wall_time_s: float | None
    status: str  # completed, failed, pruned, running, pending
    error: str = ""
    worker: str = ""  # host:pid of the process that ran it

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def value(self, metric: str) -> float | None:
        """The trial's value of ``metric``, if it has a finite one."""
        value = self.metrics.get(metric)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        return None

    def record(self, parameters: Sequence[str]) -> dict[str, Any]:
        """The CSV row: run_id, run_slug, each swept parameter, the metrics, wall time, status, error."""
        row: dict[str, Any] = {"run_id": self.run_id, "run_slug": self.run_slug}
        row.update({name: self.params.get(name, "") for name in parameters})
        row.update({name: self.metrics.get(name, "") for name in METRIC_COLUMNS})
        row["wall_time_s"] = "" if self.wall_time_s is None else self.wall_time_s
        row["status"] = self.status
        row["error"] = self.error
        return row


def _status(trial: "FrozenTrial", attempts: int, max_attempts: int) -> tuple[str, str]:
    from optuna.trial import TrialState

    if trial.state == TrialState.COMPLETE:
        return "completed", ""
    if trial.state == TrialState.PRUNED:
        return "pruned", ""
    if ERROR in trial.user_attrs:
        return "failed", str(trial.user_attrs[ERROR])
    if trial.state == TrialState.RUNNING:
        return "running", ""
    if trial.state == TrialState.WAITING:
        return "pending", ""
    # Failed without an error of its own: its worker stopped (killed, interrupted, lost its machine).
    if attempts >= max_attempts:
        return "failed", f"its worker stopped {attempts} times before the trial finished"
    return "pending", ""


def _rank(trial: "FrozenTrial") -> int:
    from optuna.trial import TrialState

    if trial.state == TrialState.COMPLETE:
        return 0
    if trial.state == TrialState.PRUNED:
        return 1
    if ERROR in trial.user_attrs:
        return 2
    return {TrialState.RUNNING: 3, TrialState.WAITING: 4}.get(trial.state, 5)


def slot_rows(trials: Sequence["FrozenTrial"], spec: SweepSpec, max_attempts: int = 3) -> list[TrialRow]:
    """A row for every slot of the sweep, run or not."""
    attempts: dict[int, list[FrozenTrial]] = {}
    for trial in trials:
        if SLOT in trial.user_attrs and not trial.user_attrs.get(SURPLUS):
            attempts.setdefault(int(trial.user_attrs[SLOT]), []).append(trial)
    points = grid_points(spec) if spec.method == "grid" else None
    rows = []
    for slot in range(slot_count(spec)):
        tries = attempts.get(slot, [])
        if not tries:
            rows.append(TrialRow(slot + 1, "", dict(points[slot]) if points else {}, {}, None, "pending"))
            continue
        # The attempt that counts; among equals, the latest.
        best = min(tries, key=lambda t: (_rank(t), -t.number))
        status, error = _status(best, len(tries), max_attempts)
        metrics = dict(best.user_attrs.get(METRICS) or {})
        wall = metrics.get("wall_time_s", best.user_attrs.get(WALL_TIME))
        params = dict(points[slot]) if points else dict(best.params)
        slug = str(best.user_attrs.get(RUN_SLUG, ""))
        worker = str(best.user_attrs.get(WORKER, ""))
        rows.append(TrialRow(slot + 1, slug, params, metrics, wall, status, error, worker))
    return rows


def best_row(rows: Sequence[TrialRow], spec: SweepSpec) -> TrialRow | None:
    """The completed trial with the best value of the sweep's metric."""
    ranked = [row for row in rows if row.status == "completed" and row.value(spec.metric) is not None]
    if not ranked:
        return None
    sign = 1.0 if spec.direction == "maximize" else -1.0
    # Ties go to the lower run_id, so the answer does not depend on which worker finished first.
    return max(ranked, key=lambda row: (sign * (row.value(spec.metric) or 0.0), -row.run_id))


def _atomic_write(path: Path, text: str) -> None:
    # Several workers may write the same summary; each write replaces the file whole.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_summary(sweep_dir: Path, spec: SweepSpec, rows: Sequence[TrialRow], about: dict[str, Any]) -> None:
    """``sweep_summary.csv`` and ``sweep_summary.json`` in ``sweep_dir``."""
    import io

    parameters = list(spec.parameters)
    records = [row.record(parameters) for row in rows]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["run_id", "run_slug", *parameters, *METRIC_COLUMNS,
                                                "wall_time_s", "status", "error"])  # fmt: skip
    writer.writeheader()
    writer.writerows(records)
    _atomic_write(sweep_dir / CSV_FILE, buffer.getvalue())
    best = best_row(rows, spec)
    payload = {
        **about,
        "method": spec.method,
        "metric": spec.metric,
        "direction": spec.direction,
        "parameters": parameters,
        "counts": counts(rows),
        "best": None if best is None else {**best.record(parameters), "metrics": best.metrics},
        "trials": [
            {**record, "metrics": row.metrics, "worker": row.worker} for record, row in zip(records, rows, strict=True)
        ],
    }
    _atomic_write(sweep_dir / JSON_FILE, json.dumps(payload, indent=2, default=str) + "\n")


def counts(rows: Sequence[TrialRow]) -> dict[str, int]:
    """How many trials are in each status, in a fixed order."""
    order = ("completed", "pruned", "failed", "running", "pending")
    return {status: n for status in order if (n := sum(row.status == status for row in rows))}


def describe(row: TrialRow, spec: SweepSpec) -> str:
    """``run_002_1a2b3c4d val_acc 0.9750 (lr=0.003, num_layers=4)``."""
    value = row.value(spec.metric)
    shown = f"{spec.metric} {value:.4f}" if value is not None else spec.metric + " -"
    params = ", ".join(f"{name}={value}" for name, value in row.params.items())
    return f"{row.run_slug or f'run {row.run_id:03d}'} {shown} ({params})"


def closing_line(rows: Sequence[TrialRow], spec: SweepSpec, sweep_dir: Path) -> str:
    """The line a sweep ends with: the best trial, the counts, where the summary is."""
    best = best_row(rows, spec)
    tally = ", ".join(f"{n} {status}" for status, n in counts(rows).items())
    head = f"best trial: {describe(best, spec)}" if best else "no trial completed"
    return f"{spec.name}: {head}; {len(rows)} trials: {tally} -> {sweep_dir / CSV_FILE}"
