"""Builtin growth policies: ``kasmina`` (plateau), ``periodic`` and ``never``."""

import math
from typing import Any

from kaslite.config import ControllerConfig
from kaslite.control.base import Action, Controller, Germinate, Observation

IN_FLIGHT = ("training", "blending")


class KasminaController(Controller):
    """Germinate the least healthy dormant seed when validation loss plateaus.

    A plateau is ``patience`` epochs without the loss improving by more than
    ``delta``. Only while accuracy is below ``acc_threshold``, and only one
    seed in flight (training or blending) at a time.
    """

    def __init__(self, patience: int, delta: float, acc_threshold: float) -> None:
        self.patience = patience
        self.delta = delta
        self.acc_threshold = acc_threshold
        self.best_loss = math.inf
        self.wait = 0

    def decide(self, obs: Observation) -> list[Action]:
        latest = obs.latest
        if latest.val_loss < self.best_loss - self.delta:
            self.best_loss = latest.val_loss
            self.wait = 0
        else:
            self.wait += 1
        if obs.in_state(*IN_FLIGHT):
            self.wait = 0  # growth in progress: give it time before judging a plateau
            return []
        dormant = obs.in_state("dormant")
        if self.wait < self.patience or latest.val_acc >= self.acc_threshold or not dormant:
            return []
        self.wait = 0
        self.best_loss = latest.val_loss
        weakest = min(dormant, key=lambda seed: seed.health)
        return [Germinate(weakest.seed_id)]

    def state_dict(self) -> dict[str, Any]:
        return {"best_loss": self.best_loss, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_loss = float(state["best_loss"])
        self.wait = int(state["wait"])


class PeriodicController(Controller):
    """Germinate the next dormant seed every ``period`` epochs of phase 2."""

    def __init__(self, period: int) -> None:
        self.period = period
        self.epochs_in_phase2 = 0

    def decide(self, obs: Observation) -> list[Action]:
        self.epochs_in_phase2 += 1
        dormant = obs.in_state("dormant")
        if self.epochs_in_phase2 % self.period or not dormant:
            return []
        return [Germinate(dormant[0].seed_id)]

    def state_dict(self) -> dict[str, Any]:
        return {"epochs_in_phase2": self.epochs_in_phase2}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epochs_in_phase2 = int(state["epochs_in_phase2"])


class NeverController(Controller):
    """The static baseline: never grows anything."""

    def decide(self, obs: Observation) -> list[Action]:
        return []


def kasmina(config: ControllerConfig) -> Controller:
    return KasminaController(config.patience, config.delta, config.acc_threshold)


def periodic(config: ControllerConfig) -> Controller:
    return PeriodicController(config.period)


def never(config: ControllerConfig) -> Controller:
    return NeverController()
