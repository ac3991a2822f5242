"""The real ``kaslite`` command line, in a subprocess."""

import json
import subprocess
import sys

import pytest

from kaslite.testing import fake_distribution

HEAVY = ["torch", "mlflow", "fastapi", "prometheus_client", "tensorboard", "optuna"]

# Runs the console-script entry point and reports which heavy modules got imported.
PROBE = """
import atexit, json, sys
atexit.register(lambda: print("HEAVY=" + json.dumps(sorted(m for m in {heavy} if m in sys.modules)), file=sys.stderr))
sys.argv = ["kaslite", *{args}]
from kaslite.cli.main import main
main()
"""


def kaslite(*args: str, env: dict | None = None, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kaslite", *args], capture_output=True, text=True, env=env, check=check, timeout=120
    )


def heavy_imports(*args: str) -> list[str]:
    code = PROBE.format(heavy=HEAVY, args=list(args))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("HEAVY=")][-1]
    return json.loads(line.removeprefix("HEAVY="))


@pytest.mark.parametrize("args", [["--help"], ["plugins"], ["plugins", "--json"], ["--version"]])
def test_light_commands_import_nothing_heavy(args):
    assert heavy_imports(*args) == []


def test_version():
    from kaslite import __version__

    assert kaslite("--version", check=True).stdout.strip() == f"kaslite, version {__version__}"


def test_plugins_json_lists_builtins():
    entries = json.loads(kaslite("plugins", "--json", check=True).stdout)
    builtins = [e for e in entries if e["builtin"]]
    for entry in builtins:
        assert set(entry) == {"name", "distribution", "version", "builtin", "disabled", "hooks", "registered", "error"}
        assert entry["distribution"] == "kaslite-core" and entry["error"] is None


def test_broken_plugin_is_listed_and_strict_mode_fails(tmp_path):
    import os

    fake_distribution(tmp_path, name="broken-plugin", version="0.1", entry_points={"broken": "no_such_module_here"})
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = kaslite("plugins", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    (broken,) = [e for e in json.loads(proc.stdout) if e["name"] == "broken"]
    assert broken["error"] == "ModuleNotFoundError: No module named 'no_such_module_here'"
    assert broken["distribution"] == "broken-plugin" and broken["version"] == "0.1"
    assert "plugin 'broken' (broken-plugin 0.1) failed to load and was skipped" in proc.stderr

    strict = kaslite("plugins", "--json", env={**env, "KASLITE_STRICT_PLUGINS": "1"})
    assert strict.returncode == 1
    assert strict.stderr.strip().splitlines() == [
        "Error: plugin 'broken' (broken-plugin 0.1) failed to load: "
        "ModuleNotFoundError: No module named 'no_such_module_here'"
    ]


PLUGIN_WITH_COMMAND = """
    import click
    import kaslite

    @kaslite.hookimpl
    def kaslite_commands(cli):
        @cli.command()
        def greet():
            "Say hello from a plugin."
            click.echo("hello from greet")
"""


def test_plugin_commands_appear_in_help_and_run(tmp_path):
    import os

    fake_distribution(
        tmp_path, name="greeter", entry_points={"greeter": "greeter_mod"}, modules={"greeter_mod": PLUGIN_WITH_COMMAND}
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    assert "greet     Say hello from a plugin." in kaslite("--help", env=env, check=True).stdout
    assert kaslite("greet", env=env, check=True).stdout == "hello from greet\n"
    entries = json.loads(kaslite("plugins", "--json", env=env, check=True).stdout)
    (entry,) = [e for e in entries if e["name"] == "greeter"]
    assert entry["registered"] == {"kaslite_commands": ["greet"]}


def test_plugin_command_clashing_with_core_is_refused(tmp_path):
    import os

    source = PLUGIN_WITH_COMMAND.replace("def greet", "def plugins")
    fake_distribution(tmp_path, name="clash", entry_points={"clash": "clash_mod"}, modules={"clash_mod": source})
    proc = kaslite("--help", env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 1
    assert proc.stderr.strip() == "Error: command 'plugins' is added by both 'kaslite-core' and 'clash'"


def test_unknown_command_is_one_line_exit_2():
    proc = kaslite("bogus")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["Error: No such command 'bogus'. (see 'kaslite --help')"]
