"""Training: the growth driver, the trainer, their events and trackers, and the experiment runner.

The events and the :class:`Tracker` base class load without torch, so a
tracker plugin may import them at the top of its module; the trainer and
the growth driver, the trainer and the runner (torch) load on first use.
"""

import importlib
from typing import TYPE_CHECKING, Any

from kaslite.train.events import (
    EpochRecord,
    ModelReady,
    PhaseChange,
    RunContext,
    RunFailed,
    RunSummary,
    RunTracked,
    RunWarning,
    SeedTransition,
)
from kaslite.train.tracker import Tracker

if TYPE_CHECKING:
    from kaslite.nn.modules import count_parameters, find_seeds
    from kaslite.train.grower import Grower, GrowthPolicyError
    from kaslite.train.runner import resume_experiment, run_experiment
    from kaslite.train.trainer import Trainer

# Name -> module, imported when the name is first used (they import torch).
_LAZY = {
    "Grower": "kaslite.train.grower",
    "GrowthPolicyError": "kaslite.train.grower",
    "count_parameters": "kaslite.nn.modules",
    "find_seeds": "kaslite.nn.modules",
    "Trainer": "kaslite.train.trainer",
    "resume_experiment": "kaslite.train.runner",
    "run_experiment": "kaslite.train.runner",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "EpochRecord",
    "Grower",
    "GrowthPolicyError",
    "ModelReady",
    "PhaseChange",
    "RunContext",
    "RunFailed",
    "RunSummary",
    "RunTracked",
    "RunWarning",
    "SeedTransition",
    "Tracker",
    "Trainer",
    "count_parameters",
    "find_seeds",
    "resume_experiment",
    "run_experiment",
]
