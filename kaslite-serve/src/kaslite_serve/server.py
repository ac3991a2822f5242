"""Run the app under uvicorn: one worker per process; run replicas for more (see the README)."""

import logging
import socket

from kaslite.errors import ConfigError
from kaslite.plugins import get_model_source
from kaslite_serve.settings import ServerSettings
from kaslite_serve.uris import scheme_of


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


def serve(settings: ServerSettings, log_level: str = "info") -> None:
    """Bind, load the model, then serve until interrupted; start-up errors stop before any request."""
    configure_logging(log_level)
    # The cheap checks first: a taken port or an unknown URI scheme fails before torch loads.
    get_model_source(scheme_of(settings.model_uri))
    sock = listen(settings.host, settings.port)

    import torch
    import uvicorn

    from kaslite_serve.app import create_app

    # Requests run in a thread pool and replicas are separate processes: intra-op
    # threads beyond this would only fight each other for the same cores.
    torch.set_num_threads(settings.torch_threads)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        workers=1,
        log_level=log_level,
        access_log=settings.access_log,
    )
    # uvicorn logs the address only for sockets it binds itself; this one is ours.
    host, port = sock.getsockname()[:2]
    address = f"[{host}]" if ":" in host else host
    logging.getLogger("kaslite.serve").info("listening on http://%s:%d (Ctrl+C to quit)", address, port)
    uvicorn.Server(config).run(sockets=[sock])
