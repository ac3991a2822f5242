"""kaslite's own routes: ``/predict``, ``/models``, the health checks and ``/reload-model``.

Routes get the model holder and the settings as dependencies (``Holder``,
``Settings``), from the app they serve. ``/predict`` reads its body itself
(:func:`~kaslite_serve.validation.read_predict_body`): parsing JSON rows
straight into a float32 array is several times cheaper than validating
``list[list[float]]`` with pydantic, and the schema still documents it.
"""

import hmac
import logging
import time
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from kaslite.serving import Outcome, PredictionEvent
from kaslite_serve.errors import (
    Forbidden,
    InputError,
    NotReady,
    ReloadFailed,
    Unauthorized,
    UnknownModel,
    UnknownVersion,
)
from kaslite_serve.holder import ModelHolder, ServedModel, describe
from kaslite_serve.schemas import (
    ErrorDetail,
    HealthResponse,
    LiveResponse,
    ModelsResponse,
    PredictRequest,
    PredictResponse,
    ReadyResponse,
    ReloadResponse,
)
from kaslite_serve.settings import ADMIN_TOKEN_ENV, ServerSettings
from kaslite_serve.validation import predict_batch, read_predict_body

logger = logging.getLogger("kaslite.serve")

# Batches up to this many rows run on the event loop: measured on 2 cores, a thread-pool hop costs
# ~0.09 ms and 1,000 rows of a small net ~0.2 ms, so the hop would cost more than it frees. Bigger
# batches run in the pool, so the loop keeps answering while torch works.
INLINE_ROWS = 1000


async def model_holder(request: Request) -> ModelHolder:
    """The app's model holder (``app.state.holder``). Async: FastAPI runs sync dependencies in its thread pool."""
    return request.app.state.holder  # type: ignore[no-any-return]


async def server_settings(request: Request) -> ServerSettings:
    """The app's settings (``app.state.settings``)."""
    return request.app.state.settings  # type: ignore[no-any-return]


Holder = Annotated[ModelHolder, Depends(model_holder)]
Settings = Annotated[ServerSettings, Depends(server_settings)]


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers a route can give."""
    return {code: {"model": ErrorDetail} for code in codes}


def json_response(body: dict[str, Any]) -> Response:
    """JSON written by orjson, numpy arrays included; returning a Response skips FastAPI's re-validation."""
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")


OUTCOMES: tuple[tuple[type[Exception], Outcome], ...] = (
    (InputError, "bad_input"),
    (UnknownVersion, "not_found"),
    (UnknownModel, "not_found"),
    (NotReady, "not_ready"),
)


class Prediction:
    """One prediction request, tallied as it goes; its :class:`~kaslite.serving.PredictionEvent` is announced
    when the ``with`` block ends, however it ends."""

    def __init__(self, holder: ModelHolder, endpoint: str) -> None:
        self.events = holder.events
        self.endpoint = endpoint
        self.rows = 0
        self.model_version: str | None = None
        self.seconds = 0.0

    def __enter__(self) -> "Prediction":
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, traceback: object) -> None:
        if exc is None:
            outcome: Outcome = "ok"
        else:
            outcome = next((name for error, name in OUTCOMES if isinstance(exc, error)), "error")
        seconds = self.seconds if outcome == "ok" else 0.0
        self.events.prediction(PredictionEvent(self.endpoint, outcome, self.rows, self.model_version, seconds))


async def model_for(holder: ModelHolder, version: str | None) -> ServedModel:
    """The model to answer ``version``: at hand at once, or loaded in the thread pool (it may take a while)."""
    at_hand = holder.cached(version)
    return at_hand if at_hand is not None else await run_in_threadpool(holder.model, version)


def run_model(model: ServedModel, batch: Any, facts: Prediction) -> tuple[Any, Any]:
    """(predictions, probabilities) as numpy arrays; the compute time goes to ``facts``."""
    started = time.perf_counter()
    answer = model.predict(batch)
    facts.seconds = time.perf_counter() - started
    return answer


async def predicted(model: ServedModel, batch: Any, facts: Prediction) -> tuple[Any, Any]:
    """``run_model`` on the event loop for small batches, in the thread pool for big ones."""
    if len(batch) <= INLINE_ROWS:
        return run_model(model, batch, facts)
    return await run_in_threadpool(run_model, model, batch, facts)


router = APIRouter()
PREDICT_BODY = {"content": {"application/json": {"schema": PredictRequest.model_json_schema()}}, "required": True}


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=errors(404, 413, 422, 503),
    openapi_extra={"requestBody": PREDICT_BODY},
)
async def predict(request: Request, holder: Holder, settings: Settings) -> Response:
    """Class predictions and probabilities for each sample of ``data`` (a row, or nested as the model's input)."""
    with Prediction(holder, "/predict") as facts:
        body = read_predict_body(await request.body())
        facts.rows, facts.model_version = len(body.samples), body.model_version
        model = await model_for(holder, body.model_version)
        facts.model_version = model.version
        batch = predict_batch(body, model.signature.input, settings.max_batch_rows)
        predictions, probabilities = await predicted(model, batch, facts)
    return json_response(
        {
            "predictions": predictions,
            "probabilities": probabilities,
            "model_version": model.version,
            "inference_time_ms": facts.seconds * 1000.0,
        }
    )


@router.get("/models", response_model=ModelsResponse, responses=errors(503))
def models(holder: Holder) -> dict[str, Any]:
    """The served model: versions, shape and the state of each seed."""
    model = holder.model()
    try:
        available = holder.version_labels()
    except NotReady as exc:  # the source is unreachable; the loaded model still answers
        logger.warning("%s", exc.message)
        available = [model.version]
    return {
        "model_name": holder.model_name,
        "current_version": model.version,
        "available_versions": available,
        "input_shape": list(model.signature.input.shape),
        "output_shape": list(model.signature.output.shape),
        "input_dim": model.input_dim,
        "num_classes": model.num_classes,
        "seeds": model.seeds(),
    }


@router.get("/health", response_model=HealthResponse)
async def health(holder: Holder) -> dict[str, Any]:
    """Whether a model is loaded (or still loading), and which version."""
    current = holder.current
    return {
        "status": "ok" if current else holder.state,
        "model_loaded": current is not None,
        "model_version": current.version if current else None,
    }


@router.get("/health/live", response_model=LiveResponse)
async def live() -> dict[str, str]:
    """200 while the process runs (a liveness probe)."""
    return {"status": "alive"}


@router.get("/health/ready", response_model=ReadyResponse, responses={503: {"model": ReadyResponse}})
async def ready(holder: Holder) -> JSONResponse:
    """200 while a model is loaded, else 503 with ``status`` ``loading`` or ``no_model`` (a readiness probe)."""
    current = holder.current
    body = {"ready": current is not None, "status": holder.state, "model_version": current.version if current else None}
    return JSONResponse(body, status_code=200 if current else 503)


admin_router = APIRouter()
bearer = HTTPBearer(auto_error=False, description=f"the token in ${ADMIN_TOKEN_ENV}")


async def loopback_only(settings: Settings) -> None:
    """Without a token, only a loopback bind may reload."""
    if not settings.loopback:
        raise Forbidden(
            f"/reload-model is refused: the server is bound to {settings.host}, not loopback, "
            f"and {ADMIN_TOKEN_ENV} is not set"
        )


async def bearer_token(
    settings: Settings, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    """With a token, ``Authorization: Bearer <token>``."""
    if credentials is None:
        raise Unauthorized(f"/reload-model needs 'Authorization: Bearer <token>' ({ADMIN_TOKEN_ENV} is set)")
    if not hmac.compare_digest(credentials.credentials.encode(), (settings.admin_token or "").encode()):
        raise Forbidden("/reload-model: wrong admin token")


def admin_guard(settings: ServerSettings) -> Any:
    """The dependency guarding the admin routes; without a token the schema declares no security."""
    return Depends(loopback_only if settings.admin_token is None else bearer_token)


@admin_router.post("/reload-model", response_model=ReloadResponse, responses=errors(401, 403, 503))
def reload_model(holder: Holder) -> dict[str, str]:
    """Load what ``--model`` names now (a registry alias: its current version) and swap it in."""
    try:
        model = holder.reload()
    except Exception as exc:  # whatever the source raised, the old model keeps serving
        current = holder.current
        still = f"still serving version {current.version}" if current else "no model is loaded"
        logger.warning("reload of %s failed: %s; %s", holder.uri, describe(exc), still)
        raise ReloadFailed(f"reload failed: {describe(exc)}; {still}") from None
    logger.info("reloaded %s: now serving version %s (loaded in %.3f s)", holder.uri, model.version, model.load_seconds)
    return {"status": "success", "message": f"Reloaded model version {model.version}"}
