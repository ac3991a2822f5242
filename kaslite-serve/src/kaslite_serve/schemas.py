"""Request and response bodies: what the OpenAPI schema shows and what FastAPI parses."""

from typing import Annotated, Any, TypeAlias, Union

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


# Samples nest as deep as the model's input: rows (depth 1) up to 5-D volumes.
MAX_SAMPLE_DEPTH = 5


def _nested(levels: int) -> Any:
    kind: Any = Number
    for _ in range(levels):
        kind = list[kind]
    return kind


def _layout_name(levels: int) -> str:
    # Names with brackets: an error's location leaves them out (it names fields and indices only).
    return "list[" * levels + "number" + "]" * levels


def first_shape(value: Any) -> tuple[int, ...]:
    """The shape ``value`` would have if every list were as long as its first sibling."""
    dims = []
    while isinstance(value, list):
        dims.append(len(value))
        value = value[0] if value else None
    return tuple(dims)


def _layout(value: Any) -> str:
    return _layout_name(min(max(len(first_shape(value)), 1), MAX_SAMPLE_DEPTH + 1))


def _layouts(deepest: int) -> Any:
    return Annotated[
        Union[tuple(Annotated[_nested(levels), Tag(_layout_name(levels))] for levels in range(1, deepest + 1))],  # noqa: UP007
        Discriminator(_layout),
    ]


# One layout per depth, told apart by following first elements, so an error names one layout,
# not all of them (pydantic would report every member of a plain union).
# Built at import time, so type checkers see them as Any.
NestedNumbers: TypeAlias = _layouts(MAX_SAMPLE_DEPTH + 1)  # type: ignore[valid-type]  # a batch, then a sample
Sample: TypeAlias = _layouts(MAX_SAMPLE_DEPTH)  # type: ignore[valid-type]


class PredictRequest(BaseModel):
    """What the OpenAPI schema shows of a ``/predict`` body (the route validates it as :class:`PredictEnvelope`)."""

    data: list[Sample] = Field(
        description="samples: rows of numbers, or nested lists in the model's input shape (1×8×8 images...)",
        examples=[[[0.5, -1.25]]],
    )
    model_version: Version | None = Field(
        default=None, description="a version the model source lists; the current model when left out"
    )


class PredictEnvelope(BaseModel):
    """A ``/predict`` body with its samples unchecked: how they must nest depends on the model it names."""

    data: list[Any]
    model_version: Version | None = None


class PredictResponse(BaseModel):
    predictions: list[Any] = Field(description="the class of each sample (a list per sample for sequence outputs)")
    probabilities: list[Any] = Field(description="softmax over the model's last output axis, per sample")
    model_version: str
    inference_time_ms: float


class SeedInfo(BaseModel):
    state: str
    alpha: float


class ModelsResponse(BaseModel):
    model_name: str
    current_version: str
    available_versions: list[str]
    input_shape: list[int] = Field(description="one sample's shape, without the batch axis")
    output_shape: list[int] = Field(description="one sample's output shape; classes on the last axis")
    input_dim: int = Field(description="values per sample (the product of input_shape)")
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


class V2Tensor(BaseModel):
    name: StrictStr
    shape: list[StrictInt]
    datatype: StrictStr
    parameters: Parameters | None = None
    data: NestedNumbers = Field(description="row-major: flat, or nested as the shape says")


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
