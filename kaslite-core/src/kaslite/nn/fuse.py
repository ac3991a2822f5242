"""``fuse(model)``: a grown model as a plain module, for serving and export.

Where a seed is active (α = 1) its output ``x + (child(x) − x)`` is
``child(x)``, so the child takes the seed's place; a dormant, shadow-training
or culled seed is the identity and disappears; a seed caught mid-blend keeps
its formula with α frozen as a constant. Grown width seeds are concatenated
into the layers they widen (their fan-out scaled by α), so the fused network
is a plain one of the grown width. Grown wide seeds become branches added to
the fused trunk's output (:class:`WideAndDeep`). The result holds no seed, no
lifecycle and no training state: plain modules that ``torch.export``,
TorchScript and ONNX take as they are (as LoRA's merge folds adapters into
plain weights).
"""

import copy
from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn

from kaslite.nn.modules import unwrap
from kaslite.nn.network import MorphogeneticNet, SeedSlot
from kaslite.nn.seed import SeedState, SentinelSeed
from kaslite.nn.wide import WideSeed
from kaslite.nn.width import WidenableConvPair, WidenablePair, WidthSeed, bias_of, conv_like, layer_sizes


class Blend(nn.Module):
    """A seed frozen mid-blend: ``x + α·(child(x) − x)`` with a constant α."""

    def __init__(self, child: nn.Module, alpha: float) -> None:
        super().__init__()
        self.child = child
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.alpha * (self.child(x) - x)
        return out


class BlendSum(nn.Module):
    """Several seeds of one slot: ``x + Σ αᵢ·(childᵢ(x) − x)`` with constant αs."""

    def __init__(self, children: list[nn.Module], alphas: list[float]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(children)
        self.alphas = alphas

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for index, child in enumerate(self.branches):
            out = out + self.alphas[index] * (child(x) - x)
        return out


class Scaled(nn.Module):
    """A wide seed frozen mid-blend: ``α·branch(x)`` with a constant α."""

    def __init__(self, branch: nn.Module, alpha: float) -> None:
        super().__init__()
        self.branch = branch
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.alpha * self.branch(x)
        return out


class NoBranch(nn.Module):
    """A wide seed whose branch takes no part: a contribution of zeros, ``(B, outputs)``."""

    def __init__(self, outputs: int) -> None:
        super().__init__()
        self.outputs = outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[0], self.outputs)


class WideAndDeep(nn.Module):
    """The fused trunk's output plus each grown wide seed's fused branch."""

    def __init__(self, deep: nn.Module, branches: list[nn.Module]) -> None:
        super().__init__()
        self.deep = deep
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.deep(x)
        for branch in self.branches:
            out = out + branch(x)
        return out


class FirstFeatures(nn.Module):
    """``inner`` applied to the first ``features`` features; the rest (grown units) pass unchanged."""

    def __init__(self, inner: nn.Module, features: int) -> None:
        super().__init__()
        self.inner = inner
        self.features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.inner(x[:, : self.features]), x[:, self.features :]], dim=1)


@torch.no_grad()
def _widened(
    layer: nn.Linear | nn.Conv2d, grown: Sequence[WidthSeed], read: Sequence[WidthSeed]
) -> nn.Linear | nn.Conv2d:
    """``layer`` with ``grown``'s units as extra outputs, reading ``read``'s units as extra inputs.

    The new outputs read only the layer's own inputs; the layer's outputs read
    the previous layer's new units through their fan-out, scaled by α, so the
    result computes exactly what the seeds did. A ``Conv2d`` grows channels the
    same way: its weight's first two axes are outputs and inputs too.
    """
    inputs, outputs = layer_sizes(layer)
    extra_in = sum(seed.units for seed in read)
    extra_out = sum(seed.units for seed in grown)
    if isinstance(layer, nn.Conv2d):
        fused: nn.Linear | nn.Conv2d = conv_like(layer, inputs + extra_in, outputs + extra_out)
    else:
        fused = nn.Linear(inputs + extra_in, outputs + extra_out).to(layer.weight.device, layer.weight.dtype)
    bias = bias_of(fused)
    fused.weight.zero_()
    fused.weight[:outputs, :inputs] = layer.weight
    bias[:outputs] = layer.bias if layer.bias is not None else 0.0
    column = inputs
    for seed in read:
        outer = cast(nn.Linear | nn.Conv2d, seed.child.outer)
        fused.weight[:outputs, column : column + seed.units] = seed.alpha * outer.weight
        bias[:outputs] += seed.alpha * bias_of(outer)
        column += seed.units
    row = outputs
    for seed in grown:
        inner = cast(nn.Linear | nn.Conv2d, seed.child.inner)
        fused.weight[row : row + seed.units, :inputs] = inner.weight
        bias[row : row + seed.units] = bias_of(inner)
        row += seed.units
    return fused


def _fused_conv_pair(pair: WidenableConvPair) -> nn.Module:
    """A :class:`WidenableConvPair` as ``Sequential(Conv2d, ReLU, Conv2d)`` of the grown width."""
    grown = [pair.seed] if _in_use(pair.seed) else []
    return nn.Sequential(_widened(pair.first, grown, []), nn.ReLU(), _widened(pair.second, [], grown))


def _fused_pair(pair: WidenablePair) -> nn.Module:
    """A :class:`WidenablePair` as ``Sequential(Linear, ReLU, Linear)`` of the grown width."""
    grown = [pair.seed] if _in_use(pair.seed) else []
    return nn.Sequential(_widened(pair.first, grown, []), nn.ReLU(), _widened(pair.second, [], grown))


def _in_use(seed: SentinelSeed) -> bool:
    return seed.state in (SeedState.BLENDING, SeedState.ACTIVE) and seed.alpha != 0.0


def _fused_seed(seed: SentinelSeed) -> nn.Module:
    if isinstance(seed, WideSeed):
        return _fused_wide(seed)
    if not _in_use(seed):
        return nn.Identity()
    child = copy.deepcopy(seed.child)
    return child if seed.alpha == 1.0 else Blend(child, seed.alpha)


def _fused_wide(seed: WideSeed) -> nn.Module:
    if not _in_use(seed):
        return NoBranch(seed.outputs)
    branch = copy.deepcopy(seed.child)
    return branch if seed.alpha == 1.0 else Scaled(branch, seed.alpha)


def _fused_slot(slot: SeedSlot) -> nn.Module:
    in_use = [seed for seed in slot._seed_list if _in_use(seed)]
    if len(in_use) <= 1:
        return _fused_seed(in_use[0]) if in_use else nn.Identity()
    return BlendSum([copy.deepcopy(seed.child) for seed in in_use], [seed.alpha for seed in in_use])


def _fused_net(net: MorphogeneticNet) -> nn.Module:
    """The trunk and its fused slots as one ``nn.Sequential`` of plain layers (widened where width seeds
    grew), inside a :class:`WideAndDeep` where wide seeds have grown."""
    # grown[l]: layer l's grown units (0: the input layer); layer l + 1 (or the head) reads them.
    grown = [[seed for seed in group if _in_use(seed)] for group in net._width_groups] + [[]]
    linear: list[nn.Module] = []
    for index, layer in enumerate([net.input_layer, *net._block_list, net.head]):
        read = grown[index - 1] if index else []
        widen = grown[index] or read
        linear.append(_widened(layer, grown[index], read) if widen else copy.deepcopy(layer))  # type: ignore[arg-type]
    layers: list[nn.Module] = [linear[0], nn.ReLU()]
    for index, slot in enumerate(net._slot_list, start=1):
        layers += [linear[index], nn.ReLU()]
        fused = _fused_slot(slot)
        if not isinstance(fused, nn.Identity):
            layers.append(FirstFeatures(fused, net.hidden_dim) if grown[index] else fused)
    if net.pool is not None:
        layers.append(copy.deepcopy(net.pool))
    layers.append(linear[-1])
    deep = nn.Sequential(*layers)
    branches = [_fused_wide(seed) for seed in net._wide_list if _in_use(seed)]
    body = WideAndDeep(deep, branches) if branches else deep
    if net.input_scale._identity:
        return body
    # In front of the trunk and the branches alike: both read the standardised inputs.
    return nn.Sequential(copy.deepcopy(net.input_scale), body)


def _copy_without_seeds(model: nn.Module) -> nn.Module:
    """A deep copy in which every slot and seed is replaced by its fused module.

    The replacements go into deepcopy's memo, so the seeds themselves (and the
    batches they hold on to) are never copied.
    """
    memo: dict[int, Any] = {}
    for module in model.modules():
        if isinstance(module, WidenablePair):
            memo[id(module)] = _fused_pair(module)
        elif isinstance(module, WidenableConvPair):
            memo[id(module)] = _fused_conv_pair(module)
    slots = [module for module in model.modules() if isinstance(module, SeedSlot)]
    in_slots = {id(seed) for slot in slots for seed in slot._seed_list}
    for slot in slots:
        memo[id(slot)] = _fused_slot(slot)
    for module in model.modules():
        if isinstance(module, SentinelSeed) and id(module) not in in_slots:
            memo[id(module)] = _fused_seed(module)
    return copy.deepcopy(model, memo)


def fuse(model: nn.Module) -> nn.Module:
    """A plain copy of ``model`` computing the same function, with its seeds folded away.

    A :class:`MorphogeneticNet` becomes an ``nn.Sequential``; any other module
    keeps its class, with each seed replaced in place. The grown model is left
    untouched; the copy is in eval mode and keeps ``.metadata`` if there is one. (With grown
    wide seeds, the ``nn.Sequential`` is the ``deep`` part of a :class:`WideAndDeep`.)
    """
    model = unwrap(model)
    metadata: Any = getattr(model, "metadata", None)
    if isinstance(model, MorphogeneticNet):
        fused: nn.Module = _fused_net(model)
    elif isinstance(model, (SentinelSeed, SeedSlot)):
        fused = _fused_seed(model) if isinstance(model, SentinelSeed) else _fused_slot(model)
    else:
        fused = _copy_without_seeds(model)
    if metadata is not None:
        fused.metadata = copy.deepcopy(metadata)
    return fused.eval()
