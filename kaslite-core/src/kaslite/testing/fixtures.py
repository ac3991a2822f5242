"""pytest fixtures for plugin authors, active wherever kaslite-core is installed (``pytest11``).

* ``kaslite_plugin_manager``: a fresh manager with kaslite's builtins and nothing else.
* ``kaslite_register``: ``kaslite_register(plugin)`` registers a plugin object in the
  process-wide manager for one test (``kaslite run`` machinery sees it).
* ``kaslite_tiny_config``: ``kaslite_tiny_config(**sections)`` builds a small, fast
  ``ExperimentConfig`` (the ``xor`` dataset unless you name another problem).
* ``kaslite_run_dir``: an empty run directory.
"""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import kaslite
from kaslite.config import ExperimentConfig, build_config
from kaslite.plugins import PluginManager
from kaslite.testing import plugin_manager, tiny_datasets

TINY_EXPERIMENT: dict[str, Any] = {
    "data": {"problem": "xor", "params": {"n_samples": 120}},
    "model": {"hidden_dim": 8, "num_layers": 2, "seeds_per_layer": 1, "blueprint_options": {}},
    "seeds": {"blend_steps": 3, "progress_thresh": 0.0, "buffer_size": 64},
    "controller": {"name": "periodic", "period": 2},
    "train": {"warm_up_epochs": 3, "adaptation_epochs": 8, "batch_size": 16, "seed": 0},
}


@pytest.fixture
def kaslite_plugin_manager() -> PluginManager:
    """A fresh manager holding only kaslite-core's builtins: register your plugin on it."""
    return plugin_manager(builtins=True)


@pytest.fixture
def kaslite_register() -> Iterator[Callable[..., object]]:
    """Register plugin objects in the process-wide manager for the duration of one test."""
    kaslite.reset_plugin_manager()
    manager = kaslite.get_plugin_manager()
    registered: list[object] = []

    def register(plugin: object, name: str | None = None) -> object:
        if manager.is_registered(plugin):  # already installed through its entry point
            return plugin
        manager.register(plugin, name=name)
        manager.check_pending()
        registered.append(plugin)
        return plugin

    yield register
    for plugin in registered:
        if manager.is_registered(plugin):
            manager.unregister(plugin)
    kaslite.reset_plugin_manager()


@pytest.fixture
def kaslite_tiny_config(kaslite_register: Callable[..., object]) -> Callable[..., ExperimentConfig]:
    """A factory of small experiment configs; sections you pass override the tiny defaults."""

    def make(**sections: Any) -> ExperimentConfig:
        problem = sections.get("data", {}).get("problem", "xor")
        if problem == "xor" and not kaslite.get_plugin_manager().is_registered(tiny_datasets):
            kaslite_register(tiny_datasets, name="kaslite-testing-datasets")
        base = dict(TINY_EXPERIMENT)
        if problem != "xor":
            base["data"] = {}
        return build_config(base, sections)

    return make


@pytest.fixture
def kaslite_run_dir(tmp_path: Path) -> Path:
    """An empty directory for one run's files."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    return run_dir
