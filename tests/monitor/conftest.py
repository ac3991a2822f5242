"""kaslite-monitor's tests: the plugin found through its entry point, the tiny ``xor`` dataset, promtool.

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
import signal
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import pytest

import kaslite
from kaslite.testing import fake_distribution, tiny_datasets

ROOT = Path(__file__).resolve().parents[2]
MONITOR_SRC = ROOT / "kaslite-monitor" / "src"
FAKE_SERVER = Path(__file__).with_name("fake_server.py")


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


class FakeServer:
    """``fake_server.py`` served by uvicorn in a subprocess."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        command = [sys.executable, str(FAKE_SERVER), *args]
        self.proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        line = self.proc.stdout.readline()
        assert line.strip().isdigit(), f"fake server did not start: {line!r} {self.proc.stderr.read()}"
        self.url = f"http://127.0.0.1:{int(line)}"
        self.pid = self.proc.pid
        # Requests wait in the listen backlog until uvicorn has run the app's startup; then it answers.
        with urllib.request.urlopen(f"{self.url}/health/live", timeout=30) as response:
            assert response.status == 200 and response.read()

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean anything up."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture(scope="session")
def kasmina_run(tmp_path_factory):
    """The kasmina run of ``runs.py``, scraped after every event (also the training side of the name cross-check)."""
    from .runs import kasmina_run as train

    return train(tmp_path_factory.mktemp("kasmina"))
