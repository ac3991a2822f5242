"""Every installed package together, through the real ``kaslite`` command in a subprocess."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HEAVY = ["torch", "mlflow", "fastapi", "prometheus_client", "tensorboard", "optuna"]
DATASETS = ["clusters", "complex_moons", "digits", "file", "moons", "spheres", "spirals"]


def kaslite(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "kaslite", *args], capture_output=True, text=True, timeout=300, cwd=cwd
    )


@pytest.mark.parametrize("args", [["--help"], ["plugins", "--json"], ["datasets"], ["run", "--help"]])
def test_light_commands_import_nothing_heavy_with_every_plugin(args):
    code = (
        "import sys, json, atexit\n"
        f"atexit.register(lambda: print('HEAVY=' + json.dumps([m for m in {HEAVY!r} if m in sys.modules])))\n"
        f"sys.argv = ['kaslite', *{args!r}]\n"
        "from kaslite.cli.main import main\nmain()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY=[]"


def test_plugins_lists_kaslite_datasets_with_its_datasets():
    proc = kaslite("plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    (entry,) = [e for e in json.loads(proc.stdout) if e["distribution"] == "kaslite-datasets"]
    assert entry["name"] == "datasets" and entry["builtin"] is False and entry["error"] is None
    assert entry["hooks"] == ["kaslite_datasets"]
    assert sorted(entry["registered"]["kaslite_datasets"]) == DATASETS
    assert list(entry["registered"]) == ["kaslite_datasets"]


def test_datasets_json_describes_parameters():
    proc = kaslite("datasets", "--json")
    assert proc.returncode == 0, proc.stderr
    entries = {e["name"]: e for e in json.loads(proc.stdout)}
    assert set(DATASETS) <= set(entries)  # plus those of other installed plugins
    params = {p["name"]: p for p in entries["clusters"]["parameters"]}
    assert params["n_centers"] == {
        "name": "n_centers", "type": "int", "default": 2, "required": False,
        "help": "number of clusters, one class each",
    }  # fmt: skip
    assert params["cluster_std"]["default"] == 1.0
    assert entries["file"]["parameters"][0] == {
        "name": "path", "type": "str", "default": None, "required": True,
        "help": "a .npz (arrays X, y) or .csv (label last) file",
    }  # fmt: skip


def test_data_generate_writes_seeded_arrays(tmp_path):
    out = tmp_path / "data" / "spirals.npz"
    args = ["data", "generate", "spirals", "--n-samples", "300", "--noise", "0.05", "--seed", "4", "--out"]
    proc = kaslite(*args, str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"wrote {out}: X (300, 2), 2 classes"
    with np.load(out, allow_pickle=False) as data:
        assert data["X"].dtype == np.float32 and data["X"].shape == (300, 2)
        assert data["y"].dtype == np.int64 and set(data["y"].tolist()) == {0, 1}
        metadata = json.loads(str(data["metadata"]))
        first = data["X"].copy()
    assert metadata == {
        "problem": "spirals",
        "seed": 4,
        "params": {
            "n_samples": 300,
            "noise": 0.05,
            "rotations": 4.0,
            "input_dim": 2,
            "mirror": False,
            "extra_std": None,
        },
    }
    again = tmp_path / "again.npz"
    assert kaslite(*args, str(again)).returncode == 0
    with np.load(again) as data:
        assert np.array_equal(data["X"], first)
    other = tmp_path / "other.npz"
    assert kaslite(*args[:-3], "--seed", "5", "--out", str(other)).returncode == 0
    with np.load(other) as data:
        assert not np.array_equal(data["X"], first)


def test_generated_file_feeds_the_file_dataset(tmp_path):
    out = tmp_path / "moons.npz"
    assert kaslite("data", "generate", "moons", "--out", str(out)).returncode == 0
    proc = kaslite(
        "run", "--problem", "file", "--path", str(out), "--warm-up-epochs", "2", "--adaptation-epochs", "2",
        "--output-dir", str(tmp_path / "results"), "--run-name", "from-file", "-q", "--tracker", "console",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("from-file: val_acc ")
    metrics = json.loads((tmp_path / "results" / "from-file" / "metrics.json").read_text())
    assert metrics["epochs"] == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["spiral"],
            "Error: unknown dataset 'spiral'; available: "
            "checkerboard, clusters, complex_moons, digits, file, moons, spheres, spirals",
        ),
        (["clusters", "--n-centers", "1"], "Error: invalid clusters.n_centers = 1: "),
        (["moons", "--n_samples", "0"], "Error: invalid moons.n_samples = 0: "),
        (["spirals", "--input-dim", "1"], "Error: invalid spirals.input_dim = 1: "),
        (["file", "--path", "/nonexistent/data.npz"], "Error: invalid file.path = '/nonexistent/data.npz': "),
        (["spirals", "--noise", "loud"], "Error: Invalid value for '--noise': 'loud' is not a valid float."),
    ],
)
def test_data_generate_bad_input_is_one_line_exit_2(tmp_path, args, message):
    proc = kaslite("data", "generate", *args, "--out", str(tmp_path / "x.npz"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), proc.stderr
    assert not (tmp_path / "x.npz").exists()


SHORT_DEFAULT_RUN = ["run", "--warm-up-epochs", "30", "--adaptation-epochs", "60", "--patience", "1"]


def test_default_network_grows_on_spirals(tmp_path):
    """A shortened default run: the seeds germinate, blend and activate without moving the output.

    Its cosine schedule over 90 epochs keeps the val loss falling longer than the full run's
    first 100 epochs do, so the policy judges a plateau after one stale epoch, not three.
    """
    proc = kaslite(*SHORT_DEFAULT_RUN, "--output-dir", str(tmp_path), "--run-name", "short", "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run_dir = tmp_path / "short"
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    transitions = [e for e in events if e["event"] == "seed_transition"]
    assert {e["to_state"] for e in transitions} >= {"training", "blending", "active"}
    assert all(e["output_change"] <= 1e-6 for e in transitions)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["seeds_activated"] >= 1
    assert metrics["params_total"] > metrics["params_trunk"]


def test_kaslite_plot_draws_the_default_run_and_its_never_twin_as_their_events_say(tmp_path):
    """The README's run (shortened as above) with every plugin, its trunk-alone twin, and their picture."""
    from mlflow import MlflowClient

    from kaslite.plot import load_run, png_bytes, run_figure

    for name, extra in {"grown": [], "never": ["--controller", "never"]}.items():
        proc = kaslite(
            *SHORT_DEFAULT_RUN, *extra, "--output-dir", str(tmp_path), "--run-name", name, "-q", cwd=tmp_path
        )
        assert proc.returncode == 0, proc.stderr
    out = tmp_path / "grown-vs-never.png"
    proc = kaslite("plot", str(tmp_path / "grown"), str(tmp_path / "never"), "-o", str(out))
    assert proc.returncode == 0 and proc.stdout == f"wrote {out}\n", proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    grown, never = load_run(tmp_path / "grown"), load_run(tmp_path / "never")
    figure = run_figure([grown, never])
    timeline = next(ax for ax in figure.axes if ax.get_label() == "seeds")
    markers = {artist.get_gid(): artist for artist in timeline.get_lines() if artist.get_gid()}
    names = {"training": "germinate", "blending": "blend start", "active": "active"}
    transitions = [e for e in grown.events if e["event"] == "seed_transition"]
    assert transitions
    for to_state, name in names.items():
        expected = [e["epoch"] for e in transitions if e["to_state"] == to_state]
        assert list(markers[f"transition:grown:{name}"].get_xdata()) == expected
    assert not [gid for gid in markers if gid.startswith("transition:never")]
    accuracy = next(ax for ax in figure.axes if ax.get_label() == "accuracy")
    curves = {line.get_gid(): list(line.get_ydata()) for line in accuracy.get_lines()}
    assert curves["val_acc:grown"] == grown.column("val_acc") and curves["val_acc:never"] == never.column("val_acc")

    # The mlflow tracker logged the same picture of the grown run, in the store the run used (./mlflow.db).
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs(
        [client.get_experiment_by_name("kaslite").experiment_id], "attributes.run_name = 'grown'"
    )
    logged = client.download_artifacts(run.info.run_id, "growth.png", str(tmp_path / "download"))
    assert Path(logged).read_bytes() == png_bytes(run_figure([grown]))
