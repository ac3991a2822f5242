"""``create_app(settings)``: the FastAPI application, for ``kaslite serve``, embedding and tests."""

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from kaslite.errors import PluginError
from kaslite.plugins import get_plugin_manager
from kaslite_serve.errors import V2_PREFIX, InputError, ServeError, error_body
from kaslite_serve.holder import ModelHolder, describe
from kaslite_serve.limits import BodySizeLimit
from kaslite_serve.routes import kaslite_router
from kaslite_serve.settings import ServerSettings
from kaslite_serve.v2 import v2_router

DESCRIPTION = """Predictions from a kaslite model. `/predict` takes rows of numbers;
`/v2/...` speaks the Open Inference Protocol (KServe, Triton clients)."""


def create_app(settings: ServerSettings) -> FastAPI:
    """Load the model ``settings.model_uri`` names and build the app around it.

    The holder is ``app.state.holder`` and the settings ``app.state.settings``;
    plugins extend the app through the ``kaslite_server_app`` hook, called once
    here. Raises :class:`~kaslite_serve.errors.ModelUnavailable` when a model
    file cannot be loaded, and ``UnknownNameError`` for a URI scheme no model
    source serves.
    """
    from kaslite_serve import __version__

    holder = ModelHolder(settings.model_uri, settings.version_cache_size)
    holder.start()
    model_name = holder.model_name(settings.model_name)

    app = FastAPI(title="kaslite inference server", version=__version__, description=DESCRIPTION)
    app.state.holder = holder
    app.state.settings = settings
    app.add_exception_handler(ServeError, _serve_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.include_router(kaslite_router(holder, settings, model_name))
    app.include_router(v2_router(holder, settings, model_name))
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    try:
        get_plugin_manager().hook.kaslite_server_app(app=app, settings=settings)
    except Exception as exc:
        raise PluginError(f"a kaslite_server_app plugin failed: {describe(exc)}") from exc
    return app


def _is_v2(request: Request) -> bool:
    return str(request.scope["path"]).startswith(V2_PREFIX)


async def _serve_error(request: Request, exc: ServeError) -> JSONResponse:
    # The Open Inference Protocol answers bad input with 400; kaslite's routes with 422.
    status = 400 if _is_v2(request) and isinstance(exc, InputError) else exc.status
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(error_body(request.scope["path"], exc.message), status_code=status, headers=headers)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    status = 400 if _is_v2(request) else 422
    return JSONResponse(error_body(request.scope["path"], validation_message(exc.errors())), status_code=status)


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return JSONResponse(error_body(request.scope["path"], str(exc.detail)), exc.status_code, headers=exc.headers)


def validation_message(errors: Sequence[Any], shown: int = 3) -> str:
    """Pydantic's errors as one line: ``data[0][1]: Input should be a valid number; ...``."""
    parts = []
    for error in errors[:shown]:
        if error["type"] == "json_invalid":
            parts.append(f"body is not valid JSON ({error.get('ctx', {}).get('error', 'decode error')})")
            continue
        parts.append(f"{_location(error['loc']) or 'body'}: {error['msg']}")
    if len(errors) > shown:
        parts.append(f"and {len(errors) - shown} more")
    return "; ".join(parts)


def _location(loc: Sequence[Any]) -> str:
    text = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif "[" not in part:  # "list[number]" names a member of a union, not a field
            text += f".{part}" if text else part
    return text
