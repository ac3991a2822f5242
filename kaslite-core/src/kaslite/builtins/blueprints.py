"""Builtin seed blueprints: ``mlp``, ``bottleneck``, ``residual`` and ``conv``."""

from typing import Any

import attrs

from kaslite.config.validation import integer_at_least
from kaslite.hookspecs import BlueprintSpec, hookimpl


@attrs.frozen
class MlpParams:
    hidden: int = attrs.field(
        default=128, validator=integer_at_least(1), metadata={"help": "width of the child's hidden layer"}
    )


@attrs.frozen
class BottleneckParams:
    hidden: int = attrs.field(
        default=0, validator=integer_at_least(0), metadata={"help": "width of the hidden layer; 0 means dim // 2"}
    )


@attrs.frozen
class ResidualParams:
    hidden: int = attrs.field(
        default=64, validator=integer_at_least(1), metadata={"help": "width of the branch's hidden layer"}
    )


def build_mlp(dim: int, hidden: int = 128) -> Any:
    from kaslite.nn.blueprints import mlp

    return mlp(dim, hidden)


def build_bottleneck(dim: int, hidden: int = 0) -> Any:
    from kaslite.nn.blueprints import bottleneck

    return bottleneck(dim, hidden)


def build_residual(dim: int, hidden: int = 64) -> Any:
    from kaslite.nn.blueprints import residual

    return residual(dim, hidden)


def build_conv(dim: int, hidden: int = 0, kernel_size: int = 3) -> Any:
    from kaslite.nn.blueprints import conv

    return conv(dim, hidden, kernel_size)


@hookimpl
def kaslite_seed_blueprints() -> list[BlueprintSpec]:
    return [
        BlueprintSpec("mlp", build_mlp, "dim → hidden → dim MLP with ReLU (Kaiming init)", {"hidden": 128}, MlpParams),
        BlueprintSpec(
            "bottleneck",
            build_bottleneck,
            "dim → narrower hidden → dim; hidden 0 means dim // 2",
            {"hidden": 0},
            BottleneckParams,
        ),
        BlueprintSpec(
            "residual",
            build_residual,
            "x + a zero-initialised dim → hidden → dim branch: an exact identity the task loss grows",
            {"hidden": 64},
            ResidualParams,
        ),
        BlueprintSpec(
            "conv",
            build_conv,
            "residual conv block for (B, C, H, W) maps: x + a zero-initialised conv → ReLU → conv branch",
            {"hidden": 0, "kernel_size": 3},
        ),
    ]
