"""Entry-point layer: real importlib.metadata loading from fake distributions on sys.path."""

import pytest

from kaslite.errors import DuplicateNameError, PluginError
from kaslite.plugins import DATASET, PluginManager
from kaslite.testing import fake_distribution

RING_PLUGIN = """
    import attrs
    import kaslite
    from kaslite.hookspecs import DatasetSpec

    @attrs.frozen
    class RingParams:
        n_samples: int = 10

    @kaslite.hookimpl
    def kaslite_datasets():
        return [DatasetSpec("ring", RingParams, lambda params, seed: None, "a ring")]
"""


def load(tmp_path, monkeypatch, **dist):
    fake_distribution(tmp_path, **dist)
    monkeypatch.syspath_prepend(str(tmp_path))
    pm = PluginManager()
    pm.load_entry_points()
    return pm


def test_plugin_loads_from_entry_point(tmp_path, monkeypatch):
    pm = load(
        tmp_path,
        monkeypatch,
        name="ring-plugin",
        version="1.2",
        entry_points={"ring": "ring_mod"},
        modules={"ring_mod": RING_PLUGIN},
    )
    assert pm.lookup(DATASET, "ring").description == "a ring"
    (info,) = [i for i in pm.plugin_infos() if i.name == "ring"]
    assert (info.distribution, info.version, info.builtin, info.error) == ("ring-plugin", "1.2", False, None)
    assert info.hooks == ["kaslite_datasets"]
    assert info.registered == {"kaslite_datasets": ["ring"]}


def test_import_error_is_reported_and_skipped(tmp_path, monkeypatch, caplog):
    pm = load(
        tmp_path, monkeypatch, name="broken-plugin", version="0.9", entry_points={"broken": "module_that_is_missing"}
    )
    assert not pm.has_plugin("broken")
    (info,) = [i for i in pm.plugin_infos() if i.name == "broken"]
    assert info.error == "ModuleNotFoundError: No module named 'module_that_is_missing'"
    assert (info.distribution, info.version) == ("broken-plugin", "0.9")
    assert "plugin 'broken' (broken-plugin 0.9) failed to load and was skipped" in caplog.text


def test_import_error_is_fatal_in_strict_mode(tmp_path, monkeypatch):
    monkeypatch.setenv("KASLITE_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match=r"plugin 'broken' .* failed to load: ModuleNotFoundError"):
        load(tmp_path, monkeypatch, name="broken-plugin", entry_points={"broken": "module_that_is_missing"})


def test_disabled_plugin_is_not_imported(tmp_path, monkeypatch):
    monkeypatch.setenv("KASLITE_DISABLE_PLUGINS", "ring")
    pm = load(
        tmp_path,
        monkeypatch,
        name="ring-plugin",
        entry_points={"ring": "ring_explodes"},
        modules={"ring_explodes": "raise SystemError('imported although disabled')"},
    )
    (info,) = [i for i in pm.plugin_infos() if i.name == "ring"]
    assert info.disabled and info.error is None
    assert "ring" not in pm.registrations(DATASET)


def test_two_distributions_claiming_one_dataset_name(tmp_path, monkeypatch):
    fake_distribution(tmp_path, name="ring-a", entry_points={"ring-a": "ring_a"}, modules={"ring_a": RING_PLUGIN})
    pm = load(tmp_path, monkeypatch, name="ring-b", entry_points={"ring-b": "ring_b"}, modules={"ring_b": RING_PLUGIN})
    assert "ring" not in pm.registrations(DATASET)  # neither wins silently
    with pytest.raises(DuplicateNameError) as info:
        pm.lookup(DATASET, "ring")
    assert info.value.providers == ["'ring-a' (ring-a 1.0)", "'ring-b' (ring-b 1.0)"]
    assert str(info.value) == (
        "dataset 'ring' is registered by both 'ring-a' (ring-a 1.0) and 'ring-b' (ring-b 1.0); "
        "name one: ring-a:ring, ring-b:ring"
    )
    # Qualified by the plugin's name or its distribution's, each one stays reachable.
    assert pm.lookup(DATASET, "ring-b:ring") is not pm.lookup(DATASET, "ring-a:ring")
    assert pm.provider(DATASET, "ring-b:ring") == "ring-b"
    assert pm.validate_params(DATASET, "ring-a:ring", {"n_samples": "4"}).n_samples == 4


@pytest.mark.parametrize(
    ("declared", "error"),
    [
        (None, None),
        ('">=1,<3"', None),
        ('"== 2"', None),
        ('">=3"', "it supports kaslite plugin API >=3 and this kaslite-core ({core}) has plugin API 2: install a "
                  "release of ring-dist made for API 2, or a kaslite-core it supports"),
        ('"<2"', "it supports kaslite plugin API <2 and this kaslite-core ({core}) has plugin API 2: install a "
                 "release of ring-dist made for API 2, or a kaslite-core it supports"),
        ('">=one"', "KASLITE_PLUGIN_API = '>=one' is not a range of plugin API versions; write it as '>=1,<3' "
                    "(whole numbers; this kaslite's plugin API is 2)"),
        ("2", "KASLITE_PLUGIN_API = 2 is not a range of plugin API versions; write it as '>=1,<3' (whole numbers; "
              "this kaslite's plugin API is 2)"),
    ],
)  # fmt: skip
def test_a_plugin_outside_the_api_versions_it_declares_is_refused_in_one_line(tmp_path, monkeypatch, declared, error):
    import kaslite
    from kaslite.plugins import _core_version

    assert kaslite.PLUGIN_API_VERSION == 2
    module = RING_PLUGIN + (f"\n    KASLITE_PLUGIN_API = {declared}\n" if declared else "")
    name = f"ring_{tmp_path.name.replace('-', '_')}"  # a module of its own: Python imports a name once
    pm = load(tmp_path, monkeypatch, name="ring-dist", entry_points={"ring": name}, modules={name: module})
    if error is None:
        assert "ring" in pm.registrations(DATASET) and pm.failures == {}
        return
    assert "ring" not in pm.registrations(DATASET)
    assert pm.failures["ring"][1] == error.format(core=_core_version())
    monkeypatch.setenv("KASLITE_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match=r"^plugin 'ring' \(ring-dist 1.0\) failed to load: "):
        PluginManager().load_entry_points()
