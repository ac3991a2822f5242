"""The builtin child networks a seed can grow (registered in ``kaslite.builtins.blueprints``)."""

from typing import Any

import torch
from torch import nn

from kaslite.errors import ConfigError, InvalidValue
from kaslite.hookspecs import BlueprintSpec


def _kaiming(module: nn.Module) -> nn.Module:
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)
    return module


def mlp(dim: int, hidden: int = 128) -> nn.Module:
    """dim → hidden → dim with a ReLU between, Kaiming-initialised."""
    if hidden < 1:
        raise InvalidValue("model.blueprint_options.hidden", hidden, "must be an integer >= 1")
    return _kaiming(nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim)))


def bottleneck(dim: int, hidden: int = 0) -> nn.Module:
    """dim → a narrower hidden layer → dim; ``hidden=0`` picks ``max(1, dim // 2)``."""
    width = hidden or max(1, dim // 2)
    return mlp(dim, width)


def relu_branch(x: torch.Tensor, inner: nn.Linear, outer: nn.Linear) -> torch.Tensor:
    """``outer(relu(inner(x)))`` through the layers' own forward, not their module calls: a grown network
    runs a branch per seed, and a module call costs about as much as a small layer's matmul."""
    hidden = torch.relu(nn.functional.linear(x, inner.weight, inner.bias))
    return nn.functional.linear(hidden, outer.weight, outer.bias)


def _zero(layer: nn.Module) -> bool:
    """Whether every parameter of ``layer`` is zero."""
    return not any(bool(param.any()) for param in layer.parameters())


class Residual(nn.Module):
    """``x + W₂·relu(W₁·x)`` with ``W₂ = 0`` when built: an exact identity that the task loss grows.

    Shadow training has nothing to learn (the child already reproduces its
    input), so such a seed blends in one epoch after germination; what it
    adds comes from the task loss, as in zero-initialised residual branches.
    """

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.inner = nn.Linear(dim, hidden)
        self.outer = nn.Linear(hidden, dim)
        _kaiming(self.inner)
        nn.init.zeros_(self.outer.weight)
        nn.init.zeros_(self.outer.bias)

    def is_identity(self) -> bool:
        """Whether the branch is still zero: then the block reproduces its input exactly, and a seed
        growing it has nothing to learn in the shadow (``SentinelSeed.shadow_trains``)."""
        return _zero(self.outer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + relu_branch(x, self.inner, self.outer)


def residual(dim: int, hidden: int = 64) -> nn.Module:
    """A zero-initialised residual MLP branch, dim → hidden → dim."""
    if hidden < 1:
        raise InvalidValue("model.blueprint_options.hidden", hidden, "must be an integer >= 1")
    return Residual(dim, hidden)


class ConvResidual(nn.Module):
    """``x + conv₂(relu(conv₁(x)))`` on ``(B, C, H, W)`` maps, same padding, ``conv₂ = 0`` when built."""

    def __init__(self, channels: int, hidden: int, kernel_size: int) -> None:
        super().__init__()
        padding = kernel_size // 2
        self.inner = nn.Conv2d(channels, hidden, kernel_size, padding=padding)
        self.outer = nn.Conv2d(hidden, channels, kernel_size, padding=padding)
        nn.init.kaiming_normal_(self.inner.weight, nonlinearity="relu")
        nn.init.zeros_(self.inner.bias)  # type: ignore[arg-type]
        nn.init.zeros_(self.outer.weight)
        nn.init.zeros_(self.outer.bias)  # type: ignore[arg-type]

    def is_identity(self) -> bool:
        """Whether the branch is still zero: then the block reproduces its input exactly, and a seed
        growing it has nothing to learn in the shadow (``SentinelSeed.shadow_trains``)."""
        return _zero(self.outer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.outer(torch.relu(self.inner(x)))
        return out


def conv(channels: int, hidden: int = 0, kernel_size: int = 3) -> nn.Module:
    """A residual convolutional block for feature maps; ``hidden=0`` keeps ``channels`` channels inside."""
    if hidden < 0:
        raise InvalidValue(
            "model.blueprint_options.hidden", hidden, "must be an integer >= 0 (0: as many as the input)"
        )
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise InvalidValue("model.blueprint_options.kernel_size", kernel_size, "must be an odd integer >= 1")
    return ConvResidual(channels, hidden or channels, kernel_size)


def check_options(spec: BlueprintSpec, options: dict[str, Any]) -> None:
    """Refuse option names the blueprint does not declare, and values its params_type rejects."""
    if spec.params_type is not None:
        from kaslite.plugins import BLUEPRINT, get_plugin_manager

        get_plugin_manager().validate_params(BLUEPRINT, spec.name, options)
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        allowed = ", ".join(sorted(spec.options)) or "none"
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for blueprint {spec.name!r} "
            f"in model.blueprint_options; allowed: {allowed}"
        )


def build_child(spec: BlueprintSpec, dim: int, options: dict[str, Any]) -> nn.Module:
    """``spec.build(dim, **options)`` after checking the option names."""
    check_options(spec, options)
    child = spec.build(dim, **options)
    if not isinstance(child, nn.Module):
        raise ConfigError(f"blueprint {spec.name!r} built {type(child).__name__}, not a torch.nn.Module")
    return child
