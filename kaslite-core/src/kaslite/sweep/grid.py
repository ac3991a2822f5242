"""Grid points and trial names: deterministic, so every worker numbers the same point the same way."""

import hashlib
import itertools
import json
from collections.abc import Mapping
from typing import Any

from kaslite.sweep.spec import Choice, Scalar, SweepSpec


def grid_points(spec: SweepSpec) -> list[dict[str, Scalar]]:
    """The Cartesian product of every swept parameter's values, the first parameter varying slowest."""
    names = list(spec.parameters)
    values = []
    for name in names:
        parameter = spec.parameters[name]
        assert isinstance(parameter, Choice), "a grid sweeps value lists only (spec.parse_spec checks it)"
        values.append(parameter.values)
    return [dict(zip(names, combination, strict=True)) for combination in itertools.product(*values)]


def slot_count(spec: SweepSpec) -> int:
    """How many trials the sweep runs: one per grid point, or ``trials`` for Bayesian search."""
    return len(grid_points(spec)) if spec.method == "grid" else spec.trials


def params_hash(params: Mapping[str, Any]) -> str:
    """Eight hex digits that identify a combination of parameter values."""
    text = json.dumps(dict(params), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def run_slug(slot: int, params: Mapping[str, Any]) -> str:
    """``run_NNN_<hash8>``: the trial's number (from 1) and its parameters' hash."""
    return f"run_{slot + 1:03d}_{params_hash(params)}"
