"""kaslite-monitor's tests: the plugin found through its entry point, the tiny ``xor`` dataset, promtool,
and the real inference server.

nox installs kaslite-monitor into each session. In a development environment
where it is not installed, its source folder and a stand-in ``.dist-info``
(entry point ``monitor = kaslite_monitor.plugin``) go on the path instead, for
this process and its subprocesses: the plugin is still found the way a user's
installation finds it.
"""

import atexit
import importlib.metadata
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

import kaslite
from kaslite.testing import fake_distribution, tiny_datasets

ROOT = Path(__file__).resolve().parents[2]
MONITOR_SRC = ROOT / "kaslite-monitor" / "src"


def _monitor_path() -> list[str]:
    try:
        importlib.metadata.distribution("kaslite-monitor")
        return []
    except importlib.metadata.PackageNotFoundError:
        site = Path(tempfile.mkdtemp(prefix="kaslite-monitor-dist-"))
        atexit.register(shutil.rmtree, site, True)
        fake_distribution(site, "kaslite-monitor", "0.1.0", entry_points={"monitor": "kaslite_monitor.plugin"})
        return [str(MONITOR_SRC), str(site)]


EXTRA_PATH = _monitor_path()
sys.path[:0] = EXTRA_PATH


def subprocess_env(*paths: Path | str, **extra: str) -> dict[str, str]:
    """The environment of a subprocess that sees kaslite-monitor and ``paths``."""
    parts = [str(p) for p in paths] + EXTRA_PATH
    if os.environ.get("PYTHONPATH"):
        parts.append(os.environ["PYTHONPATH"])
    # One torch thread: the suite shares two cores, and contention makes tiny runs many times slower.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(parts), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    env.update(extra)
    for var in ("KASLITE_STRICT_PLUGINS", "KASLITE_DISABLE_PLUGINS", "PROMETHEUS_MULTIPROC_DIR"):
        if var not in extra:
            env.pop(var, None)
    return env


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A subprocess environment with kaslite-monitor and the ``xor`` dataset installed as entry points."""
    site = fake_distribution(
        tmp_path / "site", name="tiny-data", entry_points={"tiny": "kaslite.testing:tiny_datasets"}
    )
    return subprocess_env(site)


@pytest.fixture
def tiny_data() -> None:
    """Register the ``xor`` test dataset in the process-wide plugin manager."""
    manager = kaslite.get_plugin_manager()
    if not manager.is_registered(tiny_datasets):
        manager.register(tiny_datasets, name="tiny")


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is required: apt-get install prometheus (the Debian package)"
    return path


@pytest.fixture(scope="session")
def amtool() -> str:
    path = shutil.which("amtool")
    assert path, "amtool is required: apt-get install prometheus-alertmanager (the Debian package)"
    return path


@pytest.fixture(scope="session")
def model_file(tmp_path_factory) -> Path:
    """A saved model (run name ``xor-net``, version "1") the server tests serve."""
    from .servers import save_model_file

    return save_model_file(tmp_path_factory.mktemp("model") / "model.pt")


@pytest.fixture(scope="session")
def kasmina_run(tmp_path_factory):
    """The kasmina run of ``runs.py``, scraped after every event (also the training side of the name cross-check)."""
    from .runs import kasmina_run as train

    return train(tmp_path_factory.mktemp("kasmina"))
