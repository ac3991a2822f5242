"""The network that grows: :class:`MorphogeneticNet`, its :class:`SentinelSeed` slots, its
:class:`WidthSeed` units and its :class:`WideSeed` branches; :class:`WidenablePair` and
:class:`WidenableConvPair` for a user's layers."""

from kaslite.nn.fuse import fuse
from kaslite.nn.modules import count_parameters, find_seeds, unwrap
from kaslite.nn.network import MorphogeneticNet, SeedSlot
from kaslite.nn.seed import ALLOWED_TRANSITIONS, SeedLifecycleError, SeedState, SentinelSeed
from kaslite.nn.wide import WideSeed
from kaslite.nn.width import ConvWidthSeed, WidenableConvPair, WidenablePair, WidthSeed

__all__ = [
    "ALLOWED_TRANSITIONS",
    "ConvWidthSeed",
    "MorphogeneticNet",
    "SeedLifecycleError",
    "SeedSlot",
    "SeedState",
    "SentinelSeed",
    "WideSeed",
    "WidenableConvPair",
    "WidenablePair",
    "WidthSeed",
    "count_parameters",
    "find_seeds",
    "fuse",
    "unwrap",
]
