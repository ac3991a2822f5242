"""Objects named by their import path, ``package.module:Qual.name``: how model files name their network's
factory and how the trackers' helper process names what it builds."""

import importlib
from typing import Any


def import_path(obj: Any) -> str:
    """``module:qualname`` of a class or function (a lambda or a local one has none that imports)."""
    return f"{obj.__module__}:{obj.__qualname__}"


def imported(path: str) -> Any:
    """The object at ``module:qualname``; ImportError or AttributeError when it is not there."""
    module_name, _, qualname = path.partition(":")
    found: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found
