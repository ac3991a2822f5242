"""What the inference server tells its extensions: model lifecycle events and per-request facts.

The server (kaslite-serve) builds one :class:`ServerEvents` per app and hands
it to every ``kaslite_server_app`` hook. An extension subscribes a
:class:`ServerListener` and learns about the model from the server itself,
never by reading the server's HTTP answers::

    class Log(ServerListener):
        def on_model_event(self, event):
            print(event.kind, event.model_name, event.version, event.load_seconds)

        def on_prediction(self, event):
            print(event.endpoint, event.rows, event.outcome)

    @kaslite.hookimpl
    def kaslite_server_app(app, settings, events):
        events.subscribe(Log())

Listeners are called synchronously, from the thread that did the work (a
request's, or the one loading a model): keep them quick and thread-safe. A
listener that raises is reported once on the ``kaslite.serve`` logger and
unsubscribed; the server goes on.
"""

import logging
import threading
from typing import Literal

import attrs

from kaslite.errors import first_line

logger = logging.getLogger("kaslite.serve")

ModelEventKind = Literal["loaded", "reloaded", "failed", "evicted"]
LoadCause = Literal["start", "reload", "request"]
Outcome = Literal["ok", "bad_input", "not_found", "not_ready", "error"]


@attrs.frozen
class ModelEvent:
    """Something happened to a model the server holds.

    :param kind: ``loaded`` (a model is ready: the first one at start, or a
        version a request named), ``reloaded`` (a reload swapped in a new
        current model), ``failed`` (a load failed; whatever served before
        still serves) or ``evicted`` (a version a request named left the cache).
    :param cause: ``start`` (the first load, in the app's lifespan),
        ``reload`` (``POST /reload-model``) or ``request`` (a request named
        a version other than the current one). ``start`` and ``reload`` are
        about the current model, which answers requests that name no version.
    :param model_name: the name clients address the model by.
    :param version: the version loaded, reloaded or evicted; the one
        asked for when a ``request`` load failed; None for a failed
        ``start`` or ``reload`` (the version is not known until it loads).
    :param input_dim: values per sample (features, for rows), when a model was loaded.
    :param num_classes: classes the model predicts, when a model was loaded.
    :param load_seconds: time to load and warm up, for ``loaded`` and ``reloaded``.
    :param error: one line saying why, for ``failed``.
    """

    kind: ModelEventKind
    cause: LoadCause
    model_name: str
    version: str | None = None
    input_dim: int | None = None
    num_classes: int | None = None
    load_seconds: float | None = None
    error: str | None = None

    @property
    def current(self) -> bool:
        """Whether the event is about the current model (``start`` or ``reload``)."""
        return self.cause != "request"


@attrs.frozen
class PredictionEvent:
    """One prediction request the server answered (``/predict`` or an Open Inference Protocol ``infer``).

    :param endpoint: the route template, e.g. ``/predict`` or ``/v2/models/{name}/infer``.
    :param outcome: ``ok``; ``bad_input`` (the data does not fit the model:
        422 on ``/predict``, 400 on ``/v2``); ``not_found`` (an unknown
        version or model name); ``not_ready`` (no model loaded, or the named
        version could not load); ``error`` (anything else).
    :param rows: rows in the request's data, when it could be read (else 0).
    :param model_version: the version that answered, or was asked for; None
        when neither is known.
    :param seconds: the model's compute time (0 when the model did not run).
    """

    endpoint: str
    outcome: Outcome
    rows: int = 0
    model_version: str | None = None
    seconds: float = 0.0


class ServerListener:
    """Receives a server's events; override the methods you need (the defaults do nothing)."""

    def on_model_event(self, event: ModelEvent) -> None:
        """A model was loaded, reloaded, failed to load, or was evicted."""

    def on_prediction(self, event: PredictionEvent) -> None:
        """A prediction request was answered."""


class ServerEvents:
    """The events of one server app: extensions subscribe, the server announces."""

    def __init__(self) -> None:
        self._listeners: tuple[ServerListener, ...] = ()
        self._lock = threading.Lock()

    def subscribe(self, listener: ServerListener) -> None:
        """Call ``listener`` for every event from now on."""
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def model_event(self, event: ModelEvent) -> None:
        """Announce ``event`` (called by the server)."""
        for listener in self._listeners:
            try:
                listener.on_model_event(event)
            except Exception as exc:
                self._drop(listener, exc)

    def prediction(self, event: PredictionEvent) -> None:
        """Announce ``event`` (called by the server, once per prediction request)."""
        for listener in self._listeners:
            try:
                listener.on_prediction(event)
            except Exception as exc:
                self._drop(listener, exc)

    def _drop(self, listener: ServerListener, exc: Exception) -> None:
        with self._lock:
            if listener not in self._listeners:
                return  # another thread already reported it
            self._listeners = tuple(other for other in self._listeners if other is not listener)
        reason = first_line(exc)
        logger.warning(
            "server listener %s.%s failed (%s); it gets no more events",
            type(listener).__module__,
            type(listener).__qualname__,
            reason,
        )
