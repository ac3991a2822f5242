"""The real ``kaslite`` command line: in a subprocess where a fresh interpreter matters, else in this process."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kaslite import reset_plugin_manager
from kaslite.testing import fake_distribution, invoke

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

    assert invoke("--version").stdout.strip() == f"kaslite, version {__version__}"


def test_plugins_json_lists_builtins():
    entries = json.loads(invoke("plugins", "--json").stdout)
    builtins = [e for e in entries if e["builtin"]]
    for entry in builtins:
        assert set(entry) == {
            "name", "distribution", "version", "builtin", "disabled", "hooks", "registered", "conflicts", "error",
            "parameters",
        }  # fmt: skip
        assert entry["distribution"] == "kaslite-core" and entry["error"] is None and entry["conflicts"] == []
    (blueprints,) = [e for e in builtins if e["name"] == "kaslite.blueprints"]
    assert blueprints["parameters"]["kaslite_seed_blueprints"]["mlp"] == [
        {
            "name": "hidden",
            "type": "int",
            "default": 128,
            "required": False,
            "help": "width of the child's hidden layer",
        }
    ]


def test_broken_plugin_is_listed_and_strict_mode_fails(tmp_path, monkeypatch, caplog):
    fake_distribution(tmp_path, name="broken-plugin", version="0.1", entry_points={"broken": "no_such_module_here"})
    monkeypatch.syspath_prepend(str(tmp_path))
    result = invoke("plugins", "--json")
    assert result.exit_code == 0, result.output
    (broken,) = [e for e in json.loads(result.stdout) if e["name"] == "broken"]
    assert broken["error"] == "ModuleNotFoundError: No module named 'no_such_module_here'"
    assert broken["distribution"] == "broken-plugin" and broken["version"] == "0.1"
    assert "plugin 'broken' (broken-plugin 0.1) failed to load and was skipped" in caplog.text

    reset_plugin_manager()
    strict = invoke("plugins", "--json", env={"KASLITE_STRICT_PLUGINS": "1"})
    assert strict.exit_code == 1
    lines = strict.stderr.strip().splitlines()
    assert lines[0] == "Traceback (most recent call last):"  # strict mode shows where it failed
    assert lines[-1] == (
        "Error: plugin 'broken' (broken-plugin 0.1) failed to load: "
        "ModuleNotFoundError: No module named 'no_such_module_here'"
    )


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


def test_unknown_command_is_one_line_exit_2():
    result = invoke("bogus")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == ["Error: No such command 'bogus'. (see 'kaslite --help')"]


def test_data_generate_writes_to_the_data_folder_unless_told_otherwise(tiny_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    default = invoke("data", "generate", "xor", "--n-samples", "40")
    assert default.exit_code == 0, default.output
    assert default.stdout == f"wrote {Path('data', 'xor.npz')}: X (40, 2), 2 classes\n"
    chosen = invoke("data", "generate", "xor", "--n-samples", "40", "--out", "elsewhere/x.npz")
    assert chosen.exit_code == 0, chosen.output
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.npz")) == ["data/xor.npz", "elsewhere/x.npz"]
    # An existing file (a pipeline's input, say) is replaced only when asked.
    before = (tmp_path / "data" / "xor.npz").read_bytes()
    again = invoke("data", "generate", "xor", "--n-samples", "60")
    assert again.exit_code == 2
    assert again.stderr.strip().splitlines()[-1] == (
        f"Error: {Path('data', 'xor.npz')} exists; --force replaces it, --out writes elsewhere "
        "(see 'kaslite data generate xor --help')"
    )
    assert (tmp_path / "data" / "xor.npz").read_bytes() == before
    assert invoke("data", "generate", "xor", "--n-samples", "60", "--force").exit_code == 0
    assert (tmp_path / "data" / "xor.npz").read_bytes() != before
