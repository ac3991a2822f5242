"""kaslite: grow neural networks while they train.

Importing ``kaslite`` is cheap (no torch): the engine lives in ``kaslite.nn``,
``kaslite.control`` and ``kaslite.train``, imported when first used, and
``kaslite.Grower``, ``kaslite.fit``, ``kaslite.fuse``, ``kaslite.save_model``
and ``kaslite.load_model`` load it on first access.
"""

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from kaslite.hookspecs import PLUGIN_API_VERSION, hookimpl
from kaslite.plugins import get_plugin_manager, reset_plugin_manager

if TYPE_CHECKING:  # what type checkers see: the real signatures, loaded lazily at run time below
    from kaslite.models.files import load_model, save_model
    from kaslite.nn.fuse import fuse
    from kaslite.train.fit import fit
    from kaslite.train.grower import Grower

try:
    __version__ = version("kaslite-core")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"

# Public names that need torch, and the module each lives in.
_LAZY = {
    "Grower": "kaslite.train.grower",
    "fit": "kaslite.train.fit",
    "fuse": "kaslite.nn.fuse",
    "load_model": "kaslite.models.files",
    "save_model": "kaslite.models.files",
}

__all__ = [
    "PLUGIN_API_VERSION",
    "Grower",
    "__version__",
    "fit",
    "fuse",
    "get_plugin_manager",
    "hookimpl",
    "load_model",
    "reset_plugin_manager",
    "save_model",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kaslite' has no attribute {name!r}")
