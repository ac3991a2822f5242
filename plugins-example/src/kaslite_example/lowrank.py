"""The ``lowrank`` blueprint: a seed that grows a rank-r linear map, dim → r → dim."""

from typing import Any

import attrs

from kaslite.config.validation import integer_at_least


@attrs.frozen
class LowRankParams:
    rank: int = attrs.field(default=4, validator=integer_at_least(1), metadata={"help": "rank of the grown map"})


def build_lowrank(dim: int, rank: int = 4) -> Any:
    """Two Linear layers without a nonlinearity between them: at most rank ``rank``."""
    from torch import nn  # torch only when a network is built

    return nn.Sequential(nn.Linear(dim, rank), nn.Linear(rank, dim))
