"""The network that grows: :class:`MorphogeneticNet` and its :class:`SentinelSeed` slots."""

from kaslite.nn.fuse import fuse
from kaslite.nn.network import MorphogeneticNet, SeedSlot
from kaslite.nn.seed import ALLOWED_TRANSITIONS, SeedLifecycleError, SeedState, SentinelSeed

__all__ = [
    "ALLOWED_TRANSITIONS",
    "MorphogeneticNet",
    "SeedLifecycleError",
    "SeedSlot",
    "SeedState",
    "SentinelSeed",
    "fuse",
]
