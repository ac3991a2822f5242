"""Open Inference Protocol (KServe / Triton "v2") routes, so their clients can call kaslite.

Errors answer ``{"error": message}`` as the protocol asks (400 for bad input),
and a health check that is false answers 400, per the protocol's "4xx means false".
"""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from kaslite_serve.errors import InputError, UnknownModel
from kaslite_serve.holder import ModelHolder, ServedModel
from kaslite_serve.routes import Holder, Prediction, Settings, json_response, model_for, predicted
from kaslite_serve.schemas import (
    V2Error,
    V2InferRequest,
    V2InferResponse,
    V2Live,
    V2ModelMetadata,
    V2ModelReady,
    V2Ready,
    V2ServerMetadata,
)
from kaslite_serve.settings import ServerSettings
from kaslite_serve.validation import v2_batch

OUTPUTS = ("probabilities", "predictions")
INFER = "/models/{name}/infer"
VERSION_INFER = "/models/{name}/versions/{version}/infer"

router = APIRouter(prefix="/v2", tags=["Open Inference Protocol v2"])


def v2_errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": V2Error} for code in codes}


def check_name(holder: ModelHolder, name: str) -> None:
    if name != holder.model_name:
        raise UnknownModel(f"unknown model {name!r}; this server serves {holder.model_name!r}")


def metadata(holder: ModelHolder, name: str, version: str | None) -> dict[str, Any]:
    check_name(holder, name)
    model = holder.model(version)
    output = list(model.signature.output.shape)
    return {
        "name": holder.model_name,
        "versions": holder.version_labels(),
        "platform": "pytorch_kaslite",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, *model.signature.input.shape]}],
        "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, *output]},
            {"name": "predictions", "datatype": "INT64", "shape": [-1, *output[:-1]]},
        ],
    }


def model_ready(holder: ModelHolder, name: str, version: str | None) -> JSONResponse:
    check_name(holder, name)
    if holder.current is None:
        return JSONResponse({"name": holder.model_name, "ready": False}, status_code=400)
    if version is not None:
        holder.model(version)  # unknown: 404; unloadable: 503
    return JSONResponse({"name": holder.model_name, "ready": True})


async def infer(
    holder: ModelHolder, settings: ServerSettings, endpoint: str, name: str, version: str | None, body: V2InferRequest
) -> Response:
    with Prediction(holder, "/v2" + endpoint) as facts:
        facts.model_version = version
        check_name(holder, name)
        model: ServedModel = await model_for(holder, version)
        facts.model_version = model.version
        if len(body.inputs) != 1:
            raise InputError(f"the model takes exactly one input tensor; the request has {len(body.inputs)}")
        batch = v2_batch(body.inputs[0], model.signature.input, settings.max_batch_rows)
        facts.rows = len(batch)
        wanted = [output.name for output in body.outputs] if body.outputs else list(OUTPUTS)
        unknown = [output for output in wanted if output not in OUTPUTS]
        if unknown:
            raise InputError(f"unknown output {unknown[0]!r}; the model has {', '.join(OUTPUTS)}")
        predictions, probabilities = await predicted(model, batch, facts)
    tensors = {
        "probabilities": {
            "name": "probabilities",
            "datatype": "FP32",
            "shape": list(probabilities.shape),
            "data": probabilities.ravel(),
        },
        "predictions": {
            "name": "predictions",
            "datatype": "INT64",
            "shape": list(predictions.shape),
            "data": predictions.ravel(),
        },
    }
    answer: dict[str, Any] = {"model_name": holder.model_name, "model_version": model.version}
    if body.id is not None:
        answer["id"] = body.id
    answer["outputs"] = [tensors[output] for output in wanted]
    return json_response(answer)


@router.get("", response_model=V2ServerMetadata)
async def server_metadata() -> dict[str, Any]:
    """Server name, version and protocol extensions (none)."""
    from kaslite_serve import __version__

    return {"name": "kaslite", "version": __version__, "extensions": []}


@router.get("/health/live", response_model=V2Live)
async def server_live() -> dict[str, bool]:
    """200 while the process runs."""
    return {"live": True}


@router.get("/health/ready", response_model=V2Ready, responses={400: {"model": V2Ready}})
async def server_ready(holder: Holder) -> JSONResponse:
    """200 while a model is loaded, else 400."""
    loaded = holder.current is not None
    return JSONResponse({"ready": loaded}, status_code=200 if loaded else 400)


@router.get("/models/{name}", response_model=V2ModelMetadata, responses=v2_errors(404, 503))
def model_metadata(holder: Holder, name: str) -> dict[str, Any]:
    """Inputs, outputs and versions of the model."""
    return metadata(holder, name, None)


@router.get("/models/{name}/versions/{version}", response_model=V2ModelMetadata, responses=v2_errors(404, 503))
def version_metadata(holder: Holder, name: str, version: str) -> dict[str, Any]:
    """Metadata of one version (loaded on demand)."""
    return metadata(holder, name, version)


@router.get(
    "/models/{name}/ready", response_model=V2ModelReady, responses={400: {"model": V2ModelReady}, **v2_errors(404)}
)
def ready(holder: Holder, name: str) -> JSONResponse:
    """200 when the model can answer."""
    return model_ready(holder, name, None)


@router.get(
    "/models/{name}/versions/{version}/ready",
    response_model=V2ModelReady,
    responses={400: {"model": V2ModelReady}, **v2_errors(404, 503)},
)
def version_ready(holder: Holder, name: str, version: str) -> JSONResponse:
    """200 when that version can answer."""
    return model_ready(holder, name, version)


@router.post(INFER, response_model=V2InferResponse, responses=v2_errors(400, 404, 413, 503))
async def model_infer(holder: Holder, settings: Settings, name: str, body: V2InferRequest) -> Response:
    """Inference on the current version."""
    return await infer(holder, settings, INFER, name, None, body)


@router.post(VERSION_INFER, response_model=V2InferResponse, responses=v2_errors(400, 404, 413, 503))
async def version_infer(holder: Holder, settings: Settings, name: str, version: str, body: V2InferRequest) -> Response:
    """Inference on one version (loaded on demand)."""
    return await infer(holder, settings, VERSION_INFER, name, version, body)
