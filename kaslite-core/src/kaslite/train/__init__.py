"""Training: the trainer, its events and trackers, and the experiment runner."""

from kaslite.train.events import (
    EpochRecord,
    ModelReady,
    PhaseChange,
    RunContext,
    RunSummary,
    RunWarning,
    SeedTransition,
)
from kaslite.train.runner import resume_experiment, run_experiment
from kaslite.train.tracker import Tracker
from kaslite.train.trainer import Trainer

__all__ = [
    "EpochRecord",
    "ModelReady",
    "PhaseChange",
    "RunContext",
    "RunSummary",
    "RunWarning",
    "SeedTransition",
    "Tracker",
    "Trainer",
    "resume_experiment",
    "run_experiment",
]
