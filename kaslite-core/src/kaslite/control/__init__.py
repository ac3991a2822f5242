"""Growth policies: pure decision logic over immutable observations."""

from kaslite.control.base import Action, Controller, Cull, EpochMetrics, Germinate, Observation, SeedView
from kaslite.control.builtin import KasminaController, NeverController, PeriodicController

__all__ = [
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
