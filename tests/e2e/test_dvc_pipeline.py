"""The DVC pipeline as a newcomer uses it, in a fresh clone of the repository."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # kaslite and dvc live beside this interpreter
METRICS = "pipeline/train/metrics.json"


def sh(cwd: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def git_status(clone: Path) -> str:
    return sh(clone, "git", "status", "--porcelain", "--untracked-files=all")


def shown_metrics(node: object) -> list[dict]:
    """Every metrics.json entry in ``dvc exp show --json`` (workspace, commits, experiments)."""
    found = []
    if isinstance(node, dict):
        if METRICS in node and isinstance(node[METRICS], dict):
            found.append(node[METRICS])
        for value in node.values():
            found += shown_metrics(value)
    elif isinstance(node, list):
        for value in node:
            found += shown_metrics(value)
    return found


def test_repro_is_cached_clean_tracks_params_and_supports_experiments(tmp_path):
    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "--quiet", str(ROOT), str(clone))
    sh(clone, "git", "config", "user.email", "ci@kaslite.test")
    sh(clone, "git", "config", "user.name", "ci")

    first = sh(clone, "dvc", "repro")
    assert "Running stage 'generate_data'" in first and "Running stage 'train'" in first
    assert "epoch 320/320 phase 2" in first and "epochs/s, ETA" in first  # the stage shows its progress
    metrics = json.loads((clone / METRICS).read_text())
    assert metrics["epochs"] == 320 and 0.0 <= metrics["val_acc"] <= 1.0
    assert "wall_time_s" not in metrics  # measured, so in timing.json, which nothing tracks
    # Trained on the generated file, never on a regenerated dataset.
    config = yaml.safe_load((clone / "pipeline/train/config.yaml").read_text())
    assert config["data"]["problem"] == "file"
    assert config["data"]["params"] == {"path": "data/spirals.npz"}
    # What the first run produced is recorded (on this machine it reproduces the committed files exactly).
    sh(clone, "git", "add", "-A")
    sh(clone, "git", "commit", "--quiet", "--allow-empty", "-m", "dvc repro")

    second = sh(clone, "dvc", "repro")
    assert "Running stage" not in second
    assert git_status(clone) == ""

    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["train"]["lr"] = 0.005
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    third = sh(clone, "dvc", "repro")
    assert "Running stage 'train'" in third and "Running stage 'generate_data'" not in third
    sh(clone, "git", "add", "-A")
    sh(clone, "git", "commit", "--quiet", "-m", "lr 0.005")

    # --temp: the experiment runs beside the workspace, which it leaves as it was.
    sh(clone, "dvc", "exp", "run", "--temp", "-S", "train.lr=0.01")
    assert git_status(clone) == ""
    experiments = json.loads(sh(clone, "dvc", "exp", "show", "--json"))
    shown = shown_metrics(experiments)
    assert len(shown) == 3  # the workspace, the commit and the experiment
    assert all("error" not in entry and 0.0 <= entry["data"]["val_acc"] <= 1.0 for entry in shown), shown
    assert "0.01" in json.dumps(experiments)
    assert "val_acc" in sh(clone, "dvc", "metrics", "show", "--json")
    sh(clone, "dvc", "plots", "show", "-o", str(tmp_path / "plots"))
    assert (tmp_path / "plots" / "index.html").exists()
