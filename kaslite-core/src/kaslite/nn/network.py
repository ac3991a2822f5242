"""MorphogeneticNet: a trunk (an MLP, or a small CNN for images) whose hidden blocks each end in a
slot of sentinel seeds."""

from typing import Any, cast

import torch
from torch import nn

from kaslite.config import ModelConfig, SeedConfig
from kaslite.config.structure import structure, unstructure
from kaslite.errors import InvalidValue
from kaslite.nn.blueprints import build_child
from kaslite.nn.seed import SentinelSeed
from kaslite.nn.standardize import Standardize
from kaslite.nn.wide import WideSeed
from kaslite.nn.width import WidthSeed
from kaslite.plugins import get_blueprint


def _plus_width(z: torch.Tensor, seeds: list[WidthSeed], layer_input: torch.Tensor) -> torch.Tensor:
    """``z`` plus what each of ``seeds``' units in use write into it from ``layer_input``."""
    for seed in seeds:
        change = seed.delta(layer_input)
        if change is not None:
            z = z + change
    return z


class SeedSlot(nn.Module):
    """The seeds after one hidden block. Output: x plus the sum of their deltas.

    A sum, not a mean, so each seed's α and drift are what it really adds:
    an active seed contributes its whole ``child(x) − x``. The network calls
    slots' and seeds' ``forward`` directly (a module call costs as much as a
    dormant seed), so forward hooks on them do not fire.
    """

    def __init__(self, seeds: list[SentinelSeed]) -> None:
        super().__init__()
        self.seeds = nn.ModuleList(seeds)
        self._seed_list = list(seeds)  # typed, and faster to walk than the ModuleList

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self._seed_list) == 1:
            # forward() directly: a seed's module call would cost as much as the dormant seed itself.
            out: torch.Tensor = self._seed_list[0].forward(x)
            return out
        total: torch.Tensor | None = None
        for seed in self._seed_list:
            change = seed.delta(x)
            if change is not None:
                total = change if total is None else total + change
        if total is None:  # every seed is an identity: return x itself, bit for bit
            return x
        return x + total


TRUNKS = ("mlp", "cnn")
# Builtin blueprints for (B, dim) activations; the cnn trunk's seeds need one for feature maps (conv).
VECTOR_BLUEPRINTS = frozenset({"mlp", "bottleneck", "residual"})
# The CNN trunk pools its last feature maps to this many cells a side before the head.
CNN_POOLED = 2


def seed_ids(num_layers: int, seeds_per_layer: int, width_seeds: int, wide_seeds: int) -> list[str]:
    """The seed ids of a :class:`MorphogeneticNet`, in its order: ``seed{layer}_{j}`` (deep, after hidden
    block ``layer``), ``width{layer}_{j}`` (units for hidden layer ``layer``, 0 the input layer), ``wide_{j}``."""
    deep = [f"seed{layer}_{j}" for layer in range(1, num_layers + 1) for j in range(1, seeds_per_layer + 1)]
    width = [f"width{layer}_{j}" for layer in range(num_layers + 1) for j in range(1, width_seeds + 1)]
    return [*deep, *width, *(f"wide_{j}" for j in range(1, wide_seeds + 1))]


class MorphogeneticNet(nn.Module):
    """Input layer+ReLU, ``num_layers`` × (layer+ReLU, seed slot), then the head; beside it,
    ``wide_seeds`` wide seeds (:mod:`kaslite.nn.wide`) whose branches, once grown, add
    ``input → wide_units → classes`` to the head's output, and ``width_seeds`` width seeds
    per hidden layer (:mod:`kaslite.nn.width`), each ``width_units`` new units for that layer.

    ``trunk="mlp"``: Linear layers on ``(B, input_dim)``. ``trunk="cnn"``: 3×3
    convolutions on ``(B, input_dim, H, W)`` images (``input_dim`` channels),
    average-pooled to 2×2 cells before a Linear head; its seeds sit on feature
    maps (use the ``conv`` blueprint); wide seeds need the ``mlp`` trunk. The
    ReLU after each layer is applied in :meth:`forward`.

    The arguments' defaults build a bare network (the ``mlp`` blueprint, no wide
    or width seed), as a building block. The network ``kaslite run`` and
    ``kaslite.fit`` train by default is ``MorphogeneticNet.from_config(input_dim,
    num_classes)``: the defaults of :class:`~kaslite.config.ModelConfig`, their
    one source.
    """

    @classmethod
    def from_config(
        cls, input_dim: int, num_classes: int, model: ModelConfig | None = None, seeds: SeedConfig | None = None
    ) -> "MorphogeneticNet":
        """The network ``model`` describes (default: ``kaslite run``'s), its seeds set by ``seeds``."""
        m = model or ModelConfig()
        return cls(
            input_dim=input_dim,
            hidden_dim=m.hidden_dim,
            num_layers=m.num_layers,
            seeds_per_layer=m.seeds_per_layer,
            num_classes=num_classes,
            blueprint=m.blueprint,
            blueprint_options=m.blueprint_options,
            seed_config=seeds,
            trunk=m.trunk,
            wide_seeds=m.wide_seeds,
            wide_units=m.wide_units,
            width_seeds=m.width_seeds,
            width_units=m.width_units,
        )

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int,
        num_layers: int,
        seeds_per_layer: int,
        num_classes: int,
        blueprint: str = "mlp",
        blueprint_options: dict[str, Any] | None = None,
        seed_config: SeedConfig | None = None,
        trunk: str = "mlp",
        wide_seeds: int = 0,
        wide_units: int = 64,
        width_seeds: int = 0,
        width_units: int = 8,
    ) -> None:
        super().__init__()
        if trunk not in TRUNKS:
            raise InvalidValue("model.trunk", trunk, f"must be one of {', '.join(TRUNKS)}")
        self.input_dim = input_dim
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.seeds_per_layer = seeds_per_layer
        self.num_classes = num_classes
        self.blueprint = blueprint
        self.blueprint_options = dict(blueprint_options or {})
        self.seed_config = seed_config or SeedConfig()
        self.trunk = trunk
        self.wide_seeds = wide_seeds
        self.wide_units = wide_units
        self.width_seeds = width_seeds
        self.width_units = width_units
        for field, value in (("wide_seeds", wide_seeds), ("width_seeds", width_seeds)):
            if value and trunk != "mlp":
                kind = field.split("_")[0]
                raise InvalidValue(f"model.{field}", value, f"must be 0 with the {trunk} trunk ({kind} seeds need mlp)")
        for field, value in (("wide_units", wide_units), ("width_units", width_units)):
            if value < 1:
                raise InvalidValue(f"model.{field}", value, "must be an integer >= 1")
        spec = get_blueprint(blueprint)
        if (trunk == "cnn") != (blueprint == "conv") and blueprint in VECTOR_BLUEPRINTS | {"conv"}:
            fits = "conv" if trunk == "cnn" else ", ".join(sorted(VECTOR_BLUEPRINTS))
            raise InvalidValue("model.blueprint", blueprint, f"does not fit the {trunk} trunk; use {fits}")

        # Plain layers with the ReLU applied in forward(): fewer module calls per
        # step keeps dormant seeds close to a plain network's speed (bench/overhead.py).
        def layer(width_in: int) -> nn.Module:
            if trunk == "cnn":
                return nn.Conv2d(width_in, hidden_dim, 3, padding=1)
            return nn.Linear(width_in, hidden_dim)

        self.input_scale = Standardize(input_dim, 2 if trunk == "cnn" else 0)
        self.input_layer = layer(input_dim)
        self.blocks = nn.ModuleList(layer(hidden_dim) for _ in range(num_layers))
        self.slots = nn.ModuleList(
            SeedSlot(
                [
                    SentinelSeed(
                        hidden_dim,
                        build_child(spec, hidden_dim, self.blueprint_options),
                        self.seed_config,
                        seed_id=f"seed{layer}_{j}",
                        layer=layer,
                    )
                    for j in range(1, seeds_per_layer + 1)
                ]
            )
            for layer in range(1, num_layers + 1)
        )
        self._block_list: list[nn.Module] = list(self.blocks)
        self._slot_list: list[SeedSlot] = list(self.slots)  # type: ignore[arg-type]
        self.pool: nn.Module | None = None
        if trunk == "cnn":
            self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(CNN_POOLED), nn.Flatten())
        self.head = nn.Linear(hidden_dim * (CNN_POOLED**2 if trunk == "cnn" else 1), num_classes)
        self.wide = nn.ModuleList(
            # Their layer is the output's, after the last hidden block: where their branches add up.
            WideSeed(input_dim, wide_units, num_classes, self.seed_config, seed_id=f"wide_{j}", layer=num_layers + 1)
            for j in range(1, wide_seeds + 1)
        )
        self._wide_list: list[WideSeed] = list(self.wide)  # type: ignore[arg-type]
        # width[l]: the seeds that add units to hidden layer l (0: the input layer), reading that
        # layer's input and writing into the pre-activation of the layer after it (or the head).
        self.width = nn.ModuleList(
            nn.ModuleList(
                WidthSeed(
                    input_dim if layer == 0 else hidden_dim,
                    width_units,
                    num_classes if layer == num_layers else hidden_dim,
                    self.seed_config,
                    seed_id=f"width{layer}_{j}",
                    layer=layer,
                )
                for j in range(1, width_seeds + 1)
            )
            for layer in range(num_layers + 1)
        )
        self._width_groups = [cast(list[WidthSeed], list(cast(nn.ModuleList, group))) for group in self.width]
        self.metadata: dict[str, Any] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_scale.forward(x)  # no module call: it is an identity until fitted
        inputs = layer_input = x
        x = torch.relu(self.input_layer(x))
        for block, slot, width in zip(self._block_list, self._slot_list, self._width_groups, strict=False):
            z = block(x)
            if width:  # the previous layer's new units write into this layer's pre-activation
                z = _plus_width(z, width, layer_input)
            layer_input = x
            x = slot.forward(torch.relu(z))  # no module-call overhead for kaslite's own slots
        if self.pool is not None:
            x = self.pool(x)
        out: torch.Tensor = self.head(x)
        if self._width_groups[-1]:
            out = _plus_width(out, self._width_groups[-1], layer_input)
        for seed in self._wide_list:
            change = seed.delta(inputs)
            if change is not None:
                out = out + change
        return out

    @property
    def seeds(self) -> dict[str, SentinelSeed]:
        """Seed id → seed, in the order of :func:`seed_ids` (``seed1_1``, ..., ``width0_1``, ..., ``wide_1``)."""
        deep = [seed for slot in self._slot_list for seed in slot._seed_list]
        width = [seed for group in self._width_groups for seed in group]
        return {seed.seed_id: seed for seed in [*deep, *width, *self._wide_list]}

    def hidden_trunk(self) -> list[nn.Module]:
        """The trunk layers phase 2 freezes: the input layer and the hidden blocks."""
        return [self.input_layer, *self.blocks]

    def trunk_parameters(self) -> list[nn.Parameter]:
        """Every parameter except the seeds' children."""
        return [p for module in (*self.hidden_trunk(), self.head) for p in module.parameters()]

    def architecture(self) -> dict[str, Any]:
        """Constructor arguments as plain data: enough to rebuild this network."""
        return {
            "input_dim": self.input_dim,
            "hidden_dim": self.hidden_dim,
            "num_layers": self.num_layers,
            "seeds_per_layer": self.seeds_per_layer,
            "num_classes": self.num_classes,
            "blueprint": self.blueprint,
            "blueprint_options": dict(self.blueprint_options),
            "seed_config": unstructure(self.seed_config),
            "trunk": self.trunk,
            "wide_seeds": self.wide_seeds,
            "wide_units": self.wide_units,
            "width_seeds": self.width_seeds,
            "width_units": self.width_units,
        }

    @classmethod
    def from_architecture(cls, architecture: dict[str, Any]) -> "MorphogeneticNet":
        """Rebuild an (untrained) network from :meth:`architecture`'s output."""
        args = dict(architecture)
        args["seed_config"] = structure(args.get("seed_config"), SeedConfig, path="seed_config")
        return cls(**args)
