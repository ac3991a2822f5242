"""Inference metrics: ``/metrics`` on the server's app, its HTTP traffic, and its model's life.

Everything about the model comes from the server's own events
(:mod:`kaslite.serving`, handed to the ``kaslite_server_app`` hook): loads,
reloads and their failures, evictions, and every prediction request's rows,
version, outcome and compute time. The HTTP metrics come from an ASGI
middleware that sees each request's route and status, never its body.
kaslite-serve is never imported.

With ``PROMETHEUS_MULTIPROC_DIR`` set, every server process writes its values
there and ``/metrics`` answers for all of them (see the README).
"""

import contextlib
import glob
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, values
from prometheus_client.exposition import choose_encoder

from kaslite.serving import ModelEvent, PredictionEvent, ServerEvents, ServerListener

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

METRICS_PATH = "/metrics"
UNMATCHED = "unmatched"  # the endpoint label of requests no route matched (keeps labels bounded)
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
# Sub-millisecond to seconds; 1 s and 2 s are edges because the alerts watch them.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0,
)  # fmt: skip
LOAD_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
ROW_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 50000)
OUTCOMES = ("ok", "bad_input", "not_found", "not_ready", "error")
LOAD_CAUSES = ("start", "reload", "request")


def multiprocess_dir() -> str | None:
    """The shared directory when prometheus_client runs in multiprocess mode, else None."""
    if not getattr(values.ValueClass, "_multiprocess", False):
        return None
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR")


class InferenceMetrics(ServerListener):
    """The server's metrics, in a registry of their own (several apps may live in one process).

    Subscribed to the app's events, it keeps the model metrics; the
    :class:`RequestMetrics` middleware feeds the HTTP ones.
    """

    def __init__(self) -> None:
        self.multiprocess_dir = multiprocess_dir()
        if self.multiprocess_dir:
            # Live gauges left under this process's PID belong to an earlier process
            # that had the same PID (a restarted container's PID 1): not ours.
            multiprocess.mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "kaslite_inference_requests", "HTTP requests answered", ["endpoint", "method", "status"], registry=r
        )
        self.request_duration = Histogram(
            "kaslite_inference_request_duration_seconds",
            "Time from request to complete response, by route",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "kaslite_model_predictions", "Prediction requests, by outcome", ["outcome"], registry=r
        )
        self.prediction_rows = Histogram(
            "kaslite_model_prediction_rows", "Rows per answered prediction request", buckets=ROW_BUCKETS, registry=r
        )
        self.prediction_duration = Histogram(
            "kaslite_model_prediction_duration_seconds",
            "Model compute time of each answered prediction request",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.load_duration = Histogram(
            "kaslite_model_load_duration_seconds",
            "Time to load and warm up a model: at start, on reload, or a version a request named",
            ["cause"],
            buckets=LOAD_BUCKETS,
            registry=r,
        )
        self.reloads = Counter("kaslite_model_reloads", "Model reloads, by result", ["result"], registry=r)
        # Across processes: loaded only if every live process is; a version counts if any serves it.
        # 0 from the start: a process still loading its model does not serve.
        self.loaded = Gauge(
            "kaslite_model_loaded", "1 when a model is loaded and serving", registry=r, multiprocess_mode="livemin"
        )
        self.info = Gauge(
            "kaslite_model_info",
            "1 for the model version being served",
            ["model_name", "model_version"],
            registry=r,
            multiprocess_mode="livemax",
        )
        for result in ("success", "failure"):
            self.reloads.labels(result)
        for cause in LOAD_CAUSES:
            self.load_duration.labels(cause)
        # Labelled children looked up once: .labels() takes a lock and a dict lookup on every request.
        self.outcomes = {outcome: self.predictions.labels(outcome) for outcome in OUTCOMES}
        self._request_series: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self.loaded.set(0)
        self.served: tuple[str, str] | None = None  # (model_name, model_version) of the info series set to 1

    def request(self, endpoint: str, method: str, status: str, seconds: float) -> None:
        """Count one HTTP request and its duration."""
        key = (endpoint, method, status)
        series = self._request_series.get(key)
        if series is None:  # label values are bounded: route templates, methods, statuses
            series = self._request_series[key] = (self.requests.labels(*key), self.request_duration.labels(endpoint))
        series[0].inc()
        series[1].observe(seconds)

    # -- the server's events -------------------------------------------------------

    def on_model_event(self, event: ModelEvent) -> None:
        if event.kind in ("loaded", "reloaded") and event.load_seconds is not None:
            self.load_duration.labels(event.cause).observe(event.load_seconds)
        if event.cause == "reload":
            self.reloads.labels("success" if event.kind == "reloaded" else "failure").inc()
        if event.current and event.kind != "failed" and event.version is not None:
            self.loaded.set(1)
            self._serve((event.model_name, event.version))

    def on_prediction(self, event: PredictionEvent) -> None:
        self.outcomes[event.outcome].inc()
        if event.outcome == "ok":
            self.prediction_rows.observe(event.rows)
            self.prediction_duration.observe(event.seconds)

    def _serve(self, served: tuple[str, str]) -> None:
        if served == self.served:
            return
        if self.served is not None:
            if self.multiprocess_dir:  # a value in a shared file cannot be removed, only zeroed
                self.info.labels(*self.served).set(0)
            else:
                with contextlib.suppress(KeyError):
                    self.info.remove(*self.served)
        self.info.labels(*served).set(1)
        self.served = served

    # -- exposition ------------------------------------------------------------------

    def exposition(self, accept: str) -> tuple[bytes, str]:
        """The metrics text for a scrape that sent ``Accept: accept``."""
        encoder, content_type = choose_encoder(accept)
        if self.multiprocess_dir is None:
            return encoder(self.registry), content_type
        forget_dead_processes(self.multiprocess_dir)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return encoder(registry), content_type


def forget_dead_processes(path: str) -> None:
    """Drop the live-gauge files of processes that are gone, so a restart does not count them twice."""
    pids = {Path(name).stem.rsplit("_", 1)[-1] for name in glob.glob(os.path.join(path, "gauge_live*_*.db"))}
    for pid in pids:
        if pid.isdigit() and not _alive(int(pid)):
            multiprocess.mark_process_dead(int(pid), path)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def endpoint_of(scope: Scope) -> str:
    """The route template that answered (``/v2/models/{name}/infer``), never the raw path."""
    path = getattr(scope.get("route"), "path", None)  # where routing put the route it chose
    return path if isinstance(path, str) else UNMATCHED


def _route_path(scope: Scope) -> str:
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", "") or "")
    return path[len(root) :] if root and path.startswith(root) else path


class RequestMetrics:
    """ASGI middleware: counts and times every request by route template, method and status.

    Hand-written rather than prometheus-fastapi-instrumentator (8.1), which
    would record the same series for more than 5 % of single-row throughput.
    ``python bench/serve.py --http-metrics --rounds 7``, 2 cores, against the
    server with no HTTP metrics: the library cost 11.6 % of requests/s at
    concurrency 1 and 12.0 % at 16, and 38-45 µs more CPU per request
    (+11.8 %); this middleware cost 3 % or less of the CPU per request (its
    requests/s within the run-to-run noise). The library matches the route
    and builds a Request and a Response for every request, before and after
    the app has done the same.
    """

    def __init__(self, app: ASGIApp, metrics: InferenceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _route_path(scope) == METRICS_PATH:  # scrapes are not requests
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None
        counted = False

        async def watch(message: Message) -> None:
            nonlocal status, counted
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif not message.get("more_body", False) and status is not None and not counted:
                # Counted before the last byte leaves: whoever has the answer sees it counted.
                counted = True
                self._count(scope, status, started)
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            if not counted:
                self._count(scope, 500, started)
            raise
        if status is not None and not counted:  # the answer never finished (the client went away)
            self._count(scope, status, started)

    def _count(self, scope: Scope, status: int, started: float) -> None:
        method = str(scope.get("method", "")).upper()
        seconds = time.perf_counter() - started
        self.metrics.request(endpoint_of(scope), method if method in METHODS else "other", str(status), seconds)


def instrument(app: Any, events: ServerEvents) -> InferenceMetrics:
    """Add ``/metrics`` and the request middleware to the server's app, and follow its events."""
    from starlette.requests import Request
    from starlette.responses import Response

    metrics = InferenceMetrics()
    events.subscribe(metrics)

    async def scrape(request: Request) -> Response:
        content, content_type = metrics.exposition(request.headers.get("accept", ""))
        return Response(content, headers={"Content-Type": content_type})

    app.add_route(METRICS_PATH, scrape, methods=["GET"], include_in_schema=False)
    app.add_middleware(RequestMetrics, metrics=metrics)
    app.state.kaslite_monitor = metrics
    return metrics
