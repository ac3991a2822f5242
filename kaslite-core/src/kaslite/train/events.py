"""What a run tells its trackers: frozen records, one per kind of event."""

from pathlib import Path
from typing import Any

import attrs

from kaslite.config import ExperimentConfig
from kaslite.control.base import SeedView


@attrs.frozen
class RunContext:
    """Given to tracker factories and ``on_run_start``: what the run is and where it writes."""

    config: ExperimentConfig
    run_dir: Path
    run_name: str
    seed_ids: tuple[str, ...]
    total_epochs: int
    warm_up_epochs: int
    start_epoch: int = 0  # epochs already done (a resumed run)
    quiet: bool = False  # console output: only the final summary line
    # Tracker name -> its validated options_type instance (see TrackerSpec).
    tracker_options: dict[str, Any] = attrs.field(factory=dict)
    # Free-form context for trackers, e.g. {"sweep_id": ..., "trial": "3"} for a sweep's trials.
    labels: dict[str, str] = attrs.field(factory=dict)
    # Rows and events written before a resume, so file trackers can rewrite them exactly.
    history: tuple[dict[str, Any], ...] = ()
    events: tuple[dict[str, Any], ...] = ()

    @property
    def resumed(self) -> bool:
        return self.start_epoch > 0


@attrs.frozen
class EpochRecord:
    """One finished epoch: losses, accuracy and every seed's state."""

    epoch: int
    phase: int
    train_loss: float
    val_loss: float
    val_acc: float
    best_acc: float
    seeds: tuple[SeedView, ...]
    # The controller's state_dict() after it decided on this epoch (e.g. kasmina's plateau counter).
    controller: dict[str, Any] = attrs.field(factory=dict)
    duration_s: float = 0.0  # wall time of the epoch's training, validation and decision

    def row(self) -> dict[str, Any]:
        """A flat history.csv row: the metrics, then each seed's state and alpha."""
        row: dict[str, Any] = {
            "epoch": self.epoch,
            "phase": self.phase,
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            "val_acc": self.val_acc,
            "best_acc": self.best_acc,
        }
        for seed in self.seeds:
            row[f"{seed.seed_id}_state"] = seed.state
            row[f"{seed.seed_id}_alpha"] = seed.alpha
        return row


@attrs.frozen
class PhaseChange:
    """Training entered ``phase`` (2 = adaptation) at the start of ``epoch``."""

    epoch: int
    phase: int
    previous: int


@attrs.frozen
class SeedTransition:
    """A seed changed state; ``output_change`` is the largest absolute change of the
    network's output on the probe batch across the transition (NaN without a probe batch)."""

    epoch: int
    seed_id: str
    from_state: str
    to_state: str
    alpha: float
    output_change: float


@attrs.frozen
class RunWarning:
    """Something worth a look that does not stop the run (drift, a detached tracker)."""

    epoch: int
    kind: str
    message: str
    seed_id: str | None = None
    value: float | None = None


@attrs.frozen
class ModelReady:
    """The final model file is written."""

    path: Path
    metadata: dict[str, Any]


@attrs.frozen
class RunFailed:
    """The run stopped at ``epoch`` on an error (``interrupted``: the user stopped it, e.g. Ctrl-C).

    The last good epoch's checkpoint stays in ``run_dir`` (when there is one) for ``--resume``.
    """

    epoch: int
    error: str  # one line: the exception's type and first line
    interrupted: bool = False
    run_dir: Path | None = None

    @classmethod
    def from_exception(cls, epoch: int, exc: BaseException, run_dir: Path | None) -> "RunFailed":
        text = str(exc).strip()
        error = f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
        return cls(epoch, error, isinstance(exc, KeyboardInterrupt), run_dir)


@attrs.frozen
class RunSummary:
    """The final metrics (also in ``metrics.json``) and where the run lives."""

    run_dir: Path
    run_name: str
    metrics: dict[str, Any]


def event_dict(event: PhaseChange | SeedTransition | RunWarning) -> dict[str, Any]:
    """An event as one JSON object, with its kind under ``event``."""
    kinds = {PhaseChange: "phase_change", SeedTransition: "seed_transition", RunWarning: "warning"}
    return {"event": kinds[type(event)], **attrs.asdict(event)}
