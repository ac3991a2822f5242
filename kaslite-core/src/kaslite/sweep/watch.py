"""The sweep's own tracker: stops a trial whose loss went non-finite, and prunes by the per-epoch metric.

Trackers cannot normally stop a run: the run's TrackerGroup reports and detaches
a tracker that raises an ``Exception``, by design. :class:`TrialStopped` is
therefore a ``BaseException``, like ``KeyboardInterrupt``: it passes through the
trainer's ``finally`` (which still closes every tracker) to the sweep worker.
"""

import contextlib
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kaslite.hookspecs import TrackerSpec, hookimpl
from kaslite.plugins import get_plugin_manager
from kaslite.train.events import EpochRecord
from kaslite.train.tracker import Tracker

if TYPE_CHECKING:
    import optuna

TRACKER_NAME = "kaslite-sweep"


class TrialStopped(BaseException):
    """Ends a trial from inside training; ``pruned`` tells a pruned trial from a diverged one."""

    def __init__(self, reason: str, pruned: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.pruned = pruned


class TrialWatch(Tracker):
    """Watches every epoch of one trial; reports ``metric`` to Optuna when pruning."""

    def __init__(self, trial: "optuna.Trial | None", metric: str) -> None:
        self.trial = trial
        self.metric = metric
        self.last: EpochRecord | None = None

    def on_epoch_end(self, record: EpochRecord) -> None:
        self.last = record
        for name in ("train_loss", "val_loss"):
            value = getattr(record, name)
            if not math.isfinite(value):
                raise TrialStopped(f"{name} is {value} at epoch {record.epoch} (training diverged)", pruned=False)
        if self.trial is None:
            return
        value = float(getattr(record, self.metric))
        self.trial.report(value, record.epoch)
        if self.trial.should_prune():
            raise TrialStopped(f"pruned at epoch {record.epoch}: {self.metric} {value:.4f} below the median", True)

    def partial_metrics(self) -> dict[str, Any]:
        """What the trial reached before it was stopped."""
        if self.last is None:
            return {}
        return {"val_acc": self.last.val_acc, "best_acc": self.last.best_acc, "epochs": self.last.epoch}


class _WatchPlugin:
    """Registers one trial's watch as the ``kaslite-sweep`` tracker."""

    def __init__(self, watch: TrialWatch) -> None:
        self.watch = watch

    def _factory(self, run: Any) -> TrialWatch:
        return self.watch

    @hookimpl
    def kaslite_trackers(self) -> list[TrackerSpec]:
        return [TrackerSpec(TRACKER_NAME, self._factory, "stops a sweep trial that diverged or was pruned")]


@contextlib.contextmanager
def watching(watch: TrialWatch) -> Iterator[str]:
    """Make ``watch`` a tracker for the length of one trial; yields its tracker name."""
    manager = get_plugin_manager()
    plugin = _WatchPlugin(watch)
    manager.register(plugin, name=TRACKER_NAME)
    try:
        yield TRACKER_NAME
    finally:
        manager.unregister(plugin)
