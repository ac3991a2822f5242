"""Input standardisation inside the network, so a trained model takes raw inputs."""

from typing import Any

import torch
from torch import nn

from kaslite.nn.seed import feature_axis, per_feature


class Standardize(nn.Module):
    """``(x − mean) / std`` per input feature (per channel for images), fitted on the training inputs.

    An identity until :meth:`fit` is called. Raw features far from unit scale
    (spiral coordinates reach ±25) leave a ReLU network's biases, which start
    at 0 and move by about the learning rate per step, too small to place its
    units' boundaries: runs stall or collapse. The statistics are buffers, so a
    model file and ``kaslite.fuse`` take raw inputs as the training data had them.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, features: int, spatial_dims: int = 0) -> None:
        super().__init__()
        shape = (features, *([1] * spatial_dims))
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("std", torch.ones(shape))
        self._identity = True

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        """Take the mean and standard deviation of each feature of the training inputs ``x``."""
        rows = per_feature(x.float(), feature_axis(x.ndim))
        self.mean.copy_(rows.mean(dim=0).reshape(self.mean.shape))
        std = rows.std(dim=0)
        # A feature constant in training (a blank pixel) is left as it is, not divided by ~0.
        self.std.copy_(torch.where(std > 1e-6, std, 1.0).reshape(self.std.shape))
        self._identity = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._identity:
            return x
        return (x - self.mean) / self.std

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing: list[str],
        unexpected: list[str],
        errors: list[str],
    ) -> None:
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)
        # Files written before inputs were standardised hold no statistics: the identity, as they trained.
        for name in ("mean", "std"):
            if prefix + name in missing:
                missing.remove(prefix + name)
        self._identity = bool((self.mean == 0).all() and (self.std == 1).all())
