"""The app in-process (kaslite_serve.testing): version LRU, serialised reloads, bind and token rules, CORS,
the server hook."""

import threading

import pytest

import kaslite
from kaslite.errors import PluginError
from kaslite_serve import ServerSettings, create_app
from kaslite_serve.holder import ModelHolder
from kaslite_serve.testing import server_client


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
    with server_client(ServerSettings(model_uri=str(served_file), host="0.0.0.0")) as open_bind:
        refused = open_bind.post("/reload-model")
        assert (refused.status_code, refused.json()) == (
            403,
            {"detail": "/reload-model is refused: the server is bound to 0.0.0.0, not loopback, and "
             "KASLITE_ADMIN_TOKEN is not set"},
        )  # fmt: skip
        assert open_bind.post("/predict", json={"data": [[0.0, 1.0]]}).status_code == 200
        assert "security" not in open_bind.get("/openapi.json").json()["paths"]["/reload-model"]["post"]

    guarded_settings = ServerSettings(model_uri=str(served_file), host="0.0.0.0", admin_token="t")
    with server_client(guarded_settings) as guarded:
        assert guarded.post("/reload-model", headers={"Authorization": "Bearer t"}).status_code == 200
        assert guarded.get("/openapi.json").json()["paths"]["/reload-model"]["post"]["security"] == [{"HTTPBearer": []}]
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
    with server_client(ServerSettings(model_uri=str(served_file))) as plain:
        assert "access-control-allow-origin" not in plain.get("/health", headers=origin).headers
    with server_client(ServerSettings(model_uri=str(served_file), cors_origins=["https://app.example"])) as allowed:
        assert allowed.get("/health", headers=origin).headers["access-control-allow-origin"] == "https://app.example"


def test_plugins_extend_the_app_through_kaslite_server_app(served_file):
    calls = []

    class Version:
        @kaslite.hookimpl
        def kaslite_server_app(self, app, settings, events):
            calls.append((app, settings, events))

            @app.get("/version")
            def version():
                return {"model": settings.model_uri}

    kaslite.get_plugin_manager().register(Version(), name="version")
    settings = ServerSettings(model_uri=str(served_file))
    with server_client(settings) as client:
        app = client.app
        assert calls == [(app, settings, app.state.events)]
        assert app.state.holder.current.version == "1" and app.state.settings is settings
        assert client.get("/version").json() == {"model": str(served_file)}


def test_a_hook_that_declares_only_the_app_still_gets_called(served_file):
    seen = []

    class OnlyApp:
        @kaslite.hookimpl
        def kaslite_server_app(self, app):
            seen.append(app)

    kaslite.get_plugin_manager().register(OnlyApp(), name="only-app")
    assert seen == [create_app(ServerSettings(model_uri=str(served_file)))]


class Broken:
    @kaslite.hookimpl
    def kaslite_server_app(self, app):
        raise RuntimeError("no metrics today")


def test_a_failing_server_hook_is_named_and_skipped_and_the_server_serves(served_file, caplog):
    class Hello:
        @kaslite.hookimpl
        def kaslite_server_app(self, app):
            app.get("/hello")(lambda: {"hello": "world"})

    kaslite.get_plugin_manager().register(Broken(), name="broken")
    kaslite.get_plugin_manager().register(Hello(), name="hello")
    with server_client(ServerSettings(model_uri=str(served_file))) as client:
        assert client.get("/hello").json() == {"hello": "world"}  # a broken plugin takes no other down
        assert client.post("/predict", json={"data": [[0.5, -1.0]]}).status_code == 200
    assert [r.getMessage() for r in caplog.records if "kaslite_server_app" in r.getMessage()] == [
        "kaslite: plugin 'broken' failed in kaslite_server_app and the rest of its extension was skipped: "
        "RuntimeError: no metrics today"
    ]
    # `kaslite plugins` lists the error beside the plugin.
    assert kaslite.get_plugin_manager().errors_of("broken") == [
        "failed in kaslite_server_app: RuntimeError: no metrics today"
    ]


def test_a_failing_server_hook_is_fatal_in_strict_mode(served_file, monkeypatch):
    monkeypatch.setenv("KASLITE_STRICT_PLUGINS", "1")
    kaslite.reset_plugin_manager()
    kaslite.get_plugin_manager().register(Broken(), name="broken")
    message = r"^plugin 'broken' failed in kaslite_server_app: RuntimeError: no metrics today$"
    with pytest.raises(PluginError, match=message):
        create_app(ServerSettings(model_uri=str(served_file)))


def test_model_names_come_from_the_uri_the_run_or_the_flag(served_file, counting):
    with server_client(ServerSettings(model_uri=served_file.as_uri())) as by_uri:
        assert by_uri.get("/models").json()["model_name"] == "demo"  # the file's run name
    with server_client(ServerSettings(model_uri=str(served_file), model_name="spirals")) as named:
        assert named.get("/v2/models/spirals/ready").json() == {"name": "spirals", "ready": True}
        assert named.get("/v2/models/demo/ready").status_code == 404
    with server_client(ServerSettings(model_uri="count:/registered@production")) as registered:
        assert registered.get("/models").json()["model_name"] == "registered"  # the registry's name
