"""``create_app(settings)``: the FastAPI application, for ``kaslite serve``, embedding and tests."""

import contextlib
import threading
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from kaslite.plugins import get_plugin_manager
from kaslite.serving import PredictionEvent, ServerEvents
from kaslite_serve import v2
from kaslite_serve.errors import V2_PREFIX, InputError, ServeError, error_body
from kaslite_serve.holder import ModelHolder
from kaslite_serve.limits import BodySizeLimit
from kaslite_serve.routes import admin_guard, admin_router, router
from kaslite_serve.settings import ServerSettings
from kaslite_serve.validation import validation_message

DESCRIPTION = """Predictions from a kaslite model. `/predict` takes rows of numbers;
`/v2/...` speaks the Open Inference Protocol (KServe, Triton clients)."""
# Prediction routes whose bodies FastAPI validates before the handler runs.
VALIDATED_PREDICTIONS = frozenset({V2_PREFIX + v2.INFER, V2_PREFIX + v2.VERSION_INFER})


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the model while the server already answers: readiness says ``loading`` until it is done."""
    holder: ModelHolder = app.state.holder
    # A daemon thread: a registry download must not hold up the shutdown of a server asked to stop.
    threading.Thread(target=holder.start, name="kaslite-model-load", daemon=True).start()
    yield


def create_app(settings: ServerSettings) -> FastAPI:
    """The app serving the model ``settings.model_uri`` names; the model loads when the app starts.

    The holder is ``app.state.holder``, the settings ``app.state.settings``
    and the extensions' events ``app.state.events``. Plugins extend the app
    through the ``kaslite_server_app`` hook, called once here. Raises
    ``UnknownNameError`` for a URI scheme no model source serves, and
    :class:`~kaslite.errors.PluginError` naming a plugin whose hook failed.
    """
    from kaslite_serve import __version__

    events = ServerEvents()
    holder = ModelHolder(settings.model_uri, settings.version_cache_size, events, settings.model_name)

    app = FastAPI(title="kaslite inference server", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.holder = holder
    app.state.settings = settings
    app.state.events = events
    app.add_exception_handler(ServeError, _serve_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.include_router(router)
    app.include_router(admin_router, dependencies=[admin_guard(settings)])
    app.include_router(v2.router)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    extend(app, settings, events)
    return app


def extend(app: FastAPI, settings: ServerSettings, events: ServerEvents) -> None:
    """Call each plugin's ``kaslite_server_app`` under the plugin host's one policy: one that raises is
    reported by name and skipped, and the server starts without it (fatal under KASLITE_STRICT_PLUGINS=1)."""
    get_plugin_manager().call_extensions("kaslite_server_app", app=app, settings=settings, events=events)


def _is_v2(request: Request) -> bool:
    return str(request.scope["path"]).startswith(V2_PREFIX)


async def _serve_error(request: Request, exc: ServeError) -> JSONResponse:
    # The Open Inference Protocol answers bad input with 400; kaslite's routes with 422.
    status = 400 if _is_v2(request) and isinstance(exc, InputError) else exc.status
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(error_body(request.scope["path"], exc.message), status_code=status, headers=headers)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    route = getattr(request.scope.get("route"), "path", None)
    if route in VALIDATED_PREDICTIONS:  # a prediction request all the same, answered before its handler ran
        request.app.state.events.prediction(PredictionEvent(route, "bad_input"))
    status = 400 if _is_v2(request) else 422
    return JSONResponse(error_body(request.scope["path"], validation_message(exc.errors())), status_code=status)


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return JSONResponse(error_body(request.scope["path"], str(exc.detail)), exc.status_code, headers=exc.headers)
