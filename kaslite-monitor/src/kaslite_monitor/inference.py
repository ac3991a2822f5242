"""Inference metrics: ``/metrics`` and a request middleware on the server's FastAPI app.

The only contract with the server is its documented HTTP answers (kaslite-serve
is never imported); the middleware reads them as they go by:

==========================  ===================================================
``POST /predict`` 2xx       ``inference_time_ms`` -> prediction duration
``GET /health`` 200         ``model_loaded``, ``model_version`` -> loaded, info
``GET /health/ready``       200 -> loaded (and ``model_version`` if given), 503 -> not loaded
``GET /models`` 200         ``model_name``, ``current_version`` -> info
``POST /reload-model``      2xx -> a successful reload, its duration the load
                            time; 401/403 -> refused, not counted; else failed
==========================  ===================================================

When the process starts, after a successful reload and before each scrape of
``/metrics``, the app's own ``GET /health`` is asked in-process (and not
counted), so the model gauges are current even when nobody else calls it. The
model name comes from ``settings.model_name``, else the model URI, until
``/models`` names it.

With ``PROMETHEUS_MULTIPROC_DIR`` set, every server process writes its values
there and ``/metrics`` answers for all of them (see the README).
"""

import contextlib
import glob
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, values
from prometheus_client.exposition import choose_encoder

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
# Endpoints whose answers carry model facts; only their bodies are read.
OBSERVED = frozenset({"/predict", "/health", "/health/ready", "/models", "/reload-model"})
PROBE = "kaslite_monitor.probe"  # marks the middleware's own in-process requests


def multiprocess_dir() -> str | None:
    """The shared directory when prometheus_client runs in multiprocess mode, else None."""
    if not getattr(values.ValueClass, "_multiprocess", False):
        return None
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR")


def model_name_of(settings: Any) -> str:
    """``settings.model_name``, else the registered name of a ``models:/`` URI, else the file's stem."""
    name = getattr(settings, "model_name", None)
    if name:
        return str(name)
    uri = str(getattr(settings, "model_uri", "") or "")
    parsed = urlparse(uri)
    if len(parsed.scheme) > 1 and parsed.scheme != "file":
        rest = uri.split(":", 1)[1].lstrip("/")
        return rest.split("@", 1)[0].split("/", 1)[0] or parsed.scheme
    return Path(parsed.path if parsed.scheme == "file" else uri).stem or "unknown"


class InferenceMetrics:
    """The server's metrics, in a registry of their own (several apps may live in one process)."""

    def __init__(self, model_name: str) -> None:
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
        self.prediction_duration = Histogram(
            "kaslite_model_prediction_duration_seconds",
            "Model compute time of each /predict call (its inference_time_ms)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.load_duration = Histogram(
            "kaslite_model_load_duration_seconds",
            "Time to load, warm up and swap in a model (successful /reload-model calls)",
            buckets=LOAD_BUCKETS,
            registry=r,
        )
        self.reloads = Counter("kaslite_model_reloads", "Model reloads, by result", ["result"], registry=r)
        # kaslite_model_loaded exists once the app has said (see set_loaded). Across
        # processes: loaded only if every live process is; a version counts if any serves it.
        self.loaded: Gauge | None = None
        self.info = Gauge(
            "kaslite_model_info",
            "1 for the model version being served",
            ["model_name", "model_version"],
            registry=r,
            multiprocess_mode="livemax",
        )
        for result in ("success", "failure"):
            self.reloads.labels(result)
        self.model_name = model_name
        self.model_version: str | None = None

    # -- model facts ---------------------------------------------------------------

    def set_loaded(self, loaded: bool, version: Any = None) -> None:
        """Whether a model is loaded, and which version when the answer said."""
        if self.loaded is None:
            # Created on the first fact, not before: in multiprocess mode an unset
            # gauge would already write 0 and make every other process look empty.
            self.loaded = Gauge(
                "kaslite_model_loaded",
                "1 when a model is loaded and serving",
                registry=self.registry,
                multiprocess_mode="livemin",
            )
        self.loaded.set(1 if loaded else 0)
        if not loaded:
            self._serve(None)
        elif version is not None:
            self._serve(str(version))

    def from_health(self, fields: dict[str, Any]) -> None:
        """What a ``GET /health`` answer says."""
        loaded = fields.get("model_loaded")
        if isinstance(loaded, bool):
            self.set_loaded(loaded, fields.get("model_version"))

    def set_name(self, name: str) -> None:
        if name and name != self.model_name:
            version = self.model_version
            self._serve(None)
            self.model_name = name
            self._serve(version)

    def _serve(self, version: str | None) -> None:
        if version == self.model_version:
            return
        if self.model_version is not None:
            if self.multiprocess_dir:  # a value in a shared file cannot be removed, only zeroed
                self.info.labels(self.model_name, self.model_version).set(0)
            else:
                with contextlib.suppress(KeyError):
                    self.info.remove(self.model_name, self.model_version)
        if version is not None:
            self.info.labels(self.model_name, version).set(1)
        self.model_version = version

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


def _route_path(scope: Scope) -> str:
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", "") or "")
    return path[len(root) :] if root and path.startswith(root) else path


def endpoint_of(scope: Scope, routes: Any) -> str:
    """The route template that answered (``/v2/models/{name}/infer``), never the raw path."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    from starlette.routing import Match

    for route in routes:  # plain Starlette routes do not mark the scope
        with contextlib.suppress(Exception):
            if route.matches(scope)[0] is Match.FULL:
                return str(getattr(route, "path", UNMATCHED))
    return UNMATCHED


def _fields(body: bytes) -> dict[str, Any]:
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        data = json.loads(body)
        if isinstance(data, dict):
            return data
    return {}


def _prediction_fields(body: bytes) -> dict[str, Any]:
    """``model_version`` and ``inference_time_ms`` of a /predict answer, parsing only its tail when it can."""
    # The arrays of numbers come first and hold no strings, so the object from
    # the first of these keys to the end is valid JSON on its own.
    starts = [i for key in (b'"model_version"', b'"inference_time_ms"') if (i := body.find(key)) > 0]
    if starts:
        tail = _fields(b"{" + body[min(starts) :])
        if tail:
            return tail
    return _fields(body)


class RequestMetrics:
    """ASGI middleware: counts and times every request, and reads the model facts from the answers."""

    def __init__(self, app: ASGIApp, metrics: InferenceMetrics, routes: Any) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get(PROBE):
            await self.app(scope, receive, send)
            return
        if _route_path(scope) == METRICS_PATH:
            # The scrape reports what /health says right now; scrapes are not counted.
            await refresh_model(self.app, self.metrics, scope)
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None
        endpoint = UNMATCHED
        body: list[bytes] | None = None
        recorded = False

        async def watch(message: Message) -> None:
            nonlocal status, endpoint, body, recorded
            if message["type"] == "http.response.start":
                status = int(message["status"])
                endpoint = endpoint_of(scope, self.routes)
                if endpoint in OBSERVED:
                    body = []
            elif message["type"] == "http.response.body":
                if body is not None:
                    body.append(message.get("body", b""))
                if not message.get("more_body", False) and status is not None:
                    # Recorded before the last byte leaves: whoever has the answer sees it counted.
                    recorded = True
                    await self._record(scope, endpoint, status, body, time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            if not recorded:
                self._count(scope, endpoint_of(scope, self.routes), 500, time.perf_counter() - started)
            raise
        if status is not None and not recorded:  # the answer never finished (the client went away)
            self._count(scope, endpoint, status, time.perf_counter() - started)

    async def _record(self, scope: Scope, endpoint: str, status: int, body: list[bytes] | None, seconds: float) -> None:
        self._count(scope, endpoint, status, seconds)
        if body is not None:
            await self._observe(scope, endpoint, status, b"".join(body), seconds)

    def _count(self, scope: Scope, endpoint: str, status: int, seconds: float) -> None:
        method = str(scope.get("method", "")).upper()
        m = self.metrics
        m.requests.labels(endpoint, method if method in METHODS else "other", str(status)).inc()
        m.request_duration.labels(endpoint).observe(seconds)

    async def _observe(self, scope: Scope, endpoint: str, status: int, body: bytes, seconds: float) -> None:
        m = self.metrics
        ok = 200 <= status < 300
        if endpoint == "/predict" and ok:
            elapsed_ms = _prediction_fields(body).get("inference_time_ms")
            if isinstance(elapsed_ms, (int, float)) and not isinstance(elapsed_ms, bool) and elapsed_ms >= 0:
                m.prediction_duration.observe(elapsed_ms / 1000.0)
        elif endpoint == "/health" and status == 200:
            m.from_health(_fields(body))
        elif endpoint == "/health/ready" and status in (200, 503):
            m.set_loaded(status == 200, _fields(body).get("model_version"))
        elif endpoint == "/models" and ok:
            fields = _fields(body)
            if isinstance(fields.get("model_name"), str):
                m.set_name(fields["model_name"])
            if fields.get("current_version") is not None:
                m.set_loaded(True, fields["current_version"])
        elif endpoint == "/reload-model" and status not in (401, 403):
            succeeded = ok and _fields(body).get("status", "success") in ("success", "ok")
            m.reloads.labels("success" if succeeded else "failure").inc()
            if succeeded:
                m.load_duration.observe(seconds)
                await refresh_model(self.app, m, scope)  # the answer does not say which version is served now


async def refresh_model(app: ASGIApp, metrics: InferenceMetrics, like: Scope | None = None) -> None:
    """Ask the app's own ``GET /health`` in-process (marked, so it is not counted) and record the answer."""
    status, body = await _get(app, "/health", like or {})
    if status == 200:
        metrics.from_health(_fields(body))


async def _get(app: ASGIApp, path: str, like: Scope) -> tuple[int, bytes]:
    """``GET path`` on ``app`` in-process, in the context of request ``like``; (0, b"") if it fails."""
    root = str(like.get("root_path", "") or "")
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": like.get("scheme", "http"),
        "path": root + path,
        "raw_path": (root + path).encode(),
        "root_path": root,
        "query_string": b"",
        "headers": [(b"host", b"kaslite-monitor"), (b"accept", b"application/json")],
        "client": ("127.0.0.1", 0),
        "server": like.get("server"),
        "state": dict(like.get("state") or {}),
        PROBE: True,
    }
    if "app" in like:
        scope["app"] = like["app"]
    asked = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal asked
        if asked:
            return {"type": "http.disconnect"}
        asked = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    try:
        await app(scope, receive, send)
    except Exception:
        return 0, b""
    return status, b"".join(chunks)


def instrument(app: Any, settings: Any) -> InferenceMetrics:
    """Add ``/metrics`` and the request middleware to a FastAPI (or Starlette) app."""
    from starlette.requests import Request
    from starlette.responses import Response

    metrics = InferenceMetrics(model_name_of(settings))

    async def scrape(request: Request) -> Response:
        content, content_type = metrics.exposition(request.headers.get("accept", ""))
        return Response(content, headers={"Content-Type": content_type})

    app.add_route(METRICS_PATH, scrape, methods=["GET"], include_in_schema=False)
    app.add_middleware(RequestMetrics, metrics=metrics, routes=app.router.routes)
    serving = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(lifespan_app: Any) -> AsyncIterator[Any]:
        async with serving(lifespan_app) as state:
            # Each process says whether it holds a model as soon as it starts.
            await refresh_model(app, metrics, {"app": app, "state": state or {}})
            yield state

    app.router.lifespan_context = lifespan
    app.state.kaslite_monitor = metrics
    return metrics
