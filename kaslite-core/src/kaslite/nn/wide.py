"""Wide seeds: growth in width, a hidden layer from the network's input straight to its output.

A deep seed (:class:`~kaslite.nn.seed.SentinelSeed`) adds a layer inside the
trunk. Some problems want width instead: on 8×8 digits a plain MLP loses about
a point of accuracy per hidden layer it adds, while widening its one hidden
layer gains. A wide seed grows ``input → units → outputs`` beside the trunk and
adds ``α·branch(x)`` to the network's output (the wide-and-deep layout). The
branch's output layer starts at zero, as the new units of GradMax and TINY
start with zero fan-out, so every transition leaves the function exactly as it
was, and the task loss grows the branch.

The lifecycle, health (of the input), drift, α ramp and state are a
:class:`SentinelSeed`'s; what differs is the output (a contribution to the
network's output rather than a change of the seed's own input) and shadow
training, which has nothing to learn: a zero fan-out is already exact, so a
germinated wide seed blends in at the next epoch's end.
"""

from typing import cast

import torch
from torch import nn

from kaslite.config import SeedConfig
from kaslite.errors import InvalidValue
from kaslite.nn.seed import SentinelSeed


class WideBranch(nn.Module):
    """``W₂·relu(W₁·x)`` with ``W₂ = 0`` when built: Kaiming fan-in, zero fan-out."""

    def __init__(self, inputs: int, units: int, outputs: int) -> None:
        super().__init__()
        if units < 1:
            raise InvalidValue("model.wide_units", units, "must be an integer >= 1")
        self.inner = nn.Linear(inputs, units)
        self.outer = nn.Linear(units, outputs)
        nn.init.kaiming_normal_(self.inner.weight, nonlinearity="relu")
        nn.init.zeros_(self.inner.bias)
        nn.init.zeros_(self.outer.weight)
        nn.init.zeros_(self.outer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.outer(torch.relu(self.inner(x)))
        return out


class WideSeed(SentinelSeed):
    """A dormant wide branch: ``delta(x)`` is ``α·branch(x)``, added to the network's output.

    ``x`` is the network's input (``inputs`` features); the branch maps it to
    ``outputs`` values. ``forward`` returns the contribution too (zeros while
    the branch is not in use), so the seed can be called like any module.
    """

    def __init__(
        self,
        inputs: int,
        units: int,
        outputs: int,
        config: SeedConfig | None = None,
        *,
        seed_id: str = "",
        layer: int = 0,
    ) -> None:
        super().__init__(inputs, WideBranch(inputs, units, outputs), config, seed_id=seed_id, layer=layer)

    @property
    def units(self) -> int:
        return cast(WideBranch, self.child).inner.out_features

    @property
    def outputs(self) -> int:
        return cast(WideBranch, self.child).outer.out_features

    def delta(self, x: torch.Tensor) -> torch.Tensor | None:
        """``α·branch(x)``, or None while the branch takes no part in the output."""
        if not self._child_in_use:
            if self.training:
                self._keep(x)
            return None
        change: torch.Tensor = self.blend_alpha * self.child(x)
        if self.training:
            self._keep(x, change, True)
        return change

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        change = self.delta(x)
        return x.new_zeros(x.shape[0], self.outputs) if change is None else change

    # Shadow training has nothing to learn (the zero fan-out is already exact): no reservoir, no
    # moments, and full progress, so the growth driver starts the blend at the next epoch's end.
    def _remember(self, x: torch.Tensor) -> None:
        return None

    def _allocate_moments(self) -> None:
        self._shadow_moments = []
        self._shadow_steps = 0

    @torch.no_grad()
    def measure_progress(self) -> float:
        self.progress = 1.0
        return self.progress

    def extra_repr(self) -> str:
        return f"{self.seed_id or 'wide seed'}, {self.dim} → {self.units} → {self.outputs}, state={self.state.value}"
