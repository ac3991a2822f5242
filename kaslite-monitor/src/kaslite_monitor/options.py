"""Settings of the ``prometheus`` tracker; each field is a ``kaslite run`` flag."""

from typing import Any

import attrs

from kaslite.config.validation import non_empty
from kaslite.errors import InvalidValue

DEFAULT_PORT = 8000


def port_number(instance: object, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    """Allow a TCP port, or 0 for any free one."""
    if not (isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 65535):
        raise InvalidValue(attribute.name, value, "must be a port number in 0..65535 (0 picks a free port)")


@attrs.frozen
class PrometheusOptions:
    """Where a run serves its metrics.

    :param metrics_port: TCP port of the ``/metrics`` endpoint; 0 picks a free
        one. When the port is taken (a second run, parallel sweep trials) the
        next free one of the 20 above it is used instead (else any free one),
        and printed.
    :param metrics_host: address to bind; loopback by default, ``0.0.0.0`` for a
        Prometheus running elsewhere (a container, another host).
    """

    metrics_port: int = attrs.field(
        default=DEFAULT_PORT, validator=port_number, metadata={"help": "port of /metrics; 0 picks a free one"}
    )
    metrics_host: str = attrs.field(
        default="127.0.0.1", validator=non_empty, metadata={"help": "address /metrics binds to"}
    )
