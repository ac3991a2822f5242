"""The plugin as kaslite sees it: what it registers, its flags, and that it stays light to import."""

import os
import subprocess
import sys

import attrs
import pytest

import kaslite_tracking.plugin
from kaslite.errors import ConfigError
from kaslite.plugins import COMMAND, MODEL_SOURCE, TRACKER, get_plugin_manager
from kaslite.testing import plugin_manager
from kaslite.train.runner import tracker_names, tracker_options
from kaslite_tracking.options import MlflowOptions, TensorBoardOptions

HEAVY = ("mlflow", "tensorboard", "torch")


def test_registers_two_default_trackers_tensorboard_first():
    manager = plugin_manager(kaslite_tracking.plugin)
    trackers = manager.registrations(TRACKER)
    assert list(trackers) == ["tensorboard", "mlflow"]
    assert [spec.default for spec in trackers.values()] == [True, True]
    assert trackers["tensorboard"].options_type is TensorBoardOptions
    assert trackers["mlflow"].options_type is MlflowOptions
    assert list(manager.registrations(MODEL_SOURCE)) == ["models"]
    commands = manager.collected(COMMAND).records
    assert list(commands) == ["registry"]
    assert sorted(commands["registry"].commands) == [
        "add", "best", "list", "production", "promote", "register", "rollback"
    ]  # fmt: skip


def test_installed_through_the_entry_point_and_on_by_default():
    manager = get_plugin_manager()
    assert manager.origins["tracking"].distribution == "kaslite-tracking"
    default = tracker_names()
    assert {"console", "json", "tensorboard", "mlflow"} <= set(default)
    assert "mlflow" not in tracker_names(without=["mlflow"])
    assert tracker_names(["json", "mlflow"]) == ["json", "mlflow"]


def test_options_defaults_and_validation():
    options = tracker_options(["tensorboard", "mlflow"], {})
    assert options == {"tensorboard": TensorBoardOptions("runs"), "mlflow": MlflowOptions()}
    assert attrs.asdict(MlflowOptions()) == {
        "experiment": "kaslite",
        "tracking_uri": "",
        "model_name": "kaslite",
        "register": True,
        "register_best": False,
        "register_threshold": 0.70,
        "staging_threshold": 0.90,
    }
    given = tracker_options(["mlflow"], {"register": "false", "staging_threshold": "0.95", "note": 1})
    assert given["mlflow"] == MlflowOptions(register=False, staging_threshold=0.95)
    with pytest.raises(ConfigError) as bad:
        tracker_options(["mlflow"], {"register_threshold": 1.5})
    assert str(bad.value) == "invalid mlflow tracker.register_threshold = 1.5: must be in [0.0, 1.0]"
    with pytest.raises(ConfigError) as empty:
        tracker_options(["mlflow"], {"experiment": ""})
    assert str(empty.value).startswith("invalid mlflow tracker.experiment = ''")


def heavy_imports(*args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``kaslite ARGS`` with ``-X importtime``; the heavy modules it imported."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "kaslite", *args], capture_output=True, text=True, timeout=120
    )
    modules = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    return proc, [name for name in modules if name.split(".")[0] in HEAVY]


@pytest.mark.parametrize("args", [["--help"], ["plugins"]])
def test_help_and_plugins_import_neither_mlflow_tensorboard_nor_torch(args):
    proc, heavy = heavy_imports(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert heavy == []
    if args == ["--help"]:
        assert "registry" in proc.stdout
    else:
        assert "tracking (kaslite-tracking 0.1.0)" in proc.stdout
        assert "    kaslite_trackers: tensorboard, mlflow" in proc.stdout
        assert "    kaslite_model_sources: models" in proc.stdout
        assert "    kaslite_commands: registry" in proc.stdout


def test_run_help_lists_the_tracker_flags():
    proc = subprocess.run([sys.executable, "-m", "kaslite", "run", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for flag in (
        "--tracking-uri",
        "--experiment",
        "--model-name",
        "--register / --no-register",
        "--register-threshold",
        "--staging-threshold",
        "--tensorboard-dir",
    ):
        assert flag in proc.stdout


# Each of these turns MLflow's telemetry off by itself; the test removes them so only kaslite can.
TELEMETRY_OFF_SIGNALS = ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK", "PYTEST_CURRENT_TEST", "CI", "GITHUB_ACTIONS")
TELEMETRY_CLIENT = (
    "import os, kaslite_tracking, mlflow; from mlflow.telemetry import get_telemetry_client; "
    "print(get_telemetry_client() is None, os.environ.get('MLFLOW_DISABLE_TELEMETRY'))"
)


@pytest.mark.parametrize(("given", "expected"), [(None, "True true"), ("false", "False false")])
def test_mlflow_telemetry_is_off_unless_the_user_turns_it_on(tmp_path, given, expected):
    env = {key: value for key, value in os.environ.items() if key not in TELEMETRY_OFF_SIGNALS}
    env["XDG_CONFIG_HOME"] = str(tmp_path)  # where MLflow would write its installation id
    if given is not None:
        env["MLFLOW_DISABLE_TELEMETRY"] = given
        # The user's own choice: telemetry on. Its config fetch fails here (no route to the host), harmlessly.
    proc = subprocess.run(
        [sys.executable, "-c", TELEMETRY_CLIENT], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == expected.split()
    assert (tmp_path / "mlflow" / "telemetry.json").exists() is (given == "false")
