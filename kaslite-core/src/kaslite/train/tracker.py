"""The Tracker base class and the fan-out that keeps one failing tracker from stopping a run."""

import contextlib
import logging
from typing import Any

from kaslite.errors import PluginError, first_line
from kaslite.train.events import (
    EpochRecord,
    GrowthDecision,
    ModelReady,
    PhaseChange,
    RunContext,
    RunFailed,
    RunSummary,
    RunTracked,
    RunWarning,
    SeedTransition,
)

logger = logging.getLogger("kaslite.train")


class Tracker:
    """Receives a run's events. Every method is a no-op: override the ones you need.

    A tracker that raises is reported and detached; the run goes on without it.
    """

    def on_run_start(self, run: RunContext) -> None:
        """The run starts (or resumes: ``run.resumed``); called once, before any other event."""

    def on_epoch_end(self, record: EpochRecord) -> None:
        """An epoch finished (every epoch, warm-up included)."""

    def on_phase_change(self, event: PhaseChange) -> None:
        """Training moved to another phase; sent before the new phase's first ``on_epoch_end``."""

    def on_seed_transition(self, event: SeedTransition) -> None:
        """A seed changed state.

        A seed becomes active during an epoch's training and starts blending
        at its end, before the epoch's ``on_epoch_end``; a germination or cull
        the controller decides on follows the epoch's ``on_epoch_end``.
        """

    def on_growth_decision(self, event: GrowthDecision) -> None:
        """The growth policy decided, after an epoch's ``on_epoch_end`` and before the transitions it causes:
        the expansion scores it saw (for a policy that asks for them) and what it germinated."""

    def on_warning(self, event: RunWarning) -> None:
        """Something worth a look happened."""

    def on_model_ready(self, event: ModelReady) -> None:
        """The final model file is written; sent after the last epoch, before ``on_run_end``."""

    def on_run_end(self, summary: RunSummary) -> None:
        """The run finished; ``summary.metrics`` are the final metrics."""

    def on_run_failed(self, event: RunFailed) -> None:
        """The run stopped on an error or an interrupt before finishing; ``on_run_tracked`` and ``close`` follow."""

    def where(self) -> list[str]:
        """Where this tracker recorded the run, for people: one short line per place; none by default.

        Asked once the run has ended or failed (after ``on_run_end`` or
        ``on_run_failed``); every tracker hears the answers in ``on_run_tracked``.
        """
        return []

    def on_run_tracked(self, event: RunTracked) -> None:
        """Every tracker's ``where()``, once the run has ended or failed; ``close`` follows."""

    def close(self) -> None:
        """Release resources; called once, whether the run finished or failed."""


class TrackerGroup:
    """Sends each event to every tracker; a tracker that raises is reported once and detached, and the run
    goes on: the plugin host's one policy for a failing extension (fatal under ``KASLITE_STRICT_PLUGINS=1``,
    with the traceback under ``--debug``)."""

    def __init__(self, trackers: dict[str, Tracker]) -> None:
        self.trackers = dict(trackers)
        self.detached: dict[str, str] = {}
        # Warnings raised while trackers start wait until all have started:
        # a tracker must not hear of another's failure before its own on_run_start.
        self._starting = False
        self._pending: list[RunWarning] = []

    def emit(self, method: str, event: Any) -> None:
        self._starting = method == "on_run_start"
        for name, tracker in list(self.trackers.items()):
            try:
                getattr(tracker, method)(event)
            except Exception as exc:
                self._detach(name, method, exc, getattr(event, "epoch", 0))
        if self._starting:
            self._starting = False
            pending, self._pending = self._pending, []
            for warning in pending:
                self.emit("on_warning", warning)

    def announce_places(self, epoch: int) -> None:
        """Ask every tracker ``where()`` it recorded the run and tell them all (``on_run_tracked``)."""
        places: list[str] = []
        for name, tracker in list(self.trackers.items()):
            try:
                places += [str(place) for place in tracker.where()]
            except Exception as exc:
                self._detach(name, "where", exc, epoch)
        self.emit("on_run_tracked", RunTracked(tuple(places)))

    def _detach(self, name: str, method: str, exc: Exception, epoch: int) -> None:
        from kaslite.plugins import DEBUG_ENV, STRICT_ENV, TRACKER, env_flag, get_plugin_manager

        tracker = self.trackers.pop(name)
        # A tracker hosted in a helper process raised there, in the method it names.
        method = getattr(exc, "method", method)
        reason = getattr(exc, "reason", None) or first_line(exc)
        self.detached[name] = reason
        manager = get_plugin_manager()
        plugin = f" (plugin {manager.provider(TRACKER, name)})" if name in manager.collected(TRACKER).providers else ""
        if env_flag(STRICT_ENV):
            raise PluginError(f"tracker {name!r}{plugin} failed in {method}: {reason}") from exc
        message = f"tracker {name!r}{plugin} failed in {method} and was detached; the run goes on ({reason})"
        logger.warning("kaslite: %s", message, exc_info=exc if env_flag(DEBUG_ENV) else None)
        with contextlib.suppress(Exception):  # already failing; closing is best effort
            tracker.close()
        warning = RunWarning(epoch=epoch, kind="tracker", message=message)
        if self._starting:
            self._pending.append(warning)
        else:
            self.emit("on_warning", warning)

    def close(self) -> None:
        for name, tracker in list(self.trackers.items()):
            try:
                tracker.close()
            except Exception as exc:
                logger.warning("kaslite: tracker %r failed to close: %s", name, exc)
