"""kaslite-monitor: Prometheus metrics for kaslite training runs and the inference server.

* the ``prometheus`` tracker (on by default): a run's metrics on ``--metrics-port``;
* the ``kaslite_server_app`` hook: ``/metrics`` and request/model metrics on the inference app;
* ``kaslite monitor export DIR``: alert rules, Alertmanager config, Grafana provisioning and dashboards.

Importing this package is cheap: prometheus_client loads only when a tracker
is built or a server app is extended.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
