"""kaslite: grow neural networks while they train.

Importing ``kaslite`` is cheap (no torch): the engine lives in ``kaslite.nn``,
``kaslite.control`` and ``kaslite.train``, imported when used.
"""

from importlib.metadata import PackageNotFoundError, version

from kaslite.hookspecs import hookimpl
from kaslite.plugins import get_plugin_manager, reset_plugin_manager

try:
    __version__ = version("kaslite-core")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"

__all__ = ["__version__", "get_plugin_manager", "hookimpl", "reset_plugin_manager"]
