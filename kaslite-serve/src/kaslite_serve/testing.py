"""Test a server extension: the real app, in-process, with your plugin registered.

``server_client`` builds the app exactly as ``kaslite serve`` does (every
``kaslite_server_app`` hook of the plugin manager is called), runs its
lifespan, waits until the first model load has settled, and hands you a
FastAPI ``TestClient`` (an ``httpx.Client``; install ``kaslite-serve[testing]``)::

    import kaslite
    from kaslite_serve import ServerSettings
    from kaslite_serve.testing import server_client

    def test_my_extension_counts_rows(model_file):
        kaslite.get_plugin_manager().register(my_plugin, name="my-plugin")
        with server_client(ServerSettings(model_uri=str(model_file))) as client:
            client.post("/predict", json={"data": [[0.5, -1.0]]})
            assert client.get("/rows").json() == {"rows": 1}

``client.app.state.events`` is the app's :class:`kaslite.serving.ServerEvents`
and ``client.app.state.holder`` its model holder.

:class:`ServeProcess` runs the real ``kaslite serve`` command instead, in a
process of its own, for tests of what only a process shows (signals, ports,
logs, installed plugins).
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from kaslite_serve.settings import ServerSettings

if TYPE_CHECKING:
    import subprocess
    from pathlib import Path

    from fastapi.testclient import TestClient


@contextmanager
def server_client(
    settings: ServerSettings, load_timeout: float = 60.0, **client_options: Any
) -> Iterator["TestClient"]:
    """A ``TestClient`` of the app of ``settings``, its model loaded (or its first load failed).

    ``client_options`` go to ``TestClient`` (``raise_server_exceptions=False``
    to see a handler's exception as the 500 a real client would get).
    """
    from fastapi.testclient import TestClient

    from kaslite_serve.app import create_app

    app = create_app(settings)
    with TestClient(app, **client_options) as client:  # entering runs the lifespan, which starts the load
        if not app.state.holder.wait_started(load_timeout):
            raise TimeoutError(f"the model {settings.model_uri!r} did not load within {load_timeout} s")
        yield client


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(
    process: "subprocess.Popen[Any]",
    url: str,
    up: "Callable[[int, bytes], bool]",
    timeout: float,
    output: "Callable[[], str]",
) -> None:
    """Poll ``url`` until ``up(status, body)`` says the server is up; AssertionError with the server's output
    when the process exits or ``timeout`` seconds pass first."""
    import contextlib
    import time
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}:\n{output()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"the server did not come up within {timeout} s:\n{output()}")
        with contextlib.suppress(OSError):
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    status, body = response.status, response.read()
            except urllib.error.HTTPError as exc:
                status, body = exc.code, exc.read()
            if up(status, body):
                return
        time.sleep(0.1)


class ServeProcess:
    """``kaslite serve --model MODEL ARGS...`` in a process of its own, on a free port of 127.0.0.1.

    Ready once the first model load has settled, either way (``/health/ready``
    no longer says ``loading``); a ``with`` block stops it at the end::

        with ServeProcess("results/run/model.pt", log=tmp_path / "server.log") as server:
            httpx.post(server.url + "/predict", json={"data": [[0.5, -1.0]]})

    ``env`` replaces the environment (``KASLITE_ADMIN_TOKEN`` is left out unless given).
    """

    def __init__(
        self,
        model: str,
        *args: str,
        env: dict[str, str] | None = None,
        log: "Path | None" = None,
        cwd: "Path | None" = None,
        timeout: float = 60.0,
    ) -> None:
        import os
        import subprocess
        import sys
        import tempfile
        from pathlib import Path

        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = Path(log) if log is not None else Path(tempfile.mkdtemp(prefix="kaslite-serve-")) / "server.log"
        environment = (
            dict(env) if env is not None else {k: v for k, v in os.environ.items() if k != "KASLITE_ADMIN_TOKEN"}
        )
        environment["PYTHONUNBUFFERED"] = "1"
        command = [sys.executable, "-m", "kaslite", "serve", "--model", model, "--port", str(port), *args]
        with open(self.log, "w") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environment, cwd=cwd)
        try:
            wait_until_up(self.process, self.url + "/health/ready", _settled, timeout, self.output)
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        """What the server has logged so far."""
        return self.log.read_text()

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean anything up."""
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s."""
        import subprocess

        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> "ServeProcess":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _settled(status: int, body: bytes) -> bool:
    return status in (200, 503) and b'"loading"' not in body
