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
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from kaslite_serve.settings import ServerSettings

if TYPE_CHECKING:
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
