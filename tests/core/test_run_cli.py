"""``kaslite run`` as a user runs it: a subprocess, real files, real signals."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kaslite.plugins import BLUEPRINT, CONTROLLER, get_plugin_manager
from kaslite.testing import fake_distribution

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "--problem", "xor", "--n-samples", "160", "--hidden-dim", "8", "--blueprint-hidden", "16",
    "--warm-up-epochs", "3", "--adaptation-epochs", "6", "--controller", "periodic", "--period", "2",
    "--blend-steps", "3", "--progress-thresh", "0", "--batch-size", "16",
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
    data = json.loads((run_dir / "metrics.json").read_text())
    data.pop("wall_time_s")
    return data


def installed(kind) -> str:
    """What the subprocess will list: the plugins installed here (kaslite-example adds some)."""
    return ", ".join(sorted(get_plugin_manager().registrations(kind)))


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
        (["--device", "cuda"], "Error: invalid train.device = 'cuda': CUDA is not available here; use --device auto"),
        (["--tracker", "nope"], "Error: unknown tracker 'nope'; available: console, json"),
        (["--n-samples", "0"], "Error: invalid data.params.n_samples = 0: must be an integer >= 1 (flag --n-samples)"),
    ],
)
def test_bad_input_is_one_line_exit_2_before_any_work(env, tmp_path, args, message):
    proc = kaslite(env, "run", *TINY, *args, "--output-dir", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), proc.stderr
    assert not (tmp_path / "out").exists()  # nothing was started


def test_plain_output_and_quiet(env, tmp_path):
    proc = kaslite(env, "run", *TINY, "--output-dir", str(tmp_path), "--run-name", "plain")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"starting plain (9 epochs) -> {tmp_path / 'plain'}"
    assert sum(line.startswith("epoch ") for line in lines) == 9
    assert "== phase 2 (adaptation) begins at epoch 4 ==" in lines
    assert any(line.startswith("** seed1_1: dormant -> training at epoch 5") for line in lines)
    assert lines[-1].startswith("plain: val_acc ")

    quiet = kaslite(env, "run", *TINY, "--output-dir", str(tmp_path), "--run-name", "quiet", "--quiet")
    assert quiet.returncode == 0, quiet.stderr
    (line,) = quiet.stdout.splitlines()
    assert line.startswith("quiet: val_acc ") and "seeds active 2/2" in line


def test_config_yaml_reproduces_the_run_and_flags_override_it(env, tmp_path):
    first = kaslite(env, "run", *TINY, "--output-dir", str(tmp_path), "--run-name", "a", "-q")
    assert first.returncode == 0, first.stderr
    config = tmp_path / "a" / "config.yaml"
    again = kaslite(env, "run", "--config", str(config), "--output-dir", str(tmp_path), "--run-name", "b", "-q")
    assert again.returncode == 0, again.stderr
    assert metrics(tmp_path / "a") == metrics(tmp_path / "b")
    assert (tmp_path / "b" / "config.yaml").read_text() == config.read_text()

    override = kaslite(env, "run", "--config", str(config), "--seed", "3", "--output-dir", str(tmp_path), "-q")
    assert override.returncode == 0, override.stderr
    (run_dir,) = [p for p in tmp_path.iterdir() if p.name.endswith("seed3")]
    assert "seed: 3" in (run_dir / "config.yaml").read_text()


def test_the_original_script_and_underscore_flags(env, tmp_path):
    original = [
        "--problem_type", "xor", "--n_samples", "160", "--hidden_dim", "8", "--blueprint_hidden", "16",
        "--warm_up_epochs", "3", "--adaptation_epochs", "6", "--controller", "periodic", "--period", "2",
        "--blend_steps", "3", "--progress_thresh", "0", "--batch_size", "16",
    ]  # fmt: skip
    script = ROOT / "scripts" / "run_morphogenetic_experiment.py"
    proc = subprocess.run(
        [sys.executable, str(script), *original, "--output_dir", str(tmp_path), "--run_name", "orig", "--quiet"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    reference = kaslite(env, "run", *TINY, "--output-dir", str(tmp_path), "--run-name", "new", "-q")
    assert reference.returncode == 0, reference.stderr
    assert metrics(tmp_path / "orig") == metrics(tmp_path / "new")


def test_resume_after_sigkill_matches_an_uninterrupted_run(env, tmp_path):
    slow = [*TINY, "--n-samples", "3000", "--adaptation-epochs", "12"]
    whole = kaslite(env, "run", *slow, "--output-dir", str(tmp_path), "--run-name", "whole", "-q")
    assert whole.returncode == 0, whole.stderr

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

    resumed = kaslite(env, "run", "--resume", str(run_dir), "-q")
    assert resumed.returncode == 0, resumed.stderr
    assert metrics(run_dir) == metrics(tmp_path / "whole")
    assert (run_dir / "history.csv").read_text() == (tmp_path / "whole" / "history.csv").read_text()
    whole_events = (tmp_path / "whole" / "events.jsonl").read_text()
    assert (run_dir / "events.jsonl").read_text() == whole_events


def test_resume_of_a_folder_that_is_not_a_run(env, tmp_path):
    proc = kaslite(env, "run", "--resume", str(tmp_path))
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == f"Error: cannot resume {str(tmp_path)!r}: it has no config.yaml (is it a kaslite run dir?)"
    )


NOTE_TRACKER = """
    import attrs
    import kaslite
    from kaslite.hookspecs import TrackerSpec
    from kaslite.train import Tracker
    from kaslite.validation import integer_at_least

    @attrs.frozen
    class NoteOptions:
        note_file: str = "note.txt"
        note_every: int = attrs.field(default=1, validator=integer_at_least(1))
        note_loud: bool = False

    class NoteTracker(Tracker):
        def __init__(self, run):
            self.options = run.tracker_options["note"]

        def on_run_end(self, summary):
            with open(self.options.note_file, "w") as f:
                f.write(f"{self.options.note_every} {self.options.note_loud} {summary.metrics['epochs']}")

    @kaslite.hookimpl
    def kaslite_trackers():
        return [TrackerSpec("note", NoteTracker, "writes a note", options_type=NoteOptions)]
"""


def test_tracker_options_become_run_flags(env, tmp_path):
    site = fake_distribution(
        tmp_path / "notes", name="note-tracker", entry_points={"note": "note_tracker"},
        modules={"note_tracker": NOTE_TRACKER},
    )  # fmt: skip
    env = {**env, "PYTHONPATH": f"{env['PYTHONPATH']}:{site}"}
    assert "--note-every" in kaslite(env, "run", "--help").stdout
    note = tmp_path / "out.txt"
    base = ["run", *TINY, "--output-dir", str(tmp_path), "--tracker", "note", "--note-file", str(note)]
    proc = kaslite(env, *base, "--note-every", "3", "--note-loud")
    assert proc.returncode == 0, proc.stderr
    assert note.read_text() == "3 True 9"

    bad = kaslite(env, *base, "--note-every", "0")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "Error: invalid note tracker.note_every = 0: must be an integer >= 1"
