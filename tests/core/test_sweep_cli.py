"""``kaslite sweep`` as a user runs it: real files, the real Optuna journal.

In this process (``kaslite.testing.invoke``) unless the test needs a fresh
interpreter or worker processes.
"""

import csv
import json
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from kaslite.testing import fake_distribution, invoke

ROOT = Path(__file__).resolve().parents[2]
# Defaults for every trial; sweep files override them.
TINY = [
    "--problem", "xor", "--n-samples", "64", "--hidden-dim", "4", "--blueprint-hidden", "8",
    "--warm-up-epochs", "2", "--adaptation-epochs", "2", "--controller", "periodic", "--period", "1",
    "--blend-steps", "2", "--progress-thresh", "0", "--batch-size", "16", "--tracker", "json",
]  # fmt: skip
HEADER = [
    "run_id", "run_slug", "num_layers", "lr", "best_acc", "val_acc", "accuracy_dip", "recovery_time",
    "seeds_activated", "total_seeds", "params_total", "wall_time_s", "status", "error",
]  # fmt: skip
SLUG = re.compile(r"^run_\d{3}_[0-9a-f]{8}$")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """An environment whose dataset plugin is kaslite.testing's ``xor``, installed as an entry point."""
    site = fake_distribution(
        tmp_path_factory.mktemp("site"), name="tiny-data", entry_points={"tiny": "kaslite.testing:tiny_datasets"}
    )
    return {**os.environ, "PYTHONPATH": str(site), "PYTHONUNBUFFERED": "1"}


def kaslite(env, *args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "kaslite", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def sweep_file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def summary(sweep_dir: Path) -> tuple[list[str], list[dict[str, str]], dict]:
    with (sweep_dir / "sweep_summary.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        header = list(reader.fieldnames or [])
    return header, rows, json.loads((sweep_dir / "sweep_summary.json").read_text())


def test_a_four_point_grid_with_two_jobs(env, tmp_path):
    grid = sweep_file(tmp_path, "grid.yaml", 'num_layers: [1, 2]\nlr: "0.01,0.03"\n')
    out = tmp_path / "out"
    proc = kaslite(env, "sweep", grid, *TINY, "--lr", "0.5", "--jobs", "2", "--output-dir", str(out))
    assert proc.returncode == 0, proc.stderr
    header, rows, data = summary(out)
    assert header == HEADER
    assert [(r["run_id"], r["num_layers"], r["lr"]) for r in rows] == [
        ("1", "1", "0.01"), ("2", "1", "0.03"), ("3", "2", "0.01"), ("4", "2", "0.03"),
    ]  # fmt: skip
    assert {r["status"] for r in rows} == {"completed"} and {r["error"] for r in rows} == {""}
    for row in rows:
        assert SLUG.match(row["run_slug"]) and row["run_slug"].startswith(f"run_00{row['run_id']}_")
        run_dir = out / row["run_slug"]
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert float(row["val_acc"]) == metrics["val_acc"] and int(row["params_total"]) == metrics["params_total"]
        assert f"lr: {row['lr']}" in (run_dir / "config.yaml").read_text()  # the file's value beat --lr 0.5
        assert len((run_dir / "history.csv").read_text().splitlines()) == 5  # header + 4 epochs
        assert {p.name for p in run_dir.iterdir()} >= {"config.yaml", "metrics.json", "events.jsonl", "model.pt"}
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(r["run_slug"] for r in rows)

    best = max(rows, key=lambda r: (float(r["val_acc"]), -int(r["run_id"])))
    assert data["best"]["run_slug"] == best["run_slug"] and data["counts"] == {"completed": 4}
    assert data["method"] == "grid" and data["parameters"] == ["num_layers", "lr"]
    lines = proc.stdout.strip().splitlines()
    assert sum(re.match(r"^\[\d/4\] completed run_00\d_", line) is not None for line in lines) == 4
    assert lines[-1].startswith(f"grid: best trial: {best['run_slug']} val_acc {float(best['val_acc']):.4f} (")
    assert lines[-1].endswith(f"; 4 trials: 4 completed -> {out / 'sweep_summary.csv'}")


def test_a_four_trial_bayesian_sweep_with_pruning(tiny_data, tmp_path):
    text = (
        "method: bayesian\ntrials: 4\npruning: median\nsampler_seed: 3\n"
        "parameters:\n  lr: {low: 1e-3, high: 1e-1, log: true}\n  num_layers: {choices: [1, 2]}\n"
    )
    out = tmp_path / "out"
    proc = invoke("sweep", sweep_file(tmp_path, "tpe.yaml", text), *TINY, "--output-dir", str(out))
    assert proc.exit_code == 0, proc.output
    header, rows, data = summary(out)
    assert header == [*HEADER[:2], "lr", "num_layers", *HEADER[4:]]
    assert [r["run_id"] for r in rows] == ["1", "2", "3", "4"]
    assert rows[0]["status"] == "completed"  # the pruner needs one finished trial before it judges any
    assert {r["status"] for r in rows} <= {"completed", "pruned"}
    for row in rows:
        assert 1e-3 <= float(row["lr"]) <= 1e-1 and row["num_layers"] in ("1", "2")
        assert (out / row["run_slug"] / "history.csv").is_file()
    completed = [r for r in rows if r["status"] == "completed"]
    best = max(completed, key=lambda r: (float(r["val_acc"]), -int(r["run_id"])))
    assert data["method"] == "bayesian" and data["best"]["run_slug"] == best["run_slug"]
    assert proc.stdout.strip().splitlines()[-1].startswith(f"tpe: best trial: {best['run_slug']} val_acc ")


def test_failing_trials_are_recorded_and_only_an_all_failed_sweep_fails_the_command(tiny_data, tmp_path):
    mixed = sweep_file(tmp_path, "mixed.yaml", "hidden_dim: [4, 0]\nlr: [0.01, 1e30]\n")
    broken = sweep_file(tmp_path, "broken.yaml", "hidden_dim: [0, -1]\n")
    out = tmp_path / "out"
    proc = invoke("sweep", mixed, broken, *TINY, "--output-dir", str(out))
    assert proc.exit_code == 1
    assert proc.stderr.strip().splitlines()[-1] == "Error: every trial failed in sweep broken"

    _, rows, _ = summary(out / "mixed")
    invalid = "invalid model.hidden_dim = 0: must be an integer >= 1"
    assert [(r["hidden_dim"], r["lr"], r["status"], r["error"]) for r in rows] == [
        ("4", "0.01", "completed", ""),
        ("4", "1e+30", "failed", "train_loss is nan at epoch 1 (training diverged)"),
        ("0", "0.01", "failed", invalid),
        ("0", "1e+30", "failed", invalid),
    ]
    _, broken_rows, data = summary(out / "broken")
    assert [r["error"] for r in broken_rows] == [invalid, "invalid model.hidden_dim = -1: must be an integer >= 1"]
    assert data["best"] is None
    assert "broken: no trial completed; 2 trials: 2 failed" in proc.stdout


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lr: [0.1, 0.2\nnum_layers: 2\n", "Error: config file '{path}' is not valid YAML: while parsing a flow"),
        ("lr: [0.1, 0.2]\nlayers: [1, 2]\n", "Error: sweep file '{path}': unknown parameter 'layers'"),
    ],
)
def test_a_malformed_file_is_one_line_exit_2_before_any_trial(tiny_data, tmp_path, text, message):
    good = sweep_file(tmp_path, "good.yaml", "lr: [0.1, 0.2]\n")
    bad = sweep_file(tmp_path, "bad.yaml", text)
    proc = invoke("sweep", good, bad, *TINY, "--output-dir", str(tmp_path / "out"))
    assert proc.exit_code == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(message.format(path=bad)), line
    assert not (tmp_path / "out").exists() and proc.stdout == ""


def test_sqlite_with_several_workers_is_refused_with_the_reason(tiny_data, tmp_path):
    grid = sweep_file(tmp_path, "grid.yaml", "lr: [0.1, 0.2]\n")
    proc = invoke("sweep", grid, "--storage", f"sqlite:///{tmp_path}/s.db", "--jobs", "2")
    assert proc.exit_code == 2
    assert proc.stderr.strip() == (
        "Error: SQLite storage cannot serve 2 workers: concurrent writers deadlock on its single database "
        "lock; use a journal file (--storage study.journal) on one machine, or PostgreSQL "
        "(--storage postgresql://...) across machines"
    )


def test_the_original_script_runs_a_sweep_config(tiny_data, tmp_path):
    original = [
        "--problem_type", "xor", "--n_samples", "64", "--hidden_dim", "4", "--blueprint_hidden", "8",
        "--warm_up_epochs", "2", "--adaptation_epochs", "2", "--batch_size", "16", "--tracker", "json",
    ]  # fmt: skip
    config = sweep_file(tmp_path, "lr_scan.yaml", "shadow_lr: 1e-4,5e-4\n")
    command = runpy.run_path(str(ROOT / "scripts" / "run_morphogenetic_experiment.py"))["command"]
    proc = invoke(*command(["-s", config, *original, "--output_dir", str(tmp_path / "out"), "--quiet"]))
    assert proc.exit_code == 0, proc.output
    _, rows, _ = summary(tmp_path / "out")
    assert [(r["shadow_lr"], r["status"]) for r in rows] == [("0.0001", "completed"), ("0.0005", "completed")]
    (line,) = proc.stdout.strip().splitlines()  # --quiet: the closing line only
    assert line.startswith("lr_scan: best trial: run_00")


def test_the_original_script_reads_sweep_flags_in_every_spelling():
    namespace = runpy.run_path(str(ROOT / "scripts" / "run_morphogenetic_experiment.py"))
    command = namespace["command"]
    assert command(["-s", "a.yaml", "--lr", "0.1"]) == ["sweep", "a.yaml", "--lr", "0.1"]
    assert command(["--sweep_config=a.yaml", "--sweep-config", "b.yaml"]) == ["sweep", "a.yaml", "b.yaml"]
    assert command(["--lr", "0.1"]) == ["run", "--lr", "0.1"]


def test_without_optuna_the_sweep_says_how_to_install_it(tiny_data, tmp_path, monkeypatch):
    grid = sweep_file(tmp_path, "grid.yaml", "lr: [0.1, 0.2]\n")
    monkeypatch.setitem(sys.modules, "optuna", None)  # what an environment without the extra looks like
    proc = invoke("sweep", grid)
    assert proc.exit_code == 2
    assert proc.stderr.strip() == (
        "Error: kaslite sweep needs Optuna, which is not installed; pip install 'kaslite-core[sweep]'"
    )


HEAVY = ["torch", "optuna", "sqlalchemy", "mlflow"]
PROBE = """
import atexit, json, sys
atexit.register(lambda: print("HEAVY=" + json.dumps(sorted(m for m in {heavy} if m in sys.modules)), file=sys.stderr))
sys.argv = ["kaslite", *{args}]
from kaslite.cli.main import main
main()
"""


@pytest.mark.parametrize("args", [["--help"], ["sweep", "--help"]])
def test_help_imports_neither_torch_nor_optuna(args):
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY, args=args)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "HEAVY=[]"
    assert ("sweep" in proc.stdout) and ("--storage" in proc.stdout) == (args[0] == "sweep")


def test_a_sweep_varies_controller_blueprint_and_dataset_parameters(tiny_data, tmp_path):
    import kaslite
    from kaslite.testing import invoke

    from .test_readme_policy import readme_policy_module

    kaslite.get_plugin_manager().register(readme_policy_module(), name="my-policy")
    text = (
        "controller: deepest-first\ncontroller_param.wait: [1, 2]\n"
        "blueprint_param.hidden: [4, 6]\ndataset_param.noise: 0.2\n"
    )
    out = tmp_path / "out"
    result = invoke("sweep", sweep_file(tmp_path, "plugins.yaml", text), *TINY, "-q", "--output-dir", str(out))
    assert result.exit_code == 0, result.output
    _, rows, _ = summary(out)
    seen = set()
    for row in rows:
        assert row["status"] == "completed", row["error"]
        config = (out / row["run_slug"] / "config.yaml").read_text()
        seen.add((row["controller_param.wait"], row["blueprint_param.hidden"]))
        assert f"options:\n    wait: {row['controller_param.wait']}\n" in config
        assert f"blueprint_options:\n    hidden: {row['blueprint_param.hidden']}\n" in config
        assert "noise: 0.2" in config
    assert seen == {("1", "4"), ("1", "6"), ("2", "4"), ("2", "6")}


def test_a_plugin_parameter_without_its_prefix_gets_a_hint(tiny_data, tmp_path):
    import kaslite
    from kaslite.testing import invoke

    from .test_readme_policy import readme_policy_module

    kaslite.get_plugin_manager().register(readme_policy_module(), name="my-policy")
    path = sweep_file(tmp_path, "typo.yaml", "wait: [1, 2]\n")
    result = invoke("sweep", path, *TINY, "--output-dir", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: sweep file '{path}': unknown parameter 'wait' (did you mean controller_param.wait?); parameters "
        "are kaslite run's flag names, and a plugin's are dataset_param.NAME, controller_param.NAME, "
        "blueprint_param.NAME\n"
    )


def test_a_sweep_names_a_clashing_controller_by_its_plugin(tiny_data, tmp_path):
    import kaslite
    from kaslite.testing import invoke

    from .test_readme_policy import readme_policy_module

    kaslite.get_plugin_manager().register(readme_policy_module(), name="my-policy")
    kaslite.get_plugin_manager().register(readme_policy_module(), name="their-policy")  # the same name, twice
    text = "controller: [my-policy:deepest-first, their-policy:deepest-first]\ncontroller_param.wait: 1\n"
    out = tmp_path / "out"
    result = invoke("sweep", sweep_file(tmp_path, "qualified.yaml", text), *TINY, "-q", "--output-dir", str(out))
    assert result.exit_code == 0, result.output
    _, rows, _ = summary(out)
    assert [(row["controller"], row["status"]) for row in rows] == [
        ("my-policy:deepest-first", "completed"), ("their-policy:deepest-first", "completed")
    ]  # fmt: skip
