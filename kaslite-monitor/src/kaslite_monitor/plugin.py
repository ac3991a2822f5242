"""The ``monitor`` plugin: the ``prometheus`` tracker, inference metrics and ``kaslite monitor``.

Loaded by every ``kaslite`` command, so it imports only attrs, click and
kaslite: prometheus_client (and torch, for training) load inside the tracker
factory and the hook bodies.
"""

from typing import Any

import click

import kaslite
from kaslite.hookspecs import TrackerSpec
from kaslite_monitor.options import PrometheusOptions


def prometheus_tracker(run: Any) -> Any:
    """The tracker of one run (``TrackerSpec.factory``)."""
    from kaslite_monitor.training import PrometheusTracker

    return PrometheusTracker(run, run.tracker_options.get("prometheus") or PrometheusOptions())


@kaslite.hookimpl
def kaslite_trackers() -> list[TrackerSpec]:
    return [
        TrackerSpec(
            "prometheus",
            prometheus_tracker,
            "Prometheus metrics of the run at http://HOST:PORT/metrics (--metrics-port, --metrics-host)",
            default=True,
            options_type=PrometheusOptions,
        )
    ]


@kaslite.hookimpl
def kaslite_server_app(app: Any, events: Any) -> None:
    from kaslite_monitor.inference import instrument

    instrument(app, events)


@kaslite.hookimpl
def kaslite_commands(cli: click.Group) -> None:
    from kaslite_monitor.export import monitor

    cli.add_command(monitor)
