"""The network that grows: :class:`MorphogeneticNet`, its :class:`SentinelSeed` slots and its
:class:`WideSeed` branches."""

from kaslite.nn.fuse import fuse
from kaslite.nn.network import MorphogeneticNet, SeedSlot
from kaslite.nn.seed import ALLOWED_TRANSITIONS, SeedLifecycleError, SeedState, SentinelSeed
from kaslite.nn.wide import WideSeed

__all__ = [
    "ALLOWED_TRANSITIONS",
    "MorphogeneticNet",
    "SeedLifecycleError",
    "SeedSlot",
    "SeedState",
    "SentinelSeed",
    "WideSeed",
    "fuse",
]
