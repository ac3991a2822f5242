"""Request and response bodies: what the OpenAPI schema shows and what FastAPI parses."""

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
)

# Strict: "1.5" and true are not numbers. NaN and Infinity (which JSON parsers accept) pass here
# and are refused, with their position, once the batch is a tensor: a check 4x cheaper than pydantic's.
Number = StrictFloat


def _version_text(value: Any) -> Any:
    # Registries number their versions; accept 3 as well as "3" (but not true).
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Version = Annotated[StrictStr, BeforeValidator(_version_text)]


class PredictRequest(BaseModel):
    data: list[list[Number]] = Field(description="rows of input_dim numbers each", examples=[[[0.5, -1.25]]])
    model_version: Version | None = Field(
        default=None, description="a version the model source lists; the current model when left out"
    )


class PredictResponse(BaseModel):
    predictions: list[int]
    probabilities: list[list[float]]
    model_version: str
    inference_time_ms: float


class SeedInfo(BaseModel):
    state: str
    alpha: float


class ModelsResponse(BaseModel):
    model_name: str
    current_version: str
    available_versions: list[str]
    input_dim: int
    num_classes: int
    seeds: dict[str, SeedInfo]


class HealthResponse(BaseModel):
    status: str = Field(description='"ok" with a model, "loading" until the first load ends, else "no_model"')
    model_loaded: bool
    model_version: str | None


class LiveResponse(BaseModel):
    status: str


class ReadyResponse(BaseModel):
    ready: bool
    status: str = Field(description='"ready", "loading" (the first load is not done yet) or "no_model"')
    model_version: str | None


class ReloadResponse(BaseModel):
    status: str
    message: str


class ErrorDetail(BaseModel):
    detail: str


# -- Open Inference Protocol v2 ---------------------------------------------------

Parameters = dict[str, StrictStr | StrictInt | StrictFloat | StrictBool]


def _layout(value: Any) -> str:
    return "list[list[number]]" if isinstance(value, list) and value and isinstance(value[0], list) else "list[number]"


# Flat or one list per row, told apart by the first element, so an error names one layout,
# not both (pydantic would report every member of a plain union).
TensorData = Annotated[
    Annotated[list[Number], Tag("list[number]")] | Annotated[list[list[Number]], Tag("list[list[number]]")],
    Discriminator(_layout),
]


class V2Tensor(BaseModel):
    name: StrictStr
    shape: list[StrictInt]
    datatype: StrictStr
    parameters: Parameters | None = None
    data: TensorData = Field(description="row-major, flat or one list per row")


class V2RequestOutput(BaseModel):
    name: StrictStr
    parameters: Parameters | None = None


class V2InferRequest(BaseModel):
    id: StrictStr | None = None
    parameters: Parameters | None = None
    inputs: list[V2Tensor]
    outputs: list[V2RequestOutput] | None = None


class V2OutputTensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]


class V2InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[V2OutputTensor]


class V2TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class V2ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[V2TensorMetadata]
    outputs: list[V2TensorMetadata]


class V2ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class V2Live(BaseModel):
    live: bool


class V2Ready(BaseModel):
    ready: bool


class V2ModelReady(BaseModel):
    name: str
    ready: bool


class V2Error(BaseModel):
    error: str
