"""Training data: a dataset plugin's arrays as seeded train/validation tensors, or the user's own
tensors or DataLoaders, behind one small interface the trainer iterates."""

from collections.abc import Iterable, Iterator
from typing import Any

import attrs
import torch

from kaslite.config import DataConfig
from kaslite.config.resolve import dataset_params
from kaslite.errors import ConfigError, PluginError
from kaslite.plugins import get_dataset


@attrs.frozen
class SplitData:
    """Train and validation tensors of one dataset."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    num_classes: int

    @property
    def input_dim(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def load_split(config: DataConfig, seed: int, device: torch.device) -> SplitData:
    """Generate the dataset for ``seed`` and split it with a permutation drawn from ``seed``."""
    spec = get_dataset(config.problem)
    arrays = spec.generate(dataset_params(config), seed)
    x = torch.as_tensor(arrays.X, dtype=torch.float32)
    y = torch.as_tensor(arrays.y, dtype=torch.int64)
    if x.ndim < 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise PluginError(
            f"dataset {config.problem!r} returned X {tuple(x.shape)} and y {tuple(y.shape)}; "
            "expected (n, dim) or (n, channels, H, W) and (n,)"
        )
    n = x.shape[0]
    n_train = round(config.train_frac * n)
    if n_train < 1 or n_train >= n:
        raise ConfigError(
            f"invalid data.train_frac = {config.train_frac}: leaves {n_train} of {n} samples for training "
            "and needs at least one on each side"
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    train, val = order[:n_train], order[n_train:]
    return SplitData(
        x[train].to(device), y[train].to(device), x[val].to(device), y[val].to(device), int(arrays.num_classes)
    )


Loader = Iterable[tuple[torch.Tensor, torch.Tensor]]
# What a trainer accepts as data besides a dataset name in its config.
DataSource = SplitData | tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | tuple[Loader, Loader]


class Batches:
    """What the trainer iterates: training batches, validation batches, a probe batch."""

    sample_shape: tuple[int, ...]  # one input's shape: (features,) or (channels, height, width), ...

    @property
    def input_dim(self) -> int:
        """Features (or channels) per input: what a default network's first layer takes."""
        return self.sample_shape[0] if self.sample_shape else 1

    @property
    def num_classes(self) -> int:
        """How many classes the labels name (for building a default network)."""
        raise NotImplementedError

    def train(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        raise NotImplementedError

    def val(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        raise NotImplementedError

    def probe(self, size: int) -> torch.Tensor:
        """Up to ``size`` validation inputs, to measure how far a transition moves the output."""
        raise NotImplementedError

    def score_batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Up to ``size`` training samples, for expansion scores and GradMax's fan-in."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (the shuffling generator, where there is one)."""


class TensorBatches(Batches):
    """Tensors in memory: shuffled by a generator seeded from ``seed``; validation in one batch."""

    def __init__(self, data: SplitData, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> None:
        self.data = data
        self.batch_size = batch_size
        self.sample_shape = tuple(data.x_train.shape[1:])
        self.shuffle = torch.Generator().manual_seed(seed + 1)
        # Under torchrun every rank draws the same order and takes its share of each batch (as
        # DistributedSampler would): the batches, and so the averaged gradients, are a single process's.
        self.rank, self.world = rank, world

    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    def train(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        x, y = self.data.x_train, self.data.y_train
        order = torch.randperm(x.shape[0], generator=self.shuffle).to(x.device)
        for start in range(0, x.shape[0], self.batch_size):
            index = order[start : start + self.batch_size][self.rank :: self.world]
            yield x[index], y[index]

    def val(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        yield self.data.x_val, self.data.y_val

    def probe(self, size: int) -> torch.Tensor:
        return self.data.x_val[:size]

    def score_batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data.x_train[:size], self.data.y_train[:size]

    def state_dict(self) -> dict[str, Any]:
        return {"shuffle_rng": self.shuffle.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.shuffle.set_state(state["shuffle_rng"])


class LoaderBatches(Batches):
    """The user's own iterables of ``(x, y)`` batches (DataLoaders), moved to ``device``."""

    def __init__(self, train: Loader, val: Loader, device: torch.device) -> None:
        self.train_loader, self.val_loader, self.device = train, val, device
        first = next(iter(val), None)
        if first is None:
            raise ConfigError("the validation loader yields no batches; give the run some validation samples")
        self.sample_shape = tuple(first[0].shape[1:])
        self._probe = first[0]
        self._num_classes: int | None = None
        self._score_batch: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def num_classes(self) -> int:
        """Largest label + 1 over the training batches (read once, only if a default network needs it)."""
        if self._num_classes is None:
            self._num_classes = 1 + max(int(y.max()) for _, y in self.train_loader)
        return self._num_classes

    def _moved(self, loader: Loader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in loader:
            yield x.to(self.device), y.to(self.device)

    def train(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self._moved(self.train_loader)

    def val(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self._moved(self.val_loader)

    def probe(self, size: int) -> torch.Tensor:
        return self._probe[:size].to(self.device)

    def score_batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first training batch, read once (the loader's own shuffling decides which)."""
        if self._score_batch is None:
            first = next(iter(self.train_loader), None)
            if first is None:
                raise ConfigError("the training loader yields no batches")
            self._score_batch = (first[0][:size].to(self.device), first[1][:size].to(self.device))
        return self._score_batch


def make_batches(source: DataSource | None, config: Any, device: torch.device) -> Batches:
    """Batches for a run: ``source`` if given, else the dataset ``config.data`` names."""
    train = config.train
    if source is None:
        from kaslite.train import distributed

        split = load_split(config.data, train.seed, device)
        return TensorBatches(split, train.batch_size, train.seed, distributed.rank(), distributed.world_size())
    if isinstance(source, SplitData):
        moved = attrs.evolve(
            source,
            x_train=source.x_train.to(device),
            y_train=source.y_train.to(device),
            x_val=source.x_val.to(device),
            y_val=source.y_val.to(device),
        )
        return TensorBatches(moved, train.batch_size, train.seed)
    if isinstance(source, tuple) and len(source) == 4 and all(isinstance(t, torch.Tensor) for t in source):
        x_train, y_train, x_val, y_val = (t.to(device) for t in source)
        if y_train.is_floating_point():
            raise ConfigError("y_train holds floats; class labels must be integers (torch.long)")
        num_classes = 1 + int(max(y_train.max(), y_val.max()))
        return TensorBatches(SplitData(x_train, y_train, x_val, y_val, num_classes), train.batch_size, train.seed)
    if isinstance(source, tuple) and len(source) == 2 and not any(isinstance(t, torch.Tensor) for t in source):
        return LoaderBatches(source[0], source[1], device)
    raise ConfigError(
        f"data must be a dataset name, SplitData, (x_train, y_train, x_val, y_val) tensors or "
        f"(train_loader, val_loader); got {_describe(source)}"
    )


def _describe(source: object) -> str:
    if isinstance(source, tuple):
        return f"a tuple of {len(source)}: " + ", ".join(type(item).__name__ for item in source)
    return type(source).__name__
