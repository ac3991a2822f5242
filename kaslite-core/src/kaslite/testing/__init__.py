"""Helpers for testing kaslite plugins, kaslite's own tests included.

``plugin_manager(*plugins)`` gives a manager with only the given plugin
objects registered; ``fake_distribution(...)`` writes an installed-looking
distribution (a ``.dist-info`` with entry points, plus its modules) into a
folder, so putting that folder on ``sys.path`` (or ``PYTHONPATH`` for a
subprocess) exercises real entry-point loading; ``invoke(*args)`` runs the
``kaslite`` command line in this process. ``observation`` and ``seed_view``
build what a growth policy's ``decide`` receives; ``scripted_run`` and
``drive_tracker`` put a tracker through a whole run's events without training.
"""

from collections.abc import Mapping
from pathlib import Path
from textwrap import dedent
from typing import TYPE_CHECKING

import attrs

from kaslite.config.validation import integer_at_least, non_negative
from kaslite.hookspecs import DataArrays, DatasetSpec, hookimpl
from kaslite.plugins import PluginManager
from kaslite.testing.policies import observation, seed_view
from kaslite.testing.trackers import ScriptedRun, drive_tracker, scripted_run

if TYPE_CHECKING:
    from click.testing import Result

__all__ = [
    "ScriptedRun",
    "TinyDatasets",
    "drive_tracker",
    "fake_distribution",
    "invoke",
    "observation",
    "plugin_manager",
    "scripted_run",
    "seed_view",
    "tiny_datasets",
]


def plugin_manager(*plugins: object, builtins: bool = False) -> PluginManager:
    """A fresh manager holding ``plugins`` (and kaslite's builtins if asked)."""
    manager = PluginManager()
    if builtins:
        manager.load_builtins()
    for index, plugin in enumerate(plugins):
        name = getattr(plugin, "__name__", None) or f"{type(plugin).__name__}-{index}"
        manager.register(plugin, name=name)
    manager.check_pending()
    return manager


def fake_distribution(
    root: Path,
    name: str,
    version: str = "1.0",
    entry_points: Mapping[str, str] | None = None,
    modules: Mapping[str, str] | None = None,
    group: str = "kaslite",
) -> Path:
    """Write distribution ``name`` with ``entry_points`` (ep name -> "module[:attr]") under ``root``.

    ``modules`` maps a module name to its source (dedented). Returns ``root``.
    """
    root.mkdir(parents=True, exist_ok=True)
    dist_info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = [f"[{group}]"] + [f"{ep} = {target}" for ep, target in (entry_points or {}).items()]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for module, source in (modules or {}).items():
        (root / f"{module}.py").write_text(dedent(source))
    return root


def invoke(*args: str, env: Mapping[str, str] | None = None) -> "Result":
    """Run ``kaslite ARGS`` in this process (click's ``CliRunner``); the result has exit_code, stdout, stderr.

    The process-wide plugin manager is used as it stands, so plugins registered
    in the test (``kaslite_register``) are seen. Exceptions other than the
    command's own exit propagate, so a bug shows its traceback.
    """
    from click.testing import CliRunner

    from kaslite.cli.main import cli

    return CliRunner(env=dict(env or {})).invoke(cli, list(args), prog_name="kaslite", catch_exceptions=False)


@attrs.frozen
class XorParams:
    """Parameters of the tiny ``xor`` test dataset."""

    n_samples: int = attrs.field(default=200, validator=integer_at_least(1))
    noise: float = attrs.field(default=0.3, validator=non_negative)


def generate_xor(params: XorParams, seed: int) -> DataArrays:
    """Four Gaussian blobs at (±1, ±1); the label is whether the signs differ."""
    import numpy as np

    rng = np.random.default_rng(seed)
    corners = rng.choice([-1.0, 1.0], size=(params.n_samples, 2))
    X = (corners + rng.normal(0.0, params.noise, corners.shape)).astype(np.float32)
    y = (corners[:, 0] != corners[:, 1]).astype(np.int64)
    return DataArrays(X=X, y=y, num_classes=2)


class TinyDatasets:
    """A plugin with one small dataset, ``xor``, for tests that must not need kaslite-datasets."""

    @hookimpl
    def kaslite_datasets(self) -> list[DatasetSpec]:
        return [DatasetSpec("xor", XorParams, generate_xor, "four blobs in an XOR layout (for tests)")]


# Entry-point target for subprocess tests: "tiny = kaslite.testing:tiny_datasets".
tiny_datasets = TinyDatasets()
