"""Put a tracker through a whole run's events, in the order the trainer sends them, without training.

::

    from kaslite.testing import drive_tracker, scripted_run

    run = scripted_run(tmp_path)
    drive_tracker(MyTracker(run.context), run)
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from kaslite.config import ExperimentConfig, build_config
from kaslite.control.base import SeedView
from kaslite.train.events import (
    EpochRecord,
    ModelReady,
    PhaseChange,
    RunContext,
    RunSummary,
    RunTracked,
    RunWarning,
    SeedTransition,
    drift_message,
    event_dict,
)
from kaslite.train.summary import final_metrics
from kaslite.train.tracker import Tracker


@attrs.frozen
class ScriptedRun:
    """A run's events: the context trackers are built with, then each (Tracker method, record) in order."""

    context: RunContext
    calls: tuple[tuple[str, Any], ...]

    def methods(self) -> list[str]:
        """The Tracker methods called, in order (``close`` is not listed: :func:`drive_tracker` adds it)."""
        return [method for method, _ in self.calls]


def scripted_run(
    run_dir: Path,
    *,
    warm_up_epochs: int = 2,
    adaptation_epochs: int = 4,
    run_name: str = "scripted",
    tracker_options: Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
) -> ScriptedRun:
    """A small run's events: warm-up, the phase change, the first seed's whole growth, a drift warning, the end.

    Like a real run: the first seed germinates right after the first
    adaptation epoch's record, starts blending after the next epoch, becomes
    active during the one after that (which also warns about its drift);
    then the model is ready and the run ends. No model file is written:
    ``ModelReady.path`` names ``run_dir/model.pt`` without creating it.
    ``tracker_options`` (tracker name -> options instance) and ``labels``
    reach the context, as ``kaslite run`` would pass them.
    """
    if adaptation_epochs < 3:
        raise ValueError("a scripted run grows a seed over three adaptation epochs: adaptation_epochs must be >= 3")
    config: ExperimentConfig = build_config(
        {
            "data": {"problem": "xor"},
            "model": {"num_layers": 2, "seeds_per_layer": 1},
            "train": {"warm_up_epochs": warm_up_epochs, "adaptation_epochs": adaptation_epochs},
        }
    )
    seed_ids = ("seed1_1", "seed2_1")
    total = warm_up_epochs + adaptation_epochs
    context = RunContext(
        config,
        Path(run_dir),
        run_name,
        seed_ids,
        total,
        warm_up_epochs,
        tracker_options=dict(tracker_options or {}),
        labels=dict(labels or {}),
    )
    calls: list[tuple[str, Any]] = [("on_run_start", context)]
    events: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    states = dict.fromkeys(seed_ids, "dormant")
    alphas = dict.fromkeys(seed_ids, 0.0)
    germinate, blend, activate = warm_up_epochs + 1, warm_up_epochs + 2, warm_up_epochs + 3

    def event(method: str, record: PhaseChange | SeedTransition | RunWarning) -> None:
        calls.append((method, record))
        events.append(event_dict(record))

    def transition(epoch: int, to_state: str, alpha: float) -> None:
        event("on_seed_transition", SeedTransition(epoch, "seed1_1", states["seed1_1"], to_state, alpha, 0.0, "deep"))
        states["seed1_1"], alphas["seed1_1"] = to_state, alpha

    best = 0.0
    for epoch in range(1, total + 1):
        phase = 1 if epoch <= warm_up_epochs else 2
        if epoch == warm_up_epochs + 1:
            event("on_phase_change", PhaseChange(epoch, 2, 1))
        if epoch == activate:  # during the epoch's training steps
            transition(epoch, "active", 1.0)
            message = drift_message("seed1_1", 0.6, config.seeds.drift_warn, 0.3, 0.35)
            event("on_warning", RunWarning(epoch, "drift", message, "seed1_1", 0.6))
        if epoch == blend:  # after the epoch's training, before its record
            transition(epoch, "blending", 0.0)
        val_acc = round(0.5 + 0.4 * epoch / total, 4)
        best = max(best, val_acc)
        seeds = tuple(
            SeedView(sid, layer, states[sid], alphas[sid], 1.0 / layer, 0.6 if states[sid] == "active" else 0.0, 0.0)
            for layer, sid in enumerate(seed_ids, start=1)
        )
        params = 100 if states["seed1_1"] == "dormant" else 150  # the trunk, then with seed1_1's child
        record = EpochRecord(
            epoch, phase, round(1.0 / epoch, 4), round(1.2 / epoch, 4), val_acc, best, seeds, params=params
        )
        calls.append(("on_epoch_end", record))
        history.append(record.row())
        if epoch == germinate:  # the policy's decision follows the epoch's record
            transition(epoch, "training", 0.0)
    metrics = final_metrics(history, events, warm_up_epochs, states, (100, 150), 1.0)
    metadata = {"run_name": run_name, "problem": config.data.problem, "val_acc": metrics["val_acc"]}
    calls.append(("on_model_ready", ModelReady(Path(run_dir) / "model.pt", metadata)))
    calls.append(("on_run_end", RunSummary(Path(run_dir), run_name, metrics, tuple(history), tuple(events))))
    return ScriptedRun(context, tuple(calls))


def drive_tracker(tracker: Tracker, run: ScriptedRun) -> None:
    """Send ``tracker`` every event of ``run`` in order, then ``close()`` it, as the trainer would.

    After the last event it asks the tracker ``where()`` it recorded the run
    and sends the answer back as ``on_run_tracked`` (in a real run that event
    carries every tracker's places). Unlike a real run, an exception the
    tracker raises is not caught: the test sees it with its traceback.
    ``close()`` is called either way.
    """
    try:
        for method, record in run.calls:
            getattr(tracker, method)(record)
        tracker.on_run_tracked(RunTracked(tuple(tracker.where())))
    finally:
        tracker.close()
