"""The controller API: observations in, actions out. A controller never touches the network."""

from typing import Any

import attrs

# Every kind of seed, in the order they came to kaslite: a policy is shown those it says it handles.
SEED_KINDS = ("deep", "width", "wide")


@attrs.frozen
class SeedView:
    """One seed as a controller sees it.

    ``health`` is how much the features at its slot vary, ``var / (var + mean²)``
    averaged over features, in [0, 1] (0: dead or constant; low: a bottleneck);
    ``drift`` is its share of the network's output once it blends, in [0, 1);
    ``progress`` its shadow training's explained variance.
    ``kind`` says what grows: ``deep`` (a block after hidden layer ``layer``),
    ``width`` (new units in layer ``layer``) or ``wide`` (a branch from the input
    to the output; its ``layer`` is one past the last hidden layer). ``score``
    is its expansion score (:mod:`kaslite.train.scores`) when the policy asks
    for scores (``Controller.wants_scores``) and the seed is dormant, else None.
    """

    seed_id: str
    layer: int
    state: str
    alpha: float
    health: float
    drift: float
    progress: float
    kind: str = "deep"
    score: float | None = None


@attrs.frozen
class Candidate:
    """A dormant seed's expansion score, measured on one training batch (:mod:`kaslite.train.scores`).

    :param gain: the squared gradient norm its zero-initialised new parameters
        would receive, with GradMax's fan-in for its ``units`` new units.
    :param score: ``gain`` over the squared gradient norm of the network's
        trainable parameters on the same batch.
    """

    seed_id: str
    kind: str
    layer: int
    units: int
    gain: float
    score: float


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
    """Base class of growth policies: override :meth:`decide`; stateful ones also save state.

    A policy that sets ``wants_scores = True`` sees each dormant seed's
    expansion score in ``SeedView.score``; the growth driver measures them
    (one forward and backward pass on a training batch) only for such policies.

    ``seed_kinds`` are the kinds of seed the policy is shown (its
    observations leave the others out): ``("deep",)`` by default, the only
    kind there was when policies were first written, so that a policy's
    "deepest dormant seed" keeps meaning a deep seed when a network also
    carries width and wide seeds. Set it to :data:`SEED_KINDS`, or the kinds
    the policy handles, to be shown more; a run whose network has seeds the
    policy is not shown says so once.
    """

    wants_scores = False
    seed_kinds: tuple[str, ...] = ("deep",)

    def decide(self, obs: Observation) -> list[Action]:
        """The actions to take after the epoch described by ``obs``."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Plain data that :meth:`load_state_dict` restores (for resuming a run)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
