"""The builtin child networks a seed can grow (registered in ``kaslite.builtins.blueprints``)."""

from typing import Any

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
