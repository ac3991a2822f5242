"""Build what a growth policy's ``decide`` receives, to unit-test a policy without training.

::

    from kaslite.testing import observation

    obs = observation(val_acc=[0.6, 0.7, 0.7, 0.7], seeds={"seed1_1": "dormant", "seed2_1": "training"})
    assert MyPolicy().decide(obs) == []
"""

import re
from collections.abc import Mapping, Sequence

from kaslite.control.base import EpochMetrics, Observation, SeedView
from kaslite.errors import ConfigError

# A seed's states, in lifecycle order (kaslite.nn.SeedState; a test keeps the two equal).
SEED_STATES = ("dormant", "training", "blending", "active", "culled")
# The alpha a seed in each state has unless told otherwise: 0 until it blends, 1 once active.
_ALPHA = {"dormant": 0.0, "training": 0.0, "blending": 0.5, "active": 1.0, "culled": 0.0}
# kaslite's seed ids: deep seeds seed{layer}_{j}, width seeds width{layer}_{j}, wide seeds wide_{j}.
_SEED_ID = re.compile(r"(seed|width)(\d+)_(\d+)|wide_\d+")
_KINDS = {"seed": "deep", "width": "width"}


def seed_view(
    seed_id: str = "seed1_1",
    state: str = "dormant",
    *,
    layer: int | None = None,
    alpha: float | None = None,
    health: float = 1.0,
    drift: float = 0.0,
    progress: float = 0.0,
    kind: str | None = None,
    score: float | None = None,
) -> SeedView:
    """One seed as a policy sees it.

    :param seed_id: ``seed{layer}_{j}``, as kaslite names seeds.
    :param state: one of ``dormant``, ``training``, ``blending``, ``active``, ``culled``.
    :param layer: defaults to the layer in ``seed_id``.
    :param alpha: the blend weight; defaults to 0 before blending, 0.5 while blending, 1 when active.
    :param health: how much the features at the seed's slot vary, in [0, 1] (low: a bottleneck).
    :param drift: the seed's share of the network's output, in [0, 1) (blending or active).
    :param progress: shadow-training progress in [0, 1] (explained variance of its input).
    :param kind: ``deep``, ``width`` or ``wide``; defaults to the kind ``seed_id`` names.
    :param score: its expansion score, for a policy that asks for scores (``wants_scores``).
    """
    if state not in SEED_STATES:
        raise ConfigError(f"invalid seed state {state!r} for {seed_id}: must be one of {', '.join(SEED_STATES)}")
    match = _SEED_ID.fullmatch(seed_id)
    if layer is None:
        if match is None or match.group(2) is None:
            raise ConfigError(
                f"invalid seed id {seed_id!r}: expected seed{{layer}}_{{j}} or width{{layer}}_{{j}}, or pass layer="
            )
        layer = int(match.group(2))
    if kind is None:
        kind = "deep" if match is None else _KINDS.get(match.group(1), "wide")
    alpha = _ALPHA[state] if alpha is None else alpha
    return SeedView(seed_id, layer, state, alpha, health, drift, progress, kind, score)


def observation(
    *,
    val_acc: Sequence[float] | None = None,
    val_loss: Sequence[float] | None = None,
    train_loss: Sequence[float] | None = None,
    seeds: Mapping[str, str] | Sequence[SeedView | str] = ("seed1_1",),
    warm_up_epochs: int = 0,
) -> Observation:
    """The observation after the last epoch of the series given, one value per finished epoch.

    The history holds every epoch from the first, warm-up epochs (phase 1)
    included, as in a real run; ``warm_up_epochs`` says how many of them were
    warm-up. A series not given holds a constant (accuracy 0.5, losses 1.0).
    ``seeds`` maps seed ids to states, or lists :func:`seed_view` results (or
    ids, each dormant).
    """
    given = {"val_acc": val_acc, "val_loss": val_loss, "train_loss": train_loss}
    lengths = {name: len(series) for name, series in given.items() if series is not None}
    epochs = max(lengths.values(), default=0)
    if epochs == 0:
        raise ConfigError("an observation needs at least one epoch: give val_acc, val_loss or train_loss values")
    uneven = sorted(name for name, length in lengths.items() if length != epochs)
    if uneven:
        raise ConfigError(f"every series needs one value per epoch ({epochs}); {', '.join(uneven)} differ")
    constant = {"val_acc": 0.5, "val_loss": 1.0, "train_loss": 1.0}
    series = {name: list(values) if values is not None else [constant[name]] * epochs for name, values in given.items()}
    history = tuple(
        EpochMetrics(
            epoch,
            1 if epoch <= warm_up_epochs else 2,
            series["train_loss"][epoch - 1],
            series["val_loss"][epoch - 1],
            series["val_acc"][epoch - 1],
        )
        for epoch in range(1, epochs + 1)
    )
    if isinstance(seeds, Mapping):
        views = tuple(seed_view(seed_id, state) for seed_id, state in seeds.items())
    else:
        views = tuple(seed if isinstance(seed, SeedView) else seed_view(seed) for seed in seeds)
    return Observation(epochs, history[-1].phase, history, views)
