"""Builtin controllers: ``kasmina``, ``expand``, ``periodic``, ``never``."""

from kaslite.control import builtin
from kaslite.hookspecs import ControllerSpec, hookimpl


@hookimpl
def kaslite_controllers() -> list[ControllerSpec]:
    return [
        ControllerSpec("kasmina", builtin.kasmina, "germinate the least healthy seed when val loss plateaus"),
        ControllerSpec(
            "expand",
            builtin.expand,
            "grow the seed with the best expansion score (any kind) while it clears a threshold",
            params_type=builtin.ExpandParams,
        ),
        ControllerSpec("periodic", builtin.periodic, "germinate the next dormant seed every `period` epochs"),
        ControllerSpec("never", builtin.never, "never grow: the static baseline"),
    ]
