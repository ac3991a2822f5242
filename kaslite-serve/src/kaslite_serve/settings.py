"""``ServerSettings``: everything the server is told at start-up, validated before any work."""

import ipaddress
import os

import attrs

from kaslite.config.validation import integer_at_least, non_empty

ADMIN_TOKEN_ENV = "KASLITE_ADMIN_TOKEN"


def _token_from_env() -> str | None:
    return os.environ.get(ADMIN_TOKEN_ENV) or None


def _port(instance: object, attribute: "attrs.Attribute[int]", value: int) -> None:
    integer_at_least(0)(instance, attribute, value)
    if value > 65535:
        from kaslite.errors import InvalidValue

        raise InvalidValue(attribute.name, value, "must be a port number in 0..65535")


@attrs.frozen
class ServerSettings:
    """How the inference server runs; plugins receive it in ``kaslite_server_app``.

    :param model_uri: a model file (path or ``file://``) or any URI a model
        source plugin serves (``models:/kaslite@production``).
    :param host: address to bind; anything but loopback needs ``admin_token``
        for ``/reload-model``.
    :param port: TCP port.
    :param max_batch_rows: most rows one request may carry.
    :param max_body_bytes: largest request body accepted (413 above it).
    :param admin_token: bearer token ``/reload-model`` requires; defaults to
        ``$KASLITE_ADMIN_TOKEN`` so an embedded app is as safe as the CLI.
    :param cors_origins: origins allowed by CORS; empty means CORS stays off.
    :param version_cache_size: how many explicitly requested versions stay loaded.
    :param torch_threads: intra-op threads of this process (one process per replica).
    :param model_name: the name clients use (``/v2/models/{name}``); derived
        from the URI or the model's run name when not given.
    :param access_log: log one line per request (off by default: it costs throughput).
    """

    model_uri: str = attrs.field(validator=non_empty)
    host: str = "127.0.0.1"
    port: int = attrs.field(default=8080, validator=_port)
    max_batch_rows: int = attrs.field(default=10_000, validator=integer_at_least(1))
    max_body_bytes: int = attrs.field(default=16 * 1024 * 1024, validator=integer_at_least(1))
    admin_token: str | None = attrs.field(factory=_token_from_env, repr=False)
    cors_origins: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    version_cache_size: int = attrs.field(default=4, validator=integer_at_least(1))
    torch_threads: int = attrs.field(default=1, validator=integer_at_least(1))
    model_name: str | None = None
    access_log: bool = False

    @property
    def loopback(self) -> bool:
        """Whether ``host`` only accepts connections from this machine."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:  # a host name other than localhost may resolve anywhere
            return False
