"""Growth policies: pure decision logic over immutable observations."""

from kaslite.control.base import (
    SEED_KINDS,
    Action,
    Controller,
    Cull,
    EpochMetrics,
    Germinate,
    Observation,
    SeedView,
)
from kaslite.control.builtin import KasminaController, NeverController, PeriodicController

__all__ = [
    "SEED_KINDS",
    "Action",
    "Controller",
    "Cull",
    "EpochMetrics",
    "Germinate",
    "KasminaController",
    "NeverController",
    "Observation",
    "PeriodicController",
    "SeedView",
]
