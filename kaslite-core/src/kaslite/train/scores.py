"""Expansion scores: how much each dormant seed would lower the loss, measured on one batch.

Every seed kind grows new units with zero fan-out: a residual block's hidden
layer, a width seed's units, a wide branch. With the fan-out at zero, the
gradient it receives is ``Σ δ·uᵀ``: ``δ`` is the loss gradient where the seed
writes, ``u`` the new units' output. Linearising the ReLU with GradMax's
best fan-in (unit-norm rows), its squared norm is the sum of the top ``k``
squared singular values of ``M = Σ δ·[a; 1]ᵀ``, ``a`` the seed's input and
``k`` its units: the first-order loss decrease per unit step of the new
parameters, in the same units for every kind.

The score a policy sees is that *gain* divided by the squared norm of the
gradient the network's current trainable parameters receive on the same batch
(Self-Expanding Neural Networks' rule with the identity for the Fisher): a
candidate scoring 0.5 would receive half as much gradient as the whole network
does now. Comparable across kinds and tasks, and independent of the loss's scale.
"""

from collections.abc import Callable, Iterable

import attrs
import torch
from torch import nn

from kaslite.control.base import Candidate
from kaslite.nn.modules import evaluating, unwrap
from kaslite.nn.seed import SentinelSeed, per_feature
from kaslite.nn.width import with_bias

# Rows of (input, gradient) pairs kept per candidate, for GradMax's sign choice at germination.
MAX_ROWS = 4096


@attrs.frozen
class GradientAt:
    """What a candidate's zero fan-out sees on the score batch: its input rows and the loss gradient rows."""

    inputs: torch.Tensor  # (rows, inputs)
    deltas: torch.Tensor  # (rows, outputs)

    @property
    def stats(self) -> torch.Tensor:
        """``M = Σ δ·[a; 1]ᵀ``, ``(outputs, inputs + 1)``."""
        return self.deltas.T @ with_bias(self.inputs)

    def gain(self, units: int) -> float:
        """The squared gradient norm ``units`` new units with GradMax's fan-in would receive."""
        sigma = torch.linalg.svdvals(self.stats.double())
        return float((sigma[:units] ** 2).sum())


def _rows(tensor: torch.Tensor, axis: int) -> torch.Tensor:
    rows = per_feature(tensor.detach().float(), axis)
    return rows[:MAX_ROWS] if rows.shape[0] > MAX_ROWS else rows


def measure_gradients(
    model: nn.Module,
    seeds: Iterable[SentinelSeed],
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> tuple[dict[str, GradientAt], float]:
    """One forward and backward pass on ``(x, y)`` in eval mode: each of ``seeds``' :class:`GradientAt`
    (those in use are skipped), and the squared norm of the trainable parameters' gradient.

    Nothing is written to ``.grad`` and no module keeps a changed mode, so a
    training loop's optimizer and state are as they were.
    """
    model = unwrap(model)  # eager, outside DDP: no collective, no recompilation
    scored = [seed for seed in seeds if not seed._child_in_use]
    for seed in scored:
        seed._scoring, seed._score_tap = True, None
    try:
        with evaluating(model), torch.enable_grad():
            loss = loss_fn(model(x), y)
            taps = {seed.seed_id: seed._score_tap for seed in scored if seed._score_tap is not None}
            params = [p for p in model.parameters() if p.requires_grad]
            grads = torch.autograd.grad(loss, [*params, *(tap for _, tap in taps.values())], allow_unused=True)
    finally:
        for seed in scored:
            seed._scoring, seed._score_tap = False, None
    trunk_norm2 = float(sum(g.double().pow(2).sum() for g in grads[: len(params)] if g is not None))
    measured: dict[str, GradientAt] = {}
    by_id = {seed.seed_id: seed for seed in scored}
    for (seed_id, (inputs, _)), delta in zip(taps.items(), grads[len(params) :], strict=True):
        if delta is not None:
            axis = by_id[seed_id].feature_axis
            measured[seed_id] = GradientAt(_rows(inputs, axis(inputs.ndim)), _rows(delta, axis(delta.ndim)))
    return measured, trunk_norm2


def score_candidates(
    seeds: dict[str, SentinelSeed], measured: dict[str, GradientAt], trunk_norm2: float
) -> list[Candidate]:
    """Each measured seed as a :class:`Candidate`, in network order."""
    candidates = []
    for seed_id, gradient in measured.items():
        seed = seeds[seed_id]
        gain = gradient.gain(seed.units)
        score = gain / trunk_norm2 if trunk_norm2 > 0 else (float("inf") if gain > 0 else 0.0)
        candidates.append(Candidate(seed_id, seed.kind, seed.layer, seed.units, gain, score))
    return candidates
