"""The controller API: observations in, actions out. A controller never touches the network."""

from typing import Any

import attrs


@attrs.frozen
class SeedView:
    """One seed as a controller sees it."""

    seed_id: str
    layer: int
    state: str
    alpha: float
    health: float
    drift: float
    progress: float


@attrs.frozen
class EpochMetrics:
    """One finished epoch's numbers."""

    epoch: int
    phase: int
    train_loss: float
    val_loss: float
    val_acc: float


@attrs.frozen
class Observation:
    """An immutable snapshot after an epoch: where training is and every seed's state."""

    epoch: int
    phase: int
    history: tuple[EpochMetrics, ...]
    seeds: tuple[SeedView, ...]

    @property
    def latest(self) -> EpochMetrics:
        """The epoch just finished."""
        return self.history[-1]

    def in_state(self, *states: str) -> list[SeedView]:
        """Seeds currently in any of ``states``, in network order."""
        return [seed for seed in self.seeds if seed.state in states]


@attrs.frozen
class Germinate:
    """Start growing a dormant seed."""

    seed_id: str


@attrs.frozen
class Cull:
    """Roll a growing or grown seed back to identity."""

    seed_id: str


Action = Germinate | Cull


class Controller:
    """Base class of growth policies: override :meth:`decide`; stateful ones also save state."""

    def decide(self, obs: Observation) -> list[Action]:
        """The actions to take after the epoch described by ``obs``."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Plain data that :meth:`load_state_dict` restores (for resuming a run)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
