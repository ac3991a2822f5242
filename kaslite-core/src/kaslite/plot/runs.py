"""What a figure draws of a run, read from its folder or handed over by the run itself.

A run folder holds ``history.csv`` (one row per epoch, written as the run
goes), ``events.jsonl`` and, once finished, ``metrics.json``. A run still in
progress has no ``metrics.json`` and is drawn up to its last epoch. A folder
without ``history.csv`` (one copied without it, or from a kaslite that kept
its history only in the checkpoint, as lists) is read from ``checkpoint.pt``.
"""

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from kaslite.errors import ConfigError

HISTORY = "history.csv"
EVENTS = "events.jsonl"
METRICS = "metrics.json"
CHECKPOINT = "checkpoint.pt"
STATE_SUFFIX = "_state"
ALPHA_SUFFIX = "_alpha"


@attrs.frozen
class RunRecord:
    """One run as a figure sees it: per-epoch rows, events in order, and final metrics when finished."""

    name: str
    history: tuple[dict[str, Any], ...]
    events: tuple[dict[str, Any], ...] = ()
    metrics: dict[str, Any] = attrs.field(factory=dict)

    @property
    def finished(self) -> bool:
        return bool(self.metrics)

    @property
    def epochs(self) -> list[int]:
        return [int(row["epoch"]) for row in self.history]

    def column(self, name: str) -> list[float]:
        """A numeric column per epoch (NaN where a row lacks it)."""
        return [_number(row.get(name)) for row in self.history]

    def has(self, name: str) -> bool:
        return any(name in row for row in self.history)

    @property
    def seed_ids(self) -> list[str]:
        """Every seed with a state column, in column order."""
        first = self.history[0] if self.history else {}
        return [key[: -len(STATE_SUFFIX)] for key in first if key.endswith(STATE_SUFFIX)]

    def of_kind(self, event: str) -> list[dict[str, Any]]:
        return [entry for entry in self.events if entry.get("event") == event]

    @property
    def phase2_start(self) -> int | None:
        """The first epoch of phase 2 after a warm-up (None without a warm-up or before it ends)."""
        for entry in self.of_kind("phase_change"):
            if int(entry.get("phase", 0)) == 2 and int(entry.get("epoch", 1)) > 1:
                return int(entry["epoch"])
        phases = [(int(row["epoch"]), int(_number(row.get("phase"), 2))) for row in self.history]
        later = [epoch for epoch, phase in phases if phase == 2]
        return later[0] if later and any(phase == 1 for _, phase in phases) else None


def _number(value: Any, default: float = math.nan) -> float:
    if value is None or value == "":
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _typed(row: Mapping[str | None, Any]) -> dict[str, Any]:
    """A history.csv row with numbers as numbers (states stay text)."""
    typed: dict[str, Any] = {}
    for key, value in row.items():
        if key is None:  # a line with more fields than the header
            continue
        typed[key] = value if key.endswith(STATE_SUFFIX) else _number(value)
    return typed


def _read_history_csv(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="") as handle:
        # A line cut off mid-write (a run in progress, or killed) lacks fields: csv gives them None.
        rows = [_typed(row) for row in csv.DictReader(handle) if None not in row.values()]
    return [row for row in rows if not math.isnan(row.get("epoch", math.nan))]


def _read_events(path: Path) -> list[dict[str, Any]]:
    events = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:  # a line cut off by a killed run
            continue
        if isinstance(entry, dict):
            events.append(entry)
    return events


def _from_checkpoint(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """History rows and events from a checkpoint: JSON text, or lists as older kaslite wrote them."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file
        raise ConfigError(f"{path} is not a readable kaslite checkpoint: {type(exc).__name__}") from exc
    if not isinstance(state, dict) or "history" not in state:
        raise ConfigError(f"{path} holds no run history (not a kaslite checkpoint)")
    history, events = state["history"], state.get("events", [])
    history = json.loads(history) if isinstance(history, str) else list(history)
    events = json.loads(events) if isinstance(events, str) else list(events)
    return [_typed(row) for row in history], [dict(entry) for entry in events]


def load_run(run_dir: Path | str) -> RunRecord:
    """The run in ``run_dir``; a :class:`ConfigError` naming what is missing when it is not a run folder."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is not a folder")
    if (run_dir / HISTORY).is_file():
        history = _read_history_csv(run_dir / HISTORY)
        events = _read_events(run_dir / EVENTS) if (run_dir / EVENTS).is_file() else []
    elif (run_dir / CHECKPOINT).is_file():
        history, events = _from_checkpoint(run_dir / CHECKPOINT)
    else:
        raise ConfigError(f"{run_dir} is not a kaslite run: it has no {HISTORY} (nor {CHECKPOINT})")
    if not history:
        raise ConfigError(f"{run_dir / HISTORY} has no epoch yet: nothing to draw")
    metrics: dict[str, Any] = {}
    if (run_dir / METRICS).is_file():
        try:
            metrics = json.loads((run_dir / METRICS).read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{run_dir / METRICS} is not valid JSON: {exc.msg} (line {exc.lineno})") from exc
    return RunRecord(run_dir.name, tuple(history), tuple(events), metrics)


def record_of(
    name: str, history: Iterable[Mapping[str, Any]], events: Sequence[Mapping[str, Any]], metrics: Mapping[str, Any]
) -> RunRecord:
    """A run as it is in memory at its end (what trackers hold)."""
    return RunRecord(name, tuple(dict(row) for row in history), tuple(dict(e) for e in events), dict(metrics))
