"""Run the app under uvicorn: one worker per process; run replicas for more (see the README)."""

import logging
import socket

from kaslite.errors import ConfigError
from kaslite.hookspecs import ModelSourceSpec
from kaslite.models import scheme_of
from kaslite.plugins import get_model_source
from kaslite_serve.errors import ModelUnavailable
from kaslite_serve.holder import describe
from kaslite_serve.settings import ServerSettings


def configure_logging(level: str) -> None:
    """One line per message on stderr, in uvicorn's style."""
    logger = logging.getLogger("kaslite.serve")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     kaslite: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level.upper())


def listen(host: str, port: int) -> socket.socket:
    """The bound socket, or a one-line error: a taken port is found before the model is loaded."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets that
    # do, and with it on every keep-alive response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def check_model_file(uri: str, source: ModelSourceSpec) -> None:
    """A model file that cannot be read stops the command (exit 2) before the port opens.

    A registry URI is not checked: an alias with no version behind it yet is
    served once ``/reload-model`` finds one.
    """
    if scheme_of(uri) != "file":
        return
    try:
        source.list_versions(uri)  # reads the file's header and metadata, as loading will
    except Exception as exc:
        raise ModelUnavailable(f"cannot serve --model {uri!r}: {describe(exc)}") from None


def serve(settings: ServerSettings, log_level: str = "info") -> None:
    """Check the model, bind, then serve until interrupted; the app's lifespan loads the model."""
    configure_logging(log_level)
    # The cheap checks first: an unknown URI scheme, an unreadable file or a taken port fail at once.
    source = get_model_source(scheme_of(settings.model_uri))
    check_model_file(settings.model_uri, source)
    sock = listen(settings.host, settings.port)

    import torch
    import uvicorn

    from kaslite_serve.app import create_app

    # Requests run in a thread pool and replicas are separate processes: intra-op
    # threads beyond this would only fight each other for the same cores.
    torch.set_num_threads(settings.torch_threads)
    app = create_app(settings)
    # http and loop "auto": httptools and uvloop, which kaslite-serve depends on, where they install.
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        workers=1,
        log_level=log_level,
        access_log=settings.access_log,
        http="auto",
        loop="auto",
    )
    # uvicorn logs the address only for sockets it binds itself; this one is ours.
    host, port = sock.getsockname()[:2]
    address = f"[{host}]" if ":" in host else host
    logging.getLogger("kaslite.serve").info("listening on http://%s:%d (Ctrl+C to quit)", address, port)
    uvicorn.Server(config).run(sockets=[sock])
