"""Width seeds: new units in an existing layer, with zero fan-out and fan-in chosen from the gradient.

A width seed holds ``units`` new hidden units ``u = relu(W·a + b)`` that read
``a``, the input of the layer they widen, and a fan-out ``V`` that writes
into the pre-activation of the layer that reads it: the network gains
``α·(V·u + c)`` there. ``V`` and ``c`` start at zero, so germination,
blending and activation leave the function exactly as it was.

Their fan-in is GradMax's (Evci et al., 2022): with ``V = 0`` the gradient
``V`` receives is ``Σ δ·uᵀ``, where ``δ`` is the loss gradient where the
seed writes. Linearising the ReLU, that is ``M·Wᵀ`` with ``M = Σ δ·[a; 1]ᵀ``,
and the unit-norm rows of ``W`` that make it largest are the top right
singular vectors of ``M``. The growth driver measures ``M`` on a batch (see
:mod:`kaslite.train.scores`) and hands its rows to :meth:`SentinelSeed.init_fan_in` at
germination; the same ``M`` gives the seed's expansion score.

:class:`WidenablePair` puts a width seed between two ``Linear`` layers of a
user's model, :class:`WidenableConvPair` between two ``Conv2d`` layers (new
channels); ``kaslite.fuse`` turns either into the two layers, grown wider.
"""

import math
from typing import cast

import torch
from torch import nn

from kaslite.config import SeedConfig
from kaslite.errors import InvalidValue
from kaslite.nn.blueprints import relu_branch
from kaslite.nn.seed import SentinelSeed

# A new unit's fan-in row has Kaiming's expected norm: E‖w‖² = 2 for a ReLU layer.
FAN_IN_NORM = math.sqrt(2.0)


class WideBranch(nn.Module):
    """``W₂·relu(W₁·x)`` with ``W₂ = 0`` when built: Kaiming fan-in, zero fan-out."""

    def __init__(self, inputs: int, units: int, outputs: int) -> None:
        super().__init__()
        if units < 1:
            raise InvalidValue("units", units, "must be an integer >= 1")
        self.inner = nn.Linear(inputs, units)
        self.outer = nn.Linear(units, outputs)
        nn.init.kaiming_normal_(self.inner.weight, nonlinearity="relu")
        nn.init.zeros_(self.inner.bias)
        nn.init.zeros_(self.outer.weight)
        nn.init.zeros_(self.outer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return relu_branch(x, self.inner, self.outer)


def layer_sizes(layer: nn.Linear | nn.Conv2d) -> tuple[int, int]:
    """(inputs, outputs): a ``Linear``'s features, a ``Conv2d``'s channels."""
    if isinstance(layer, nn.Conv2d):
        return layer.in_channels, layer.out_channels
    return layer.in_features, layer.out_features


def with_bias(inputs: torch.Tensor) -> torch.Tensor:
    """``[a; 1]`` for each row ``a``: a unit's fan-in and bias as one vector of weights."""
    return torch.cat([inputs, inputs.new_ones(inputs.shape[0], 1)], dim=1)


def gradmax_fan_in(current: torch.Tensor, inputs: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
    """GradMax's fan-in for new ReLU units: ``current`` ``(units, inputs + 1)`` rows of weights and bias,
    the leading ones replaced by the top singular directions of ``M = Σ δ·[a; 1]ᵀ``.

    ``inputs`` and ``deltas`` are the rows ``a`` and ``δ`` (the seed's input and
    the loss gradient where it writes). Each direction gets the sign whose ReLU
    unit really receives the larger gradient (the linearisation cannot tell
    ``v`` from ``−v``) and the norm :data:`FAN_IN_NORM`. Units beyond the rank of
    ``M`` keep their current (Kaiming) fan-in: no random numbers are drawn.
    """
    augmented = with_bias(inputs).double()
    deltas = deltas.double()
    _, sigma, vh = torch.linalg.svd(deltas.T @ augmented, full_matrices=False)
    useful = int((sigma > sigma[0] * 1e-6).sum()) if sigma.numel() and sigma[0] > 0 else 0
    directions = vh[: min(current.shape[0], useful)]
    pre = augmented @ directions.T  # each row's pre-activation along each direction
    plus = (deltas.T @ torch.relu(pre)).norm(dim=0)
    minus = (deltas.T @ torch.relu(-pre)).norm(dim=0)
    signs = torch.where(plus >= minus, 1.0, -1.0).to(directions.dtype)
    rows = current.clone()
    rows[: directions.shape[0]] = (directions * signs[:, None] * FAN_IN_NORM).to(rows.dtype)
    return rows


class WidthSeed(SentinelSeed):
    """``units`` dormant new units: ``delta(a)`` is ``α·branch(a)``, added where the widened layer's output is read.

    ``a`` is the input of the layer being widened (``inputs`` features); the
    branch writes ``outputs`` values into the pre-activation of the layer that
    reads it. ``forward`` returns the contribution too (zeros while the units
    are not in use), so a user's model writes ``self.next(h) + self.seed(a)``.
    Shadow training has nothing to learn: the zero fan-out is already exact, so
    a germinated width seed blends in at the next epoch's end.
    """

    kind = "width"

    def __init__(
        self,
        inputs: int,
        units: int,
        outputs: int,
        config: SeedConfig | None = None,
        *,
        seed_id: str = "",
        layer: int = -1,
        branch: nn.Module | None = None,
    ) -> None:
        branch = WideBranch(inputs, units, outputs) if branch is None else branch
        super().__init__(inputs, branch, config, seed_id=seed_id, layer=layer)

    @property
    def branch(self) -> WideBranch:
        return cast(WideBranch, self.child)

    @property
    def outputs(self) -> int:
        return layer_sizes(cast(nn.Linear | nn.Conv2d, self.child.outer))[1]

    @property
    def units(self) -> int:
        return layer_sizes(cast(nn.Linear | nn.Conv2d, self.child.inner))[1]

    @property
    def output_dim(self) -> int:
        return self.outputs

    def delta(self, x: torch.Tensor) -> torch.Tensor | None:
        """``α·branch(x)``, or None while the branch takes no part in the output."""
        if not self._child_in_use:
            if self._scoring:
                return self._score_point(x, self._no_change(x))
            if self.training:
                self._keep(x)
            return None
        grown: torch.Tensor = self.child(x)
        return grown if not torch.compiler.is_compiling() and self._whole else self.blend_alpha * grown

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        change = self.delta(x)
        return self._no_change(x) if change is None else change

    def _no_change(self, x: torch.Tensor) -> torch.Tensor:
        """Zeros shaped like what the branch writes for ``x``."""
        return x.new_zeros(x.shape[0], self.outputs)

    def shadow_trains(self) -> bool:
        """Never: the zero fan-out is already exact, so there is no reservoir and no shadow step, and the
        growth driver starts the blend at the next epoch's end."""
        return False

    def extra_repr(self) -> str:
        name = self.seed_id or f"{self.kind} seed"
        return f"{name}, {self.dim} → {self.units} → {self.outputs}, state={self.state.value}"


class WidenablePair(nn.Module):
    """Two ``Linear`` layers with an activation between them, and a :class:`WidthSeed` that can add
    ``units`` units to the first: ``second(act(first(x))) + seed(x)``.

    ``kaslite.fuse`` turns it into ``nn.Sequential(Linear(in, n + units), act,
    Linear(n + units, out))`` computing the same function: the grown units are
    concatenated into both layers, their fan-out scaled by α.
    """

    def __init__(
        self,
        first: nn.Linear,
        second: nn.Linear,
        units: int,
        config: SeedConfig | None = None,
        *,
        seed_id: str = "",
    ) -> None:
        super().__init__()
        if first.out_features != second.in_features:
            raise InvalidValue(
                "second.in_features", second.in_features, f"must equal first.out_features ({first.out_features})"
            )
        self.first = first
        self.second = second
        self.seed = WidthSeed(first.in_features, units, second.out_features, config, seed_id=seed_id)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.second(torch.relu(self.first(x))) + self.seed(x)
        return out


def _same_size_conv(name: str, conv: nn.Conv2d) -> None:
    """Refuse a convolution that changes the spatial size or mixes channels in groups: the new channels'
    branch copies its shape, and the expansion score reads the layer's input and the next layer's
    gradient pixel by pixel."""
    kernel = tuple(conv.kernel_size)
    same = conv.padding == "same" or tuple(conv.padding) == tuple(k // 2 for k in kernel)
    if (
        tuple(conv.stride) != (1, 1)
        or tuple(conv.dilation) != (1, 1)
        or conv.groups != 1
        or conv.padding_mode != "zeros"
        or any(k % 2 == 0 for k in kernel)
        or not same
    ):
        raise InvalidValue(
            name,
            conv,
            "must keep the spatial size: an odd kernel, padding kernel_size // 2 (or 'same'), stride 1, "
            "dilation 1, groups 1, zero padding",
        )


def conv_like(conv: nn.Conv2d, in_channels: int, out_channels: int) -> nn.Conv2d:
    """A ``Conv2d`` with ``conv``'s kernel and padding, these channels and a bias, on ``conv``'s device and dtype."""
    kernel = cast(tuple[int, int], tuple(conv.kernel_size))
    padding = conv.padding if isinstance(conv.padding, str) else cast(tuple[int, int], tuple(conv.padding))
    made = nn.Conv2d(in_channels, out_channels, kernel, padding=padding)
    return made.to(conv.weight.device, conv.weight.dtype)


def bias_of(layer: nn.Linear | nn.Conv2d) -> torch.Tensor:
    """The bias of a layer built with one."""
    assert layer.bias is not None
    return layer.bias


class ConvBranch(nn.Module):
    """``outer(relu(inner(x)))``: ``units`` new channels shaped like ``first``'s outputs, written into
    ``second``'s pre-activation by a convolution shaped like ``second``; Kaiming fan-in, zero fan-out."""

    def __init__(self, first: nn.Conv2d, second: nn.Conv2d, units: int) -> None:
        super().__init__()
        if units < 1:
            raise InvalidValue("units", units, "must be an integer >= 1")
        self.inner = conv_like(first, first.in_channels, units)
        self.outer = conv_like(second, units, second.out_channels)
        nn.init.kaiming_normal_(self.inner.weight, nonlinearity="relu")
        nn.init.zeros_(bias_of(self.inner))
        nn.init.zeros_(self.outer.weight)
        nn.init.zeros_(bias_of(self.outer))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.outer(torch.relu(self.inner(x)))
        return out


class ConvWidthSeed(WidthSeed):
    """``units`` dormant new channels for a ``Conv2d`` layer: a :class:`WidthSeed` on ``(B, C, H, W)`` maps.

    Their fan-in is Kaiming's (GradMax's closed form is for ``Linear`` fan-outs);
    the expansion score a policy sees treats each pixel as a sample, as for a
    1×1 kernel, so it compares with other candidates' in the same units.
    """

    def __init__(
        self, first: nn.Conv2d, second: nn.Conv2d, units: int, config: SeedConfig | None = None, *, seed_id: str = ""
    ) -> None:
        branch = ConvBranch(first, second, units)
        super().__init__(first.in_channels, units, second.out_channels, config, seed_id=seed_id, branch=branch)

    def _no_change(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[0], self.outputs, *x.shape[2:])


class WidenableConvPair(nn.Module):
    """Two ``Conv2d`` layers with a ReLU between them, and a :class:`ConvWidthSeed` that can add ``units``
    channels to the first: ``second(relu(first(x))) + seed(x)``.

    Both layers keep the spatial size (odd kernels, ``padding=k // 2``, stride 1).
    ``kaslite.fuse`` turns the pair into ``nn.Sequential(Conv2d(in, n + units),
    ReLU, Conv2d(n + units, out))`` computing the same function.
    """

    def __init__(
        self,
        first: nn.Conv2d,
        second: nn.Conv2d,
        units: int,
        config: SeedConfig | None = None,
        *,
        seed_id: str = "",
    ) -> None:
        super().__init__()
        _same_size_conv("first", first)
        _same_size_conv("second", second)
        if first.out_channels != second.in_channels:
            raise InvalidValue(
                "second.in_channels", second.in_channels, f"must equal first.out_channels ({first.out_channels})"
            )
        self.first = first
        self.second = second
        self.seed = ConvWidthSeed(first, second, units, config, seed_id=seed_id)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.second(torch.relu(self.first(x)))
        change = self.seed.delta(x)
        return out if change is None else out + change
