"""The ``tensorboard`` tracker: event files under ``TENSORBOARD_DIR/RUN_NAME/``.

Scalars ``train/loss``, ``validation/loss``, ``validation/accuracy``,
``validation/best_acc`` and ``seed/<id>/alpha`` per epoch, and
``seed/<id>/expansion_score`` where the policy measures scores; text
``phase/transitions``, ``growth/decisions`` and ``seed/<id>/events`` (``SummaryWriter.add_text``
files them as ``<tag>/text_summary``); at the run's end, the run's figure as the image
``run/growth`` (``kaslite plot``'s). Files are flushed every epoch, so
TensorBoard follows a run live and a killed run keeps what it logged.
"""

from pathlib import Path
from typing import Any

from kaslite.train.events import (
    EpochRecord,
    GrowthDecision,
    PhaseChange,
    RunContext,
    RunSummary,
    RunWarning,
    SeedTransition,
)
from kaslite.train.tracker import Tracker

PHASE_NAMES = {1: "warm-up", 2: "adaptation"}
# EpochRecord.metrics() names -> TensorBoard's tags.
SCALAR_TAGS = {
    "train_loss": "train/loss",
    "val_loss": "validation/loss",
    "val_acc": "validation/accuracy",
    "best_acc": "validation/best_acc",
}
FIGURE_TAG = "run/growth"


def log_dir(run: RunContext) -> Path:
    """Where a run's event files go."""
    return Path(run.tracker_options["tensorboard"].tensorboard_dir) / run.run_name


class TensorBoardTracker(Tracker):
    """Writes a run's metrics and events with ``torch.utils.tensorboard``."""

    def __init__(self, run: RunContext) -> None:
        self.log_dir = log_dir(run)
        self.writer: Any = None

    def on_run_start(self, run: RunContext) -> None:
        from torch.utils.tensorboard import SummaryWriter

        from kaslite.plot.tracking import prepare

        prepare()  # the figure written at the run's end

        # A resumed run drops what the killed run logged after its last checkpoint.
        purge_step = run.start_epoch + 1 if run.resumed else None
        self.writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=purge_step)

    def _text(self, tag: str, text: str, step: int) -> None:
        self.writer.add_text(tag, text, step)

    def on_epoch_end(self, record: EpochRecord) -> None:
        scalars = {SCALAR_TAGS[name]: value for name, value in record.metrics().items()}
        for seed in record.seeds:
            scalars[f"seed/{seed.seed_id}/alpha"] = seed.alpha
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, record.epoch)
        self.writer.flush()

    def on_growth_decision(self, event: GrowthDecision) -> None:
        for candidate in event.candidates:
            self.writer.add_scalar(f"seed/{candidate.seed_id}/expansion_score", candidate.score, event.epoch)
        ranked = ", ".join(f"{c.seed_id} {c.score:.3g}" for c in event.candidates) or "no scores"
        chosen = ", ".join(event.chosen) or "nothing"
        self._text("growth/decisions", f"epoch {event.epoch}: grew {chosen} (scores: {ranked})", event.epoch)

    def on_phase_change(self, event: PhaseChange) -> None:
        text = (
            f"epoch {event.epoch}: phase {event.previous} ({PHASE_NAMES.get(event.previous, '?')}) "
            f"→ phase {event.phase} ({PHASE_NAMES.get(event.phase, '?')})"
        )
        self._text("phase/transitions", text, event.epoch)

    def on_seed_transition(self, event: SeedTransition) -> None:
        text = (
            f"epoch {event.epoch}: {event.from_state} → {event.to_state} "
            f"(α {event.alpha:.2f}, output change {event.output_change:.2e})"
        )
        self._text(f"seed/{event.seed_id}/events", text, event.epoch)

    def on_warning(self, event: RunWarning) -> None:
        if event.seed_id is not None:
            self._text(f"seed/{event.seed_id}/events", f"epoch {event.epoch}: {event.message}", event.epoch)

    def where(self) -> list[str]:
        return [f"TensorBoard {self.log_dir}"] if self.log_dir.is_dir() else []

    def on_run_end(self, summary: RunSummary) -> None:
        self._add_figure(summary)
        # Flushed and closed before trackers registered after this one (mlflow) upload the files.
        self.close()

    def _add_figure(self, summary: RunSummary) -> None:
        import io

        import numpy as np
        from PIL import Image  # matplotlib's own dependency

        from kaslite.plot.tracking import summary_png

        png = summary_png(summary)
        if png is None or self.writer is None:
            return
        pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        self.writer.add_image(FIGURE_TAG, pixels, int(summary.history[-1]["epoch"]), dataformats="HWC")

    def close(self) -> None:
        from kaslite.plot.tracking import release

        release()  # the figure's helper, when the run ended without drawing
        if self.writer is not None:
            self.writer.close()
            self.writer = None
