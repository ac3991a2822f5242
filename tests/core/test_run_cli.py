"""``kaslite run`` as a user runs it: real files, real signals.

In this process (``kaslite.testing.invoke``) where a subprocess adds nothing; in
a subprocess to prove what a fresh interpreter imports and to kill a run.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kaslite.plugins import BLUEPRINT, CONTROLLER, get_plugin_manager
from kaslite.testing import fake_distribution, invoke

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "--problem", "xor", "--n-samples", "160", "--hidden-dim", "8", "--blueprint-hidden", "16",
    "--warm-up-epochs", "3", "--adaptation-epochs", "6", "--controller", "periodic", "--period", "2",
    "--blend-steps", "3", "--progress-thresh", "0", "--batch-size", "16", "--tracker", "console",
]  # fmt: skip


@pytest.fixture
def env(tmp_path):
    """An environment whose only dataset plugin is kaslite.testing's ``xor``, installed as an entry point."""
    site = fake_distribution(
        tmp_path / "site", name="tiny-data", entry_points={"tiny": "kaslite.testing:tiny_datasets"}
    )
    return {**os.environ, "PYTHONPATH": str(site), "PYTHONUNBUFFERED": "1"}


def kaslite(env, *args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "kaslite", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def installed(kind) -> str:
    """What the subprocess will list: the plugins installed here (kaslite-example adds some)."""
    return ", ".join(sorted(get_plugin_manager().registrations(kind)))


HEAVY_PROBE = """
import atexit, sys
atexit.register(lambda: print("TORCH=" + str("torch" in sys.modules), file=sys.stderr))
sys.argv = ["kaslite", *{args!r}]
from kaslite.cli.main import main
main()
"""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--problem", "spiral"], "Error: unknown dataset 'spiral'; available: "),
        (["--controller", "greedy"], f"Error: unknown controller 'greedy'; available: {installed(CONTROLLER)}"),
        (["--blueprint", "wide"], f"Error: unknown blueprint 'wide'; available: {installed(BLUEPRINT)}"),
        (
            ["--blend_steps", "-5"],
            "Error: invalid seeds.blend_steps = -5: must be an integer >= 1 (flag --blend-steps)",
        ),
        (["--train_frac", "1.5"], "Error: invalid data.train_frac = 1.5: must be in (0.0, 1.0) (flag --train-frac)"),
        (["--lr", "fast"], "Error: Invalid value for '--lr': 'fast' is not a valid float."),
        (["--tracker", "nope"], "Error: unknown tracker 'nope'; available: console, json"),
        (
            ["--n-samples", "0"],
            "Error: invalid dataset 'xor' (plugin tiny-data) parameter n_samples = 0: must be an integer >= 1",
        ),
        (
            ["--blueprint-hidden", "0"],
            "Error: invalid blueprint 'residual' (plugin kaslite-core) parameter hidden = 0: must be an integer >= 1",
        ),
        (["--controller-param", "nothing"], "Error: invalid --controller-param 'nothing': expected KEY=VALUE"),
        (
            ["--seeds-per-layer", "0", "--width-seeds", "0", "--wide-seeds", "0"],
            "Error: invalid model: seeds_per_layer, width_seeds and wide_seeds are all 0, so the network has no seed",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2_before_torch_is_imported(env, tmp_path, args, message):
    code = HEAVY_PROBE.format(args=["run", *TINY, *args, "--output-dir", str(tmp_path / "out")])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    error, probe = proc.stderr.strip().splitlines()
    assert error.startswith(message), proc.stderr
    assert probe == "TORCH=False"  # checked before any work, and before paying for torch
    assert not (tmp_path / "out").exists()


def test_an_unavailable_device_is_one_line_exit_2(tiny_data, tmp_path):
    result = invoke("run", *TINY, "--device", "cuda", "--output-dir", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: invalid train.device = 'cuda': CUDA is not available here; use --device auto or cpu\n"
    )
    assert not (tmp_path / "out").exists()


def test_data_the_trunk_cannot_take_is_one_line_exit_2_and_leaves_no_run(tiny_data, tmp_path):
    result = invoke("run", *TINY, "--trunk", "cnn", "--blueprint", "conv", "--output-dir", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: invalid model.trunk = 'cnn': it takes images")
    assert list((tmp_path / "out").iterdir()) == []


def test_a_reused_run_folder_offers_no_stale_checkpoint(tiny_data, tmp_path):
    # A pipeline removed the run's outputs but not its checkpoint; the new run fails before epoch 1.
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "checkpoint.pt").write_bytes(b"an older run's")
    args = ("--trunk", "cnn", "--blueprint", "conv", "--output-dir", str(tmp_path), "--run-name", "r")
    assert invoke("run", *TINY, *args).exit_code == 2
    assert not (tmp_path / "r").exists()  # nothing of either run is left for --resume to mix up


def test_plain_output_and_quiet(tiny_data, tmp_path):
    result = invoke("run", *TINY, "--output-dir", str(tmp_path), "--run-name", "plain")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    # A tiny network trains on one thread (train.threads 0: chosen by the network's size).
    assert lines[0] == f"starting plain (9 epochs, 1 thread) -> {tmp_path / 'plain'}"
    epochs = [line for line in lines if line.startswith("epoch ") and "/9 phase" in line]
    assert len(epochs) == 9
    # From the second epoch on, each line says how fast the run goes and when it should end.
    # Two deep seeds, six width seeds (two per hidden layer) and a wide one.
    assert re.search(r" seeds \d/9 active \(\d+\.\d epochs/s, ETA \d+:\d\d:\d\d\)$", epochs[1]), epochs[1]
    assert "== phase 2 (adaptation) begins at epoch 4 ==" in lines
    germinated = (
        "epoch 5: seed1_1 germinated: it shadow-trains on its layer's activations, the network's output untouched"
    )
    assert germinated in lines
    blending = [line for line in lines if "seed1_1 starts blending in" in line]
    assert blending == [
        f"{blending[0].split(':')[0]}: seed1_1 starts blending in (alpha 0 -> 1 over 3 steps); output unchanged"
    ]
    assert lines[-1].startswith("plain: val_acc ")

    quiet = invoke("run", *TINY, "--output-dir", str(tmp_path), "--run-name", "quiet", "--quiet")
    assert quiet.exit_code == 0, quiet.output
    (line,) = quiet.stdout.splitlines()
    assert line.startswith("quiet: val_acc ") and "seeds active 2/9" in line


def test_config_yaml_reproduces_the_run_and_flags_override_it(tiny_data, tmp_path):
    first = invoke("run", *TINY, "--output-dir", str(tmp_path), "--run-name", "a", "-q")
    assert first.exit_code == 0, first.output
    config = tmp_path / "a" / "config.yaml"
    again = invoke(
        "run", "--config", str(config), "--output-dir", str(tmp_path), "--run-name", "b", "-q", "--tracker", "console"
    )
    assert again.exit_code == 0, again.output
    assert metrics(tmp_path / "a") == metrics(tmp_path / "b")
    assert (tmp_path / "b" / "config.yaml").read_text() == config.read_text()

    override = invoke(
        "run", "--config", str(config), "--seed", "3", "--output-dir", str(tmp_path), "-q", "--tracker", "console"
    )
    assert override.exit_code == 0, override.output
    (run_dir,) = [p for p in tmp_path.iterdir() if p.name.endswith("seed3")]
    assert "seed: 3" in (run_dir / "config.yaml").read_text()


def test_the_original_script_and_underscore_flags(tiny_data, tmp_path):
    import runpy

    original = [
        "--problem_type", "xor", "--n_samples", "160", "--hidden_dim", "8", "--blueprint_hidden", "16",
        "--warm_up_epochs", "3", "--adaptation_epochs", "6", "--controller", "periodic", "--period", "2",
        "--blend_steps", "3", "--progress_thresh", "0", "--batch_size", "16",
    ]  # fmt: skip
    command = runpy.run_path(str(ROOT / "scripts" / "run_morphogenetic_experiment.py"))["command"]
    args = command([*original, "--output_dir", str(tmp_path), "--run_name", "orig", "--quiet", "--tracker", "console"])
    assert args[0] == "run"
    assert invoke(*args).exit_code == 0
    reference = invoke("run", *TINY, "--output-dir", str(tmp_path), "--run-name", "new", "-q")
    assert reference.exit_code == 0, reference.output
    assert metrics(tmp_path / "orig") == metrics(tmp_path / "new")


def test_resume_after_sigkill_matches_an_uninterrupted_run(env, tmp_path, monkeypatch):
    slow = [*TINY, "--n-samples", "3000", "--adaptation-epochs", "12"]
    monkeypatch.syspath_prepend(env["PYTHONPATH"])  # the subprocess's xor dataset, here too
    whole = invoke("run", *slow, "--output-dir", str(tmp_path), "--run-name", "whole", "-q")
    assert whole.exit_code == 0, whole.output

    run_dir = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "kaslite", "run", *slow, "--output-dir", str(tmp_path), "--run-name", "killed", "-q"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    history = run_dir / "history.csv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if history.exists() and len(history.read_text().splitlines()) >= 6:  # header + 5 epochs
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "metrics.json").exists()

    resumed = invoke("run", "--resume", str(run_dir), "--tracker", "console", "-q")
    assert resumed.exit_code == 0, resumed.output
    assert metrics(run_dir) == metrics(tmp_path / "whole")
    assert (run_dir / "history.csv").read_text() == (tmp_path / "whole" / "history.csv").read_text()
    whole_events = (tmp_path / "whole" / "events.jsonl").read_text()
    assert (run_dir / "events.jsonl").read_text() == whole_events


def test_resume_of_a_folder_that_is_not_a_run(tiny_data, tmp_path):
    result = invoke("run", "--resume", str(tmp_path))
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: cannot resume {str(tmp_path)!r}: it has no config.yaml (is it a kaslite run dir?)\n"
    )


def test_help_explains_drift_and_threads():
    result = invoke("run", "--help")
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert (
        "--drift-warn, --drift_warn FLOAT warn when a blending or active seed's drift, its share of the "
        "network's output, goes above this while val loss is 10% or more above where it was when the seed began "
        "blending "
        "[seeds.drift_warn; default: 0.5]"
    ) in text
    assert "--threads INTEGER torch threads while training; 0: one for a small default MLP" in text


def test_a_name_two_plugins_claim_is_used_qualified_on_the_command_line_and_in_config_files(tiny_data, tmp_path, env):
    from kaslite.testing import TinyDatasets

    get_plugin_manager().register(TinyDatasets(), name="their-plugin")  # an upgrade brought a second "xor"
    flags = [arg for arg in TINY if arg not in ("--n-samples", "160")]
    clash = invoke("run", *flags, "--output-dir", str(tmp_path))
    assert clash.exit_code == 1 and clash.stderr == (
        "Error: dataset 'xor' is registered by both 'their-plugin' and 'tiny'; name one: their-plugin:xor, tiny:xor\n"
    )
    qualified = [*flags, "--problem", "tiny:xor", "--dataset-param", "n_samples=160", "--output-dir", str(tmp_path)]
    ran = invoke("run", *qualified, "--run-name", "flag", "--quiet")
    assert ran.exit_code == 0, ran.stderr
    assert metrics(tmp_path / "flag")["val_acc"] > 0.5

    (tmp_path / "config.yaml").write_text("data:\n  problem: their-plugin:xor\n  params: {n_samples: 160}\n")
    from_file = invoke("run", "--config", str(tmp_path / "config.yaml"), *flags[2:], "--output-dir", str(tmp_path),
                       "--run-name", "file", "--quiet")  # fmt: skip
    assert from_file.exit_code == 0, from_file.stderr
    assert "problem: their-plugin:xor" in (tmp_path / "file" / "config.yaml").read_text()

    # `kaslite plugins` shows the clash and the names that resolve it, for installed distributions.
    module = "from kaslite.testing import TinyDatasets\nplugin = TinyDatasets()\n"
    their = fake_distribution(
        tmp_path / "their-site", name="their-data",
        entry_points={"their-plugin": "their_data:plugin"}, modules={"their_data": module},
    )  # fmt: skip
    env = {**env, "PYTHONPATH": os.pathsep.join([env["PYTHONPATH"], str(their)])}
    listing = kaslite(env, "plugins").stdout
    choose = "choose with their-plugin:xor or tiny:xor"
    assert f"conflict: dataset 'xor' is also registered by 'their-plugin' (their-data 1.0); {choose}" in listing
