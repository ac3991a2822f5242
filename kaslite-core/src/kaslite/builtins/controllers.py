"""Builtin controllers: ``kasmina``, ``periodic``, ``never``."""

from kaslite.control import builtin
from kaslite.hookspecs import ControllerSpec, hookimpl


@hookimpl
def kaslite_controllers() -> list[ControllerSpec]:
    return [
        ControllerSpec("kasmina", builtin.kasmina, "germinate the least healthy seed when val loss plateaus"),
        ControllerSpec("periodic", builtin.periodic, "germinate the next dormant seed every `period` epochs"),
        ControllerSpec("never", builtin.never, "never grow: the static baseline"),
    ]
