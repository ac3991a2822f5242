"""Experiment configuration: attrs classes structured from YAML or flags by one converter.

Precedence: class defaults < ``--config FILE.yaml`` < command-line flags. Every
value is checked when the config is built, before any work starts, and a bad
one is reported with its full path (``seeds.blend_steps``), the value and what
is allowed.
"""

from pathlib import Path
from typing import Any

import attrs

from kaslite.config.structure import structure, unstructure
from kaslite.config.validation import between, integer_at_least, non_empty, non_negative, one_of, positive
from kaslite.errors import ConfigError, message_line

DEVICES = ("cpu", "cuda", "mps", "auto")


@attrs.frozen
class DataConfig:
    """Which dataset, its parameters, and how it is split."""

    problem: str = attrs.field(default="spirals", validator=non_empty)
    # Validated against the dataset's own parameter class once the dataset is known.
    params: dict[str, Any] = attrs.field(factory=dict)
    train_frac: float = attrs.field(default=0.8, validator=between(0.0, 1.0, low_open=True, high_open=True))
    standardize: bool = attrs.field(
        default=True,
        metadata={
            "help": (
                "kaslite's own network standardises each input feature with the training split's mean and "
                "std (kept in the model, so it serves raw inputs); data given as loaders are not scanned"
            )
        },
    )


def mlp_only_seeds(count: int, help_text: str) -> Any:
    """A number of seeds that only the mlp trunk has: ``count`` by default there, 0 with cnn."""
    return attrs.field(
        default=attrs.Factory(lambda self: count if self.trunk == "mlp" else 0, takes_self=True),
        validator=integer_at_least(0),
        metadata={"help": f"{help_text} (mlp trunk only) [default: {count} with the mlp trunk, 0 with cnn]"},
    )


@attrs.frozen
class ModelConfig:
    """The trunk network and the blueprint its seeds grow."""

    # 14, with two width seeds per layer: chosen on seeds 100-109 of the default problem, where the trunk
    # alone ends 13 points below the grown network (bench/default_seeds.py reports seeds 0-19).
    hidden_dim: int = attrs.field(default=14, validator=integer_at_least(1))
    num_layers: int = attrs.field(default=2, validator=integer_at_least(1))
    seeds_per_layer: int = attrs.field(default=1, validator=integer_at_least(0))
    # residual: a zero-initialised branch, exact at germination, that the task loss grows. (mlp's
    # reconstructed child replaces the activations it was trained on, which on hard problems can
    # silence the layers after it; bench/growth.py measured both.)
    blueprint: str = attrs.field(default="residual", validator=non_empty)
    # Passed to the blueprint's build(); unset options keep the blueprint's defaults.
    blueprint_options: dict[str, Any] = attrs.field(factory=dict)
    # "mlp" for feature vectors; "cnn" for (channels, H, W) images, with the conv blueprint.
    trunk: str = attrs.field(default="mlp", validator=one_of(("mlp", "cnn")))
    # One wide seed beside the deep ones on the mlp trunk: chosen on bench/growth.py's selection
    # seeds, where it rescued the runs whose trunk stalled early and cost nothing elsewhere.
    wide_seeds: int = mlp_only_seeds(
        1, "seeds that grow width: each a hidden layer from the input straight to the output"
    )
    wide_units: int = attrs.field(
        default=64, validator=integer_at_least(1), metadata={"help": "hidden units of each wide seed"}
    )
    width_seeds: int = mlp_only_seeds(2, "seeds per hidden layer that each add width_units units to it")
    width_units: int = attrs.field(
        default=8, validator=integer_at_least(1), metadata={"help": "new units each width seed adds to its layer"}
    )


def check_growable(model: ModelConfig) -> None:
    """Refuse, before any work, a kaslite network with no seed at all: nothing could grow, and the growth
    driver needs one. (A user's own module is checked by ``kaslite.Grower`` instead.)"""
    if model.seeds_per_layer + model.width_seeds + model.wide_seeds == 0:
        raise ConfigError(
            "invalid model: seeds_per_layer, width_seeds and wide_seeds are all 0, so the network has no seed "
            "to grow; keep one (with --controller never it stays dormant and the trunk trains as a plain network)"
        )


@attrs.frozen
class SeedConfig:
    """How a germinated seed shadow-trains, blends in and is watched."""

    blend_steps: int = attrs.field(default=100, validator=integer_at_least(1))
    shadow_lr: float = attrs.field(default=1e-3, validator=positive)
    progress_thresh: float = attrs.field(default=0.6, validator=between(0.0, 1.0))
    drift_warn: float = attrs.field(
        default=0.5,
        validator=non_negative,
        metadata={
            "help": (
                "warn when a blending or active seed's drift, its share of the network's output, goes above "
                "this while val loss is 10% or more above where it was when the seed began blending"
            )
        },
    )
    buffer_size: int = attrs.field(
        default=2048, validator=integer_at_least(1), metadata={"help": "samples a shadow-training seed keeps"}
    )
    # 64 MiB: 2,048 samples of (64, 32, 32) float maps would take 512 MiB a seed.
    buffer_mb: float = attrs.field(
        default=64.0,
        validator=positive,
        metadata={"help": "the most memory a seed's samples take, in MiB: large samples are kept fewer"},
    )
    health_momentum: float = attrs.field(default=0.1, validator=between(0.0, 1.0, low_open=True))
    # Dormant seeds update their health estimate on one training batch in this many.
    health_every: int = attrs.field(default=4, validator=integer_at_least(1))
    fan_in: str = attrs.field(
        default="gradmax",
        validator=one_of(("gradmax", "kaiming")),
        metadata={
            "help": (
                "how a germinated seed's new units that start with zero fan-out (residual blocks, width and "
                "wide seeds) get their fan-in: gradmax (from the loss gradient, GradMax) or kaiming (random)"
            )
        },
    )


@attrs.frozen
class ControllerConfig:
    """The growth policy and its knobs; ``options`` carries a plugin policy's own."""

    name: str = attrs.field(default="kasmina", validator=non_empty)
    # 3, not 5: plateau triggers grow late, and the grown network needs the epochs after growth
    # (bench/growth.py; chosen on seeds 10-19 of its tasks).
    patience: int = attrs.field(default=3, validator=integer_at_least(1))
    delta: float = attrs.field(default=1e-4, validator=non_negative)
    acc_threshold: float = attrs.field(default=0.99, validator=between(0.0, 1.0))
    period: int = attrs.field(default=10, validator=integer_at_least(1))
    options: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class TrainConfig:
    """Optimisation, phases, randomness and device."""

    warm_up_epochs: int = attrs.field(default=20, validator=integer_at_least(0))
    adaptation_epochs: int = attrs.field(default=300, validator=integer_at_least(0))
    batch_size: int = attrs.field(default=32, validator=integer_at_least(1))
    lr: float = attrs.field(default=3e-3, validator=positive)
    growth_lr_scale: float = attrs.field(
        default=1.0,
        validator=positive,
        metadata={"help": "the learning rate of what seeds grow, as a multiple of train.lr"},
    )
    # 1.0: a grown network's loss spiked after some growths (seed 19: val loss 0.29 -> 1.97 three epochs
    # after a width seed activated) and did not recover; clipped, the default run's seeds 100-109 end at
    # 0.993 mean, 0.970 lowest, against 0.984 and 0.960 unclipped.
    grad_clip: float = attrs.field(
        default=1.0,
        validator=non_negative,
        metadata={"help": "clip the gradient's global norm to this before each optimizer step; 0: no clipping"},
    )
    # cosine: the grown network's end-of-run swings at a constant lr decided runs (on the default problem,
    # seeds 100-109: min 0.965 against 0.885 with the trunk's inputs standardised as now).
    lr_schedule: str = attrs.field(
        default="cosine",
        validator=one_of(("constant", "cosine")),
        metadata={"help": "the learning rate over the run: constant, or cosine (decays to 0 by the last epoch)"},
    )
    # Off by default: a grown network whose trunk keeps learning beats one whose trunk is frozen
    # (spirals, seeds 10-14: 0.999 against 0.881 mean val acc; bench/growth.py).
    freeze_trunk: bool = False
    seed: int = attrs.field(default=0, validator=integer_at_least(0))
    device: str = attrs.field(default="cpu", validator=one_of(DEVICES))
    probe_size: int = attrs.field(default=256, validator=integer_at_least(1))
    threads: int = attrs.field(
        default=0,
        validator=integer_at_least(0),
        metadata={"help": "torch threads while training; 0: one for a small default MLP, else all torch would use"},
    )


@attrs.frozen
class ExperimentConfig:
    """Everything that defines a run; ``config.yaml`` in a run dir reproduces it."""

    data: DataConfig = attrs.field(factory=DataConfig)
    model: ModelConfig = attrs.field(factory=ModelConfig)
    seeds: SeedConfig = attrs.field(factory=SeedConfig)
    controller: ControllerConfig = attrs.field(factory=ControllerConfig)
    train: TrainConfig = attrs.field(factory=TrainConfig)

    def __attrs_post_init__(self) -> None:
        if self.train.warm_up_epochs + self.train.adaptation_epochs == 0:
            raise ConfigError("invalid train: warm_up_epochs + adaptation_epochs must be > 0")


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "seeds": SeedConfig,
    "controller": ControllerConfig,
    "train": TrainConfig,
}


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` laid over it, nested mappings merged key by key."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML config file as a mapping, with a clear error when it is not one."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {message_line(exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of sections, got {type(data).__name__}")
    return data


def build_config(*layers: dict[str, Any]) -> ExperimentConfig:
    """Structure an :class:`ExperimentConfig` from plain layers, later ones winning."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = deep_merge(merged, layer)
    return structure(merged, ExperimentConfig)


def config_to_dict(config: ExperimentConfig) -> dict[str, Any]:
    """Plain nested data for YAML, JSON and tracker params."""
    data: dict[str, Any] = unstructure(config)
    return data


def save_yaml(config: ExperimentConfig, path: Path) -> None:
    """Write ``config`` so that ``--config path`` reproduces the run."""
    import yaml

    Path(path).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))


def flatten(config: ExperimentConfig) -> dict[str, Any]:
    """``{"seeds.blend_steps": 30, ...}``: one entry per leaf, for trackers' params."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        else:
            out[prefix] = value

    walk("", config_to_dict(config))
    return out
