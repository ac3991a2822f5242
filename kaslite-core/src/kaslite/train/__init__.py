"""Training: the growth driver, the trainer, their events and trackers, and the experiment runner."""

from kaslite.train.events import (
    EpochRecord,
    ModelReady,
    PhaseChange,
    RunContext,
    RunFailed,
    RunSummary,
    RunWarning,
    SeedTransition,
)
from kaslite.train.grower import Grower, GrowthPolicyError, count_parameters, find_seeds
from kaslite.train.runner import resume_experiment, run_experiment
from kaslite.train.tracker import Tracker
from kaslite.train.trainer import Trainer

__all__ = [
    "EpochRecord",
    "Grower",
    "GrowthPolicyError",
    "ModelReady",
    "PhaseChange",
    "RunContext",
    "RunFailed",
    "RunSummary",
    "RunWarning",
    "SeedTransition",
    "Tracker",
    "Trainer",
    "count_parameters",
    "find_seeds",
    "resume_experiment",
    "run_experiment",
]
