"""MorphogeneticNet: a trunk MLP whose hidden blocks each end in a slot of sentinel seeds."""

from typing import Any

import torch
from torch import nn

from kaslite.config import SeedConfig
from kaslite.nn.blueprints import build_child
from kaslite.nn.seed import SeedState, SentinelSeed
from kaslite.plugins import get_blueprint
from kaslite.structure import structure, unstructure


class SeedSlot(nn.Module):
    """The seeds after one hidden block. Output: x plus the sum of their deltas.

    A sum, not a mean, so each seed's α and drift are what it really adds:
    an active seed contributes its whole ``child(x) − x``.
    """

    def __init__(self, seeds: list[SentinelSeed]) -> None:
        super().__init__()
        self.seeds = nn.ModuleList(seeds)
        self._seed_list = list(seeds)  # typed, and faster to walk than the ModuleList

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self._seed_list) == 1:
            out: torch.Tensor = self._seed_list[0](x)
            return out
        total: torch.Tensor | None = None
        for seed in self._seed_list:
            change = seed.delta(x)
            if change is not None:
                total = change if total is None else total + change
        if total is None:  # every seed is an identity: return x itself, bit for bit
            return x
        return x + total


class MorphogeneticNet(nn.Module):
    """Input Linear+ReLU, ``num_layers`` × (Linear+ReLU, seed slot), then the head.

    ``input_layer`` and ``blocks[i]`` are the Linear layers; the ReLU after each
    is applied in :meth:`forward`.
    """

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
    ) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.seeds_per_layer = seeds_per_layer
        self.num_classes = num_classes
        self.blueprint = blueprint
        self.blueprint_options = dict(blueprint_options or {})
        self.seed_config = seed_config or SeedConfig()
        spec = get_blueprint(blueprint)

        # Plain Linear layers with the ReLU applied in forward(): fewer module calls
        # per step keeps dormant seeds close to a plain MLP's speed (bench/overhead.py).
        self.input_layer = nn.Linear(input_dim, hidden_dim)
        self.blocks = nn.ModuleList(nn.Linear(hidden_dim, hidden_dim) for _ in range(num_layers))
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
        self._block_list: list[nn.Linear] = list(self.blocks)  # type: ignore[arg-type]
        self._slot_list: list[SeedSlot] = list(self.slots)  # type: ignore[arg-type]
        self.head = nn.Linear(hidden_dim, num_classes)
        self.metadata: dict[str, Any] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.input_layer(x))
        for block, slot in zip(self._block_list, self._slot_list, strict=True):
            x = slot(torch.relu(block(x)))
        out: torch.Tensor = self.head(x)
        return out

    @property
    def seeds(self) -> dict[str, SentinelSeed]:
        """Seed id → seed, in network order (``seed1_1``, ``seed1_2``, ``seed2_1``, ...)."""
        return {seed.seed_id: seed for slot in self._slot_list for seed in slot._seed_list}

    def hidden_trunk(self) -> list[nn.Module]:
        """The trunk layers phase 2 freezes: the input layer and the hidden blocks."""
        return [self.input_layer, *self.blocks]

    def trunk_parameters(self) -> list[nn.Parameter]:
        """Every parameter except the seeds' children."""
        return [p for module in (*self.hidden_trunk(), self.head) for p in module.parameters()]

    def param_counts(self) -> tuple[int, int]:
        """(trunk parameters, trunk plus the children of grown, un-culled seeds)."""
        trunk = sum(p.numel() for p in self.trunk_parameters())
        grown = sum(
            p.numel()
            for seed in self.seeds.values()
            if seed.state in (SeedState.TRAINING, SeedState.BLENDING, SeedState.ACTIVE)
            for p in seed.child.parameters()
        )
        return trunk, trunk + grown

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
        }

    @classmethod
    def from_architecture(cls, architecture: dict[str, Any]) -> "MorphogeneticNet":
        """Rebuild an (untrained) network from :meth:`architecture`'s output."""
        args = dict(architecture)
        args["seed_config"] = structure(args.get("seed_config"), SeedConfig, path="seed_config")
        return cls(**args)
