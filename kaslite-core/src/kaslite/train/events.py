"""What a run tells its trackers: frozen records, one per kind of event."""

from pathlib import Path
from typing import Any

import attrs

from kaslite.config import ExperimentConfig
from kaslite.control.base import Candidate, SeedView
from kaslite.errors import first_line


@attrs.frozen
class RunContext:
    """Given to tracker factories and ``on_run_start``: what the run is and where it writes.

    :param config: the run's whole configuration, plugin parameters resolved
        (``config.yaml`` holds the same).
    :param run_dir: the run's directory (``OUTPUT_DIR/RUN_NAME``).
    :param run_name: the directory's name.
    :param seed_ids: every seed of the network, ``seed{layer}_{j}`` then ``wide_{j}``, in network order.
    :param total_epochs: warm-up plus adaptation epochs.
    :param warm_up_epochs: epochs of phase 1 (the trunk alone).
    :param start_epoch: epochs already done: 0, or where a resumed run continues.
    :param quiet: console output should be only the final summary line.
    :param tracker_options: tracker name -> its validated ``options_type``
        instance (see ``TrackerSpec``).
    :param threads: torch threads the run trains with (``train.threads``, or
        the automatic choice for the network's size).
    :param labels: free-form context, e.g. ``{"sweep_id": ..., "trial": "3"}``
        for a sweep's trials.
    :param history: ``history.csv`` rows written before a resume, so a file
        tracker can rewrite them exactly.
    :param events: ``events.jsonl`` entries written before a resume.
    """

    config: ExperimentConfig
    run_dir: Path
    run_name: str
    seed_ids: tuple[str, ...]
    total_epochs: int
    warm_up_epochs: int
    start_epoch: int = 0
    quiet: bool = False
    tracker_options: dict[str, Any] = attrs.field(factory=dict)
    threads: int = 0
    labels: dict[str, str] = attrs.field(factory=dict)
    history: tuple[dict[str, Any], ...] = ()
    events: tuple[dict[str, Any], ...] = ()

    @property
    def resumed(self) -> bool:
        """Whether the run continues from a checkpoint."""
        return self.start_epoch > 0


@attrs.frozen
class EpochRecord:
    """One finished epoch: losses, accuracy and every seed's state.

    Sent for every epoch, warm-up (phase 1) included.

    :param epoch: the epoch's number, from 1.
    :param phase: 1 (warm-up: the trunk trains, seeds dormant) or 2 (adaptation).
    :param train_loss: mean training loss over the epoch.
    :param val_loss: validation loss after the epoch.
    :param val_acc: validation accuracy after the epoch, in [0, 1].
    :param best_acc: the best ``val_acc`` so far.
    :param seeds: every seed's state after the epoch, as ``SeedView`` (see below).
    :param controller: the controller's ``state_dict()`` after the epoch
        (e.g. kasmina's plateau counter); it decides only in phase 2.
    :param duration_s: wall time of the epoch's training, validation and decision.
    :param params: the network's parameters after the epoch: the trunk and every grown seed's
        new ones (``params_total`` of metrics.json at the run's end).
    """

    epoch: int
    phase: int
    train_loss: float
    val_loss: float
    val_acc: float
    best_acc: float
    seeds: tuple[SeedView, ...]
    controller: dict[str, Any] = attrs.field(factory=dict)
    duration_s: float = 0.0
    params: int = 0

    def metrics(self) -> dict[str, float]:
        """The epoch's metrics by the names history.csv and MLflow give them (trackers map them to theirs)."""
        return {
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            "val_acc": self.val_acc,
            "best_acc": self.best_acc,
        }

    def row(self) -> dict[str, Any]:
        """A flat history.csv row: the metrics, the parameter count, then each seed's state and alpha."""
        row: dict[str, Any] = {"epoch": self.epoch, "phase": self.phase, **self.metrics(), "params": self.params}
        for seed in self.seeds:
            row[f"{seed.seed_id}_state"] = seed.state
            row[f"{seed.seed_id}_alpha"] = seed.alpha
        return row


@attrs.frozen
class PhaseChange:
    """Training entered ``phase`` (2 = adaptation) at the start of ``epoch``.

    :param epoch: the first epoch of the new phase.
    :param phase: the new phase (2).
    :param previous: the phase before (1).
    """

    epoch: int
    phase: int
    previous: int


@attrs.frozen
class SeedTransition:
    """A seed changed state.

    :param epoch: the epoch during (or right after) which it happened.
    :param seed_id: which seed (``seed{layer}_{j}`` in kaslite's own network; a
        module path in yours).
    :param from_state: the state it left (a seed state name).
    :param to_state: the state it entered.
    :param alpha: the seed's blend weight after the transition.
    :param output_change: the largest absolute change of the network's output
        on the probe batch across the transition (0 for a smooth one; NaN when
        the growth driver has no probe batch).
    :param kind: the seed's kind: ``deep``, ``wide`` or ``width`` (``SentinelSeed.kind``).
    """

    epoch: int
    seed_id: str
    from_state: str
    to_state: str
    alpha: float
    output_change: float
    kind: str = ""


@attrs.frozen
class GrowthDecision:
    """What the growth policy saw and chose after an epoch of phase 2, when it measured expansion scores
    or grew something.

    :param epoch: the epoch just finished.
    :param candidates: every dormant seed's expansion score, best first (empty for a
        policy that does not ask for scores).
    :param chosen: the seeds the policy germinated (empty: it grew nothing).
    """

    epoch: int
    candidates: tuple[Candidate, ...]
    chosen: tuple[str, ...]


@attrs.frozen
class RunWarning:
    """Something worth a look that does not stop the run (drift, a detached tracker).

    :param epoch: the epoch it happened in (0 before the first).
    :param kind: ``drift``, ``tracker`` (a tracker failed and was detached) or ``policy`` (the growth
        policy is not shown some of the seeds: see ``Controller.seed_kinds``).
    :param message: one line for people.
    :param seed_id: the seed concerned, for a drift warning.
    :param value: the measured value, for a drift warning.
    """

    epoch: int
    kind: str
    message: str
    seed_id: str | None = None
    value: float | None = None


def drift_message(seed_id: str, drift: float, limit: float, loss_before: float, loss_now: float) -> str:
    """A drift warning's message: the value, what it means, and what to do."""
    return (
        f"{seed_id} drift {drift:.3f} is above drift_warn {limit}: it makes up {drift:.0%} of the network's "
        f"output, and val loss rose from {loss_before:.4f} to {loss_now:.4f} since it began blending; "
        "if it keeps rising, cull the seed or lower the learning rate"
    )


@attrs.frozen
class ModelReady:
    """The final model file is written.

    :param path: the model file (``model.pt``), loadable with ``kaslite.models.load_model``.
    :param metadata: what the file records about the run: run name, problem,
        val_acc, best_acc, seeds_activated and the config.
    """

    path: Path
    metadata: dict[str, Any]


@attrs.frozen
class RunFailed:
    """The run stopped before finishing; the last good epoch's checkpoint stays for ``--resume``.

    :param epoch: the epoch that was under way.
    :param error: one line: the exception's type and first line.
    :param interrupted: true when the user stopped the run (Ctrl-C), not an error.
    :param run_dir: where the run's files and checkpoint are, when it has a directory.
    """

    epoch: int
    error: str
    interrupted: bool = False
    run_dir: Path | None = None

    @classmethod
    def from_exception(cls, epoch: int, exc: BaseException, run_dir: Path | None) -> "RunFailed":
        return cls(epoch, first_line(exc), isinstance(exc, KeyboardInterrupt), run_dir)


@attrs.frozen
class RunTracked:
    """Where the run's trackers recorded it: sent once the run has ended or failed, before ``close``.

    :param places: one line per place, for people, from each tracker's
        ``where()`` in tracker order (e.g. ``MLflow run 3f2a... in experiment
        'kaslite' (sqlite:///mlflow.db)``, ``TensorBoard runs/NAME``).
    """

    places: tuple[str, ...]


@attrs.frozen
class RunSummary:
    """The final metrics (in ``metrics.json``, but for wall_time_s: ``timing.json``) and where the run lives.

    :param run_dir: the run's directory.
    :param run_name: its name.
    :param metrics: best_acc, val_acc, val_loss, train_loss, phase1_best_acc,
        accuracy_dip, recovery_time, seeds_activated, total_seeds,
        params_trunk, params_total, epochs, warm_up_epochs, wall_time_s.
    :param history: every epoch's history.csv row, from the first (a resumed run's included).
    :param events: every events.jsonl entry, in order.
    """

    run_dir: Path
    run_name: str
    metrics: dict[str, Any]
    history: tuple[dict[str, Any], ...] = ()
    events: tuple[dict[str, Any], ...] = ()


def event_dict(event: PhaseChange | SeedTransition | GrowthDecision | RunWarning) -> dict[str, Any]:
    """An event as one JSON object, with its kind under ``event``."""
    kinds = {
        PhaseChange: "phase_change",
        SeedTransition: "seed_transition",
        GrowthDecision: "growth_decision",
        RunWarning: "warning",
    }
    return {"event": kinds[type(event)], **attrs.asdict(event)}
