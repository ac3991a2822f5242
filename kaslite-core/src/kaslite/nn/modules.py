"""Reading any module for what kaslite put in it: the module inside torch's wrappers, its seeds, and the
parameters they grew. The growth driver, model files, fuse and the server all read modules this way."""

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

from kaslite.nn.seed import SeedState, SentinelSeed

GROWN_STATES = (SeedState.TRAINING, SeedState.BLENDING, SeedState.ACTIVE)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DDP / DataParallel (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        inner = None
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            inner = model.module
        elif type(model).__name__ == "OptimizedModule":  # what torch.compile returns
            inner = getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


@contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode inside the block; afterwards every module's own mode comes back (a user may
    keep some, a BatchNorm say, in eval while the rest trains). Probe passes share one block: saving and
    restoring the modes walks every module, which costs more than a small network's forward."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def find_seeds(model: nn.Module) -> list[SentinelSeed]:
    """Every :class:`SentinelSeed` inside ``model``, in module order; unnamed ones are named by their path
    in the unwrapped module (the same whether the model is wrapped or not)."""
    seeds: list[SentinelSeed] = []
    for name, module in unwrap(model).named_modules():  # each module once, however often it is referenced
        if isinstance(module, SentinelSeed):
            if not module.seed_id:
                module.seed_id = name
            seeds.append(module)
    return seeds


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(parameters outside every seed's child, those plus the children of grown, un-culled seeds)."""
    seeds = find_seeds(model)
    in_children = {id(p) for seed in seeds for p in seed.child.parameters()}
    base = sum(p.numel() for p in model.parameters() if id(p) not in in_children)
    grown = sum(p.numel() for seed in seeds if seed.state in GROWN_STATES for p in seed.child.parameters())
    return base, base + grown
