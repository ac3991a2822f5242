"""``fuse(model)``: a grown model as a plain module, for serving and export.

Where a seed is active (α = 1) its output ``x + (child(x) − x)`` is
``child(x)``, so the child takes the seed's place; a dormant, shadow-training
or culled seed is the identity and disappears; a seed caught mid-blend keeps
its formula with α frozen as a constant. Grown wide seeds become branches
added to the fused trunk's output (:class:`WideAndDeep`). The result holds no seed, no
lifecycle and no training state: plain modules that ``torch.export``,
TorchScript and ONNX take as they are (as LoRA's merge folds adapters into
plain weights).
"""

import copy
from typing import Any

import torch
from torch import nn

from kaslite.nn.network import MorphogeneticNet, SeedSlot
from kaslite.nn.seed import SeedState, SentinelSeed
from kaslite.nn.wide import WideSeed


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
    """The trunk and its fused slots as one ``nn.Sequential`` of plain layers, inside a
    :class:`WideAndDeep` where wide seeds have grown."""
    layers: list[nn.Module] = [copy.deepcopy(net.input_layer), nn.ReLU()]
    for block, slot in zip(net._block_list, net._slot_list, strict=True):
        layers += [copy.deepcopy(block), nn.ReLU()]
        fused = _fused_slot(slot)
        if not isinstance(fused, nn.Identity):
            layers.append(fused)
    if net.pool is not None:
        layers.append(copy.deepcopy(net.pool))
    layers.append(copy.deepcopy(net.head))
    deep = nn.Sequential(*layers)
    grown = [_fused_wide(seed) for seed in net._wide_list if _in_use(seed)]
    return WideAndDeep(deep, grown) if grown else deep


def _copy_without_seeds(model: nn.Module) -> nn.Module:
    """A deep copy in which every slot and seed is replaced by its fused module.

    The replacements go into deepcopy's memo, so the seeds themselves (and the
    batches they hold on to) are never copied.
    """
    memo: dict[int, Any] = {}
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
    from kaslite.models.files import unwrap

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
