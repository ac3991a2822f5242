"""Builtin seed blueprints: ``mlp``, ``bottleneck``, ``residual`` and ``conv``."""

from typing import Any

from kaslite.hookspecs import BlueprintSpec, hookimpl


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
        BlueprintSpec("mlp", build_mlp, "dim → hidden → dim MLP with ReLU (Kaiming init)", {"hidden": 128}),
        BlueprintSpec(
            "bottleneck", build_bottleneck, "dim → narrower hidden → dim; hidden 0 means dim // 2", {"hidden": 0}
        ),
        BlueprintSpec(
            "residual",
            build_residual,
            "x + a zero-initialised dim → hidden → dim branch: an exact identity the task loss grows",
            {"hidden": 64},
        ),
        BlueprintSpec(
            "conv",
            build_conv,
            "residual conv block for (B, C, H, W) maps: x + a zero-initialised conv → ReLU → conv branch",
            {"hidden": 0, "kernel_size": 3},
        ),
    ]
