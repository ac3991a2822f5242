"""The app in-process: version LRU, serialised reloads, bind and token rules, CORS, the server hook."""

import asyncio
import threading
import time

import httpx
import pytest

import kaslite
from kaslite.errors import PluginError
from kaslite.hookspecs import ModelSourceSpec
from kaslite_serve import ServerSettings, create_app
from kaslite_serve.holder import ModelHolder

from .conftest import build_net


class InProcess:
    """Calls an app without a socket (httpx's ASGI transport); sync routes still run in the thread pool."""

    def __init__(self, app) -> None:
        self.app = app

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://kaslite.test") as client:
                return await client.request(method, path, **kwargs)

        return asyncio.run(call())

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> httpx.Response:
        return self.request("POST", path, **kwargs)


class CountingSource:
    """Scheme ``count``: versions 1..5 of seeded nets; counts loads and how many run at once."""

    def __init__(self, delay: float = 0.0) -> None:
        self.loads: list[str] = []
        self.running = 0
        self.most_at_once = 0
        self.delay = delay
        self.lock = threading.Lock()

    def load(self, uri: str):
        from kaslite.models import LoadedModel

        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(self.delay)
        version = uri.rsplit("/", 1)[1] if "@" not in uri else "1"
        with self.lock:
            self.loads.append(version)
            self.running -= 1
        return LoadedModel(net=build_net(int(version)), metadata={}, uri=uri, version=version)

    def list_versions(self, uri: str):
        return [{"version": v, "uri": f"count:/m/{v}"} for v in ("1", "2", "3", "4", "5")]

    @kaslite.hookimpl
    def kaslite_model_sources(self):
        return [ModelSourceSpec("count", self.load, self.list_versions, "counting test source")]


@pytest.fixture
def counting():
    source = CountingSource()
    kaslite.get_plugin_manager().register(source, name="counting")
    return source


def test_requested_versions_load_once_into_a_bounded_lru(counting):
    holder = ModelHolder("count:/m@production", version_cache_size=2)
    holder.start()
    assert holder.current.version == "1" and counting.loads == ["1"]
    assert holder.model("1") is holder.current  # the current version never goes through the cache
    holder.model("2"), holder.model("3"), holder.model("2")
    assert counting.loads == ["1", "2", "3"] and holder.cached_versions() == ["3", "2"]
    holder.model("4")  # evicts 3, the least recently used
    assert holder.cached_versions() == ["2", "4"]
    holder.model("3")
    assert counting.loads == ["1", "2", "3", "4", "3"] and holder.cached_versions() == ["4", "3"]


def test_concurrent_requests_for_one_version_load_it_once(counting):
    counting.delay = 0.05
    holder = ModelHolder("count:/m@production")
    holder.start()
    models = []
    threads = [threading.Thread(target=lambda: models.append(holder.model("4"))) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counting.loads == ["1", "4"] and len({id(model) for model in models}) == 1


def test_concurrent_reloads_run_one_at_a_time(counting):
    holder = ModelHolder("count:/m@production")
    holder.start()
    counting.delay = 0.05
    threads = [threading.Thread(target=holder.reload) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(counting.loads) == 5 and counting.most_at_once == 1


def test_reload_is_refused_on_a_non_loopback_bind_without_a_token(served_file, monkeypatch):
    monkeypatch.delenv("KASLITE_ADMIN_TOKEN", raising=False)
    open_bind = InProcess(create_app(ServerSettings(model_uri=str(served_file), host="0.0.0.0")))
    refused = open_bind.post("/reload-model")
    assert (refused.status_code, refused.json()) == (
        403,
        {"detail": "/reload-model is refused: the server is bound to 0.0.0.0, not loopback, and KASLITE_ADMIN_TOKEN "
         "is not set"},
    )  # fmt: skip
    assert open_bind.post("/predict", json={"data": [[0.0, 1.0]]}).status_code == 200

    guarded = InProcess(create_app(ServerSettings(model_uri=str(served_file), host="0.0.0.0", admin_token="t")))
    assert guarded.post("/reload-model", headers={"Authorization": "Bearer t"}).status_code == 200
    for host in ("127.0.0.1", "127.0.0.2", "localhost", "::1"):
        assert ServerSettings(model_uri="m.pt", host=host).loopback
    for host in ("0.0.0.0", "::", "192.0.2.7", "example.org"):
        assert not ServerSettings(model_uri="m.pt", host=host).loopback


def test_the_admin_token_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("KASLITE_ADMIN_TOKEN", "from-env")
    assert ServerSettings(model_uri="m.pt").admin_token == "from-env"
    assert "from-env" not in repr(ServerSettings(model_uri="m.pt"))
    monkeypatch.setenv("KASLITE_ADMIN_TOKEN", "")
    assert ServerSettings(model_uri="m.pt").admin_token is None


def test_cors_is_off_unless_configured(served_file):
    origin = {"Origin": "https://app.example"}
    plain = InProcess(create_app(ServerSettings(model_uri=str(served_file))))
    assert "access-control-allow-origin" not in plain.get("/health", headers=origin).headers
    allowed = InProcess(create_app(ServerSettings(model_uri=str(served_file), cors_origins=["https://app.example"])))
    assert allowed.get("/health", headers=origin).headers["access-control-allow-origin"] == "https://app.example"


def test_plugins_extend_the_app_through_kaslite_server_app(served_file):
    calls = []

    class Version:
        @kaslite.hookimpl
        def kaslite_server_app(self, app, settings):
            calls.append((app, settings))

            @app.get("/version")
            def version():
                return {"model": settings.model_uri}

    kaslite.get_plugin_manager().register(Version(), name="version")
    settings = ServerSettings(model_uri=str(served_file))
    app = create_app(settings)
    assert calls == [(app, settings)]
    assert app.state.holder.current.version == "1" and app.state.settings is settings
    assert InProcess(app).get("/version").json() == {"model": str(served_file)}


def test_a_failing_server_hook_names_the_problem(served_file):
    class Broken:
        @kaslite.hookimpl
        def kaslite_server_app(self, app):
            raise RuntimeError("no metrics today")

    kaslite.get_plugin_manager().register(Broken(), name="broken")
    with pytest.raises(PluginError, match=r"^a kaslite_server_app plugin failed: RuntimeError: no metrics today$"):
        create_app(ServerSettings(model_uri=str(served_file)))


def test_model_names_come_from_the_uri_the_run_or_the_flag(served_file):
    from kaslite_serve.uris import registered_name, scheme_of, version_uri

    assert [scheme_of(u) for u in ("m.pt", "/a/m.pt", "file:///a/m.pt", "C:\\m.pt", "models:/k@production")] == [
        "file", "file", "file", "file", "models",
    ]  # fmt: skip
    assert registered_name("models:/kaslite@production") == registered_name("models:/kaslite/3") == "kaslite"
    assert version_uri("models:/kaslite@production", "4") == "models:/kaslite/4"

    by_uri = InProcess(create_app(ServerSettings(model_uri=served_file.as_uri())))
    assert by_uri.get("/models").json()["model_name"] == "demo"  # the file's run name
    named = InProcess(create_app(ServerSettings(model_uri=str(served_file), model_name="spirals")))
    assert named.get("/v2/models/spirals/ready").json() == {"name": "spirals", "ready": True}
    assert named.get("/v2/models/demo/ready").status_code == 404
