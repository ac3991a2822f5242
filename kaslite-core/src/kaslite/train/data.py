"""Turn a dataset plugin's arrays into seeded train/validation tensors."""

import attrs
import torch

from kaslite.config import DataConfig
from kaslite.errors import ConfigError, PluginError
from kaslite.plugins import get_dataset
from kaslite.resolve import dataset_params


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


def load_split(config: DataConfig, seed: int, device: torch.device) -> SplitData:
    """Generate the dataset for ``seed`` and split it with a permutation drawn from ``seed``."""
    spec = get_dataset(config.problem)
    arrays = spec.generate(dataset_params(config), seed)
    x = torch.as_tensor(arrays.X, dtype=torch.float32)
    y = torch.as_tensor(arrays.y, dtype=torch.int64)
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise PluginError(
            f"dataset {config.problem!r} returned X {tuple(x.shape)} and y {tuple(y.shape)}; expected (n, dim) and (n,)"
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
