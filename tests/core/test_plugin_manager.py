"""Unit layer: a fresh manager with plugins registered as objects."""

import attrs
import pytest

import kaslite
from kaslite.errors import DuplicateNameError, PluginError, UnknownNameError
from kaslite.hookspecs import ControllerSpec, DatasetSpec, TrackerSpec
from kaslite.plugins import CONTROLLER, DATASET, TRACKER, PluginManager
from kaslite.testing import plugin_manager


@attrs.frozen
class NoParams:
    pass


class DatasetPlugin:
    def __init__(self, *names: str) -> None:
        self.names = names

    @kaslite.hookimpl
    def kaslite_datasets(self):
        return [DatasetSpec(name, NoParams, lambda params, seed: None, f"{name} data") for name in self.names]


def test_registrations_are_keyed_by_name_across_plugins():
    pm = plugin_manager(DatasetPlugin("ring", "grid"), DatasetPlugin("blob"))
    assert sorted(pm.registrations(DATASET)) == ["blob", "grid", "ring"]
    assert pm.lookup(DATASET, "ring").description == "ring data"


def test_duplicate_name_fails_only_when_used_naming_both_providers():
    pm = PluginManager()
    pm.register(DatasetPlugin("ring", "grid"), name="first-plugin")
    pm.register(DatasetPlugin("ring"), name="second-plugin")
    assert list(pm.registrations(DATASET)) == ["grid"]  # the other names stay usable
    assert pm.lookup(DATASET, "grid").description == "grid data"
    with pytest.raises(DuplicateNameError) as info:
        pm.lookup(DATASET, "ring")
    assert str(info.value) == (
        "dataset 'ring' is registered by both 'first-plugin' and 'second-plugin'; "
        "name one: first-plugin:ring, second-plugin:ring"
    )
    assert pm.conflicts_of("second-plugin") == [
        "dataset 'ring' is also registered by 'first-plugin'; choose with first-plugin:ring or second-plugin:ring"
    ]


def test_a_qualified_name_reaches_each_plugins_record_and_an_unknown_one_lists_them():
    first, second = DatasetPlugin("ring", "grid"), DatasetPlugin("ring")
    pm = PluginManager()
    pm.register(first, name="first-plugin")
    pm.register(second, name="second-plugin")
    assert pm.lookup(DATASET, "second-plugin:ring") is not pm.lookup(DATASET, "first-plugin:ring")
    assert pm.lookup(DATASET, "first-plugin:grid") is pm.lookup(DATASET, "grid")  # unique names qualify too
    with pytest.raises(UnknownNameError) as info:
        pm.lookup(DATASET, "third-plugin:ring")
    assert str(info.value) == (
        "unknown dataset 'third-plugin:ring'; available: first-plugin:grid, first-plugin:ring, grid, second-plugin:ring"
    )
    with pytest.raises(UnknownNameError):
        pm.lookup(DATASET, "second-plugin:grid")  # the plugin exists, the name is not its


def test_unknown_name_lists_available_names_sorted():
    pm = plugin_manager(DatasetPlugin("spirals", "moons", "clusters"))
    with pytest.raises(UnknownNameError) as info:
        pm.lookup(DATASET, "spiral")
    assert str(info.value) == "unknown dataset 'spiral'; available: clusters, moons, spirals"


def test_unknown_name_with_nothing_registered_says_so():
    pm = plugin_manager()
    with pytest.raises(UnknownNameError, match=r"unknown controller 'kasmina'; available: \(none installed\)"):
        pm.lookup(CONTROLLER, "kasmina")


def test_plugin_raising_in_registration_hook_is_fatal_in_strict_mode(monkeypatch):
    monkeypatch.setenv("KASLITE_STRICT_PLUGINS", "1")

    class Broken:
        @kaslite.hookimpl
        def kaslite_controllers(self):
            raise RuntimeError("boom\nsecond line")

    pm = PluginManager()
    pm.register(Broken(), name="broken-policy")
    with pytest.raises(PluginError, match=r"plugin 'broken-policy' failed in kaslite_controllers: RuntimeError: boom$"):
        pm.registrations(CONTROLLER)


def test_registered_by_reports_records_and_commands():
    import click

    class Tools:
        @kaslite.hookimpl
        def kaslite_trackers(self):
            return [TrackerSpec("print", lambda run: None, "print", default=True)]

        @kaslite.hookimpl
        def kaslite_controllers(self):
            return [ControllerSpec("greedy", lambda config: None)]

        @kaslite.hookimpl
        def kaslite_commands(self, cli):
            @cli.command()
            def hello():
                click.echo("hello")

    pm = PluginManager()
    pm.register(Tools(), name="tools")
    assert pm.registered_by("tools") == {
        "kaslite_controllers": ["greedy"],
        "kaslite_trackers": ["print"],
        "kaslite_commands": ["hello"],
    }
    assert pm.registrations(TRACKER)["print"].default is True


def test_unknown_hook_name_is_rejected_and_plugin_skipped(caplog):
    class Typo:
        @kaslite.hookimpl
        def kaslite_dataset(self):  # missing the final "s"
            return []

    pm = PluginManager()
    pm._load("typo", kaslite.plugins._Origin("typo-dist", "0.3", builtin=False), lambda: Typo())
    assert not pm.has_plugin("typo")
    _origin, reason = pm.failures["typo"]
    assert "PluginValidationError" in reason and "kaslite_dataset" in reason
    assert "plugin 'typo' (typo-dist 0.3) failed to load" in caplog.text


def test_disabled_plugin_is_blocked(monkeypatch):
    monkeypatch.setenv("KASLITE_DISABLE_PLUGINS", "ring-plugin, other")
    pm = PluginManager()
    pm._load("ring-plugin", kaslite.plugins._Origin("d", "1", builtin=False), lambda: DatasetPlugin("ring"))
    assert not pm.has_plugin("ring-plugin")
    assert "ring-plugin" in pm.disabled
    assert pm.registrations(DATASET) == {}


def test_strict_mode_makes_a_failure_fatal(monkeypatch):
    monkeypatch.setenv("KASLITE_STRICT_PLUGINS", "1")
    pm = PluginManager()

    def load():
        raise ImportError("No module named 'nowhere'")

    with pytest.raises(PluginError, match=r"plugin 'bad' \(bad-dist 2.0\) failed to load: ImportError: No module"):
        pm._load("bad", kaslite.plugins._Origin("bad-dist", "2.0", builtin=False), load)


def test_get_plugin_manager_is_cached_and_resettable():
    first = kaslite.get_plugin_manager()
    assert kaslite.get_plugin_manager() is first
    kaslite.reset_plugin_manager()
    assert kaslite.get_plugin_manager() is not first


def test_kaslite_server_app_receives_app_and_settings():
    from kaslite.serving import ServerEvents

    seen = []

    class Extension:
        @kaslite.hookimpl
        def kaslite_server_app(self, app, settings):
            seen.append((app, settings))
            app.routes.append("/extra")

    class App:
        def __init__(self):
            self.routes = []

    app, settings = App(), {"token": None}
    plugin_manager(Extension()).hook.kaslite_server_app(app=app, settings=settings, events=ServerEvents())
    assert seen == [(app, settings)] and app.routes == ["/extra"]


def test_a_plugin_blueprint_grows_inside_the_network():
    import torch
    from torch import nn

    from kaslite.hookspecs import BlueprintSpec
    from kaslite.nn import MorphogeneticNet

    class TanhBlueprints:
        @kaslite.hookimpl
        def kaslite_seed_blueprints(self):
            def build(dim, hidden=4):
                return nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, dim))

            return [BlueprintSpec("tanh", build, "tanh MLP", {"hidden": 4})]

    kaslite.get_plugin_manager().register(TanhBlueprints(), name="tanh-blueprints")
    net = MorphogeneticNet(2, 6, 1, 1, 2, blueprint="tanh", blueprint_options={"hidden": 3})
    child = net.seeds["seed1_1"].child
    assert isinstance(child[1], nn.Tanh) and child[0].out_features == 3
    assert net(torch.zeros(1, 2)).shape == (1, 2)


def test_a_plugin_model_source_is_found_by_scheme():
    from kaslite.hookspecs import ModelSourceSpec
    from kaslite.plugins import MODEL_SOURCE, get_model_source

    loaded = []

    class Bucket:
        @kaslite.hookimpl
        def kaslite_model_sources(self):
            return [ModelSourceSpec("bucket", loaded.append, lambda uri: [{"uri": uri}], "test bucket")]

    kaslite.get_plugin_manager().register(Bucket(), name="bucket")
    source = get_model_source("bucket")
    source.load("bucket://models/a.pt")
    assert loaded == ["bucket://models/a.pt"]
    assert source.list_versions("bucket://x") == [{"uri": "bucket://x"}]
    # Alongside the builtin file source (and any an installed plugin adds).
    assert {"bucket", "file"} <= set(kaslite.get_plugin_manager().registrations(MODEL_SOURCE))
