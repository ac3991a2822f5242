"""Builtin growth policies: ``kasmina`` (plateau), ``expand`` (expansion scores), ``periodic`` and ``never``."""

import math
from typing import Any

import attrs

from kaslite.config import ControllerConfig
from kaslite.config.validation import non_negative
from kaslite.control.base import SEED_KINDS, Action, Controller, Germinate, Observation

IN_FLIGHT = ("training", "blending")


class Plateau:
    """Counts epochs without the validation loss improving by more than ``delta``."""

    def __init__(self, patience: int, delta: float) -> None:
        self.patience = patience
        self.delta = delta
        self.best_loss = math.inf
        self.wait = 0

    def update(self, val_loss: float) -> None:
        if val_loss < self.best_loss - self.delta:
            self.best_loss, self.wait = val_loss, 0
        else:
            self.wait += 1

    def ready(self, obs: Observation) -> bool:
        """Count the epoch just finished; True on a plateau with no seed in flight (training or blending).

        While a seed is in flight the count starts over: growth under way gets time before a plateau.
        """
        self.update(obs.latest.val_loss)
        if obs.in_state(*IN_FLIGHT):
            self.wait = 0
            return False
        return self.wait >= self.patience

    def restart(self, val_loss: float) -> None:
        """Judge the next plateau from here (after a growth, or while one is under way)."""
        self.best_loss, self.wait = val_loss, 0

    def state_dict(self) -> dict[str, Any]:
        return {"best_loss": self.best_loss, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_loss = float(state["best_loss"])
        self.wait = int(state["wait"])


class KasminaController(Controller):
    """Germinate the least healthy dormant seed when validation loss plateaus.

    A plateau is ``patience`` epochs without the loss improving by more than
    ``delta``. Only while accuracy is below ``acc_threshold``, and only one
    seed in flight (training or blending) at a time.
    """

    seed_kinds = SEED_KINDS

    def __init__(self, patience: int, delta: float, acc_threshold: float) -> None:
        self.plateau = Plateau(patience, delta)
        self.acc_threshold = acc_threshold

    def decide(self, obs: Observation) -> list[Action]:
        latest = obs.latest
        dormant = obs.in_state("dormant")
        if not self.plateau.ready(obs) or latest.val_acc >= self.acc_threshold or not dormant:
            return []
        self.plateau.restart(latest.val_loss)
        weakest = min(dormant, key=lambda seed: seed.health)
        return [Germinate(weakest.seed_id)]

    def state_dict(self) -> dict[str, Any]:
        return self.plateau.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.plateau.load_state_dict(state)


@attrs.frozen
class ExpandParams:
    """The ``expand`` policy's own settings (``--controller-param threshold=0.5``)."""

    # A candidate grows once its expansion score reaches this: the gradient its new parameters would
    # receive, as a fraction of the gradient the whole network receives now. 0.25: on a 12-wide default
    # network (seeds 100-109), 1.0 stopped growing too early (0.961 against 0.982 mean val acc).
    threshold: float = attrs.field(default=0.25, validator=non_negative)


class ExpandController(Controller):
    """Grow where the expansion score is best, when it clears ``threshold``, and again while it does.

    After each epoch every dormant seed, whatever its kind, is scored by the
    gradient its zero-initialised new parameters would receive relative to the
    network's own (:mod:`kaslite.train.scores`). The best one grows when its
    score reaches ``threshold`` and the validation loss has not improved by
    ``delta`` for ``patience`` epochs; one seed in flight at a time, and none
    once val acc reaches ``acc_threshold``. An easy task stops when no
    candidate scores enough; a hard one keeps growing while candidates do.
    """

    seed_kinds = SEED_KINDS
    wants_scores = True

    def __init__(self, threshold: float, patience: int, delta: float, acc_threshold: float) -> None:
        self.threshold = threshold
        self.plateau = Plateau(patience, delta)
        self.acc_threshold = acc_threshold

    def decide(self, obs: Observation) -> list[Action]:
        latest = obs.latest
        scored = [seed for seed in obs.in_state("dormant") if seed.score is not None]
        if not self.plateau.ready(obs) or latest.val_acc >= self.acc_threshold or not scored:
            return []
        best = max(scored, key=lambda seed: seed.score or 0.0)
        if (best.score or 0.0) < self.threshold:
            return []
        self.plateau.restart(latest.val_loss)
        return [Germinate(best.seed_id)]

    def state_dict(self) -> dict[str, Any]:
        return self.plateau.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.plateau.load_state_dict(state)


class PeriodicController(Controller):
    """Germinate the next dormant seed every ``period`` epochs of phase 2."""

    seed_kinds = SEED_KINDS

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

    seed_kinds = SEED_KINDS

    def decide(self, obs: Observation) -> list[Action]:
        return []


def kasmina(config: ControllerConfig) -> Controller:
    return KasminaController(config.patience, config.delta, config.acc_threshold)


def expand(config: ControllerConfig) -> Controller:
    params = ExpandParams(**config.options)
    return ExpandController(params.threshold, config.patience, config.delta, config.acc_threshold)


def periodic(config: ControllerConfig) -> Controller:
    return PeriodicController(config.period)


def never(config: ControllerConfig) -> Controller:
    return NeverController()
