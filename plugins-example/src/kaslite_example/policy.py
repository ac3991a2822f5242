"""The ``gap-aware`` growth policy: watch the generalisation gap, undo growth that hurts.

It uses two signals the builtins do not: the gap between validation and
training loss (grow when it stops shrinking) and validation loss across a
seed's blend (cull a seed whose blending made it worse).
"""

import math
from typing import Any

import attrs

from kaslite.config import ControllerConfig
from kaslite.config.validation import integer_at_least, non_negative
from kaslite.control import Action, Controller, Cull, Germinate, Observation


@attrs.frozen
class GapAwareParams:
    patience: int = attrs.field(
        default=3, validator=integer_at_least(1), metadata={"help": "epochs without a smaller gap before growing"}
    )
    tolerance: float = attrs.field(
        default=0.0, validator=non_negative, metadata={"help": "how much the gap must shrink to count"}
    )
    cull_margin: float = attrs.field(
        default=0.1, validator=non_negative, metadata={"help": "relative rise of val loss during a blend that culls"}
    )


class GapAwarePolicy(Controller):
    def __init__(self, params: GapAwareParams) -> None:
        self.params = params
        self.best_gap = math.inf
        self.stale = 0
        self.loss_at_blend: dict[str, float] = {}  # seed id -> val loss when its blend began

    def decide(self, obs: Observation) -> list[Action]:
        latest = obs.latest
        actions: list[Action] = []
        for seed in obs.in_state("blending"):
            start = self.loss_at_blend.setdefault(seed.seed_id, latest.val_loss)
            if latest.val_loss > start * (1 + self.params.cull_margin):
                actions.append(Cull(seed.seed_id))
        gap = latest.val_loss - latest.train_loss
        if gap < self.best_gap - self.params.tolerance:
            self.best_gap, self.stale = gap, 0
        else:
            self.stale += 1
        dormant = obs.in_state("dormant")
        if actions or obs.in_state("training", "blending") or not dormant or self.stale < self.params.patience:
            return actions
        self.stale = 0
        weakest = min(dormant, key=lambda seed: (seed.health, seed.layer))
        return [Germinate(weakest.seed_id)]

    def state_dict(self) -> dict[str, Any]:
        return {"best_gap": self.best_gap, "stale": self.stale, "loss_at_blend": dict(self.loss_at_blend)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_gap = float(state["best_gap"])
        self.stale = int(state["stale"])
        self.loss_at_blend = dict(state["loss_at_blend"])


def make_gap_aware(config: ControllerConfig) -> Controller:
    """The factory kaslite calls; the host has already validated ``config.options``."""
    return GapAwarePolicy(GapAwareParams(**config.options))
