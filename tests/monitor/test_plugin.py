"""kaslite-monitor as an installed plugin: found through its entry point, cheap to load."""

import json
import subprocess
import sys

import kaslite


def importtime(env, *args: str) -> tuple[str, set[str]]:
    """Run ``kaslite ARGS`` with ``-X importtime``: its stdout and the top-level packages it imported."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "kaslite", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    modules = {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return proc.stdout, modules


def test_help_and_plugins_do_not_import_prometheus_client_or_torch(env):
    for args in (["--help"], ["plugins"], ["plugins", "--json"], ["monitor", "--help"]):
        _, modules = importtime(env, *args)
        assert "kaslite_monitor" in modules, args  # the plugin was loaded...
        assert not modules & {"prometheus_client", "torch"}, args  # ...and stayed light
    infos = {info["name"]: info for info in json.loads(importtime(env, "plugins", "--json")[0])}
    monitor = infos["monitor"]
    assert (monitor["distribution"], monitor["version"], monitor["error"]) == ("kaslite-monitor", "0.1.0", None)
    assert monitor["registered"] == {"kaslite_trackers": ["prometheus"], "kaslite_commands": ["monitor"]}
    assert sorted(monitor["hooks"]) == ["kaslite_commands", "kaslite_server_app", "kaslite_trackers"]


def test_the_tracker_is_registered_on_by_default_with_its_options():
    spec = kaslite.get_plugin_manager().lookup(kaslite.plugins.TRACKER, "prometheus")
    assert spec.default is True
    assert spec.options_type.__name__ == "PrometheusOptions"
    assert kaslite.get_plugin_manager().provider(kaslite.plugins.TRACKER, "prometheus") == "kaslite-monitor"
