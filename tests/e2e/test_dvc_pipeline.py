"""The DVC pipeline as a newcomer uses it, in a fresh clone of the repository."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # kaslite and dvc live beside this interpreter


def sh(cwd: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def test_repro_is_cached_tracks_params_and_supports_experiments(tmp_path):
    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "--quiet", str(ROOT), str(clone))
    sh(clone, "git", "config", "user.email", "ci@kaslite.test")
    sh(clone, "git", "config", "user.name", "ci")

    first = sh(clone, "dvc", "repro")
    assert "Running stage 'generate_data'" in first and "Running stage 'train'" in first
    metrics = json.loads((clone / "results/dvc/train/metrics.json").read_text())
    assert metrics["epochs"] == 320 and 0.0 <= metrics["val_acc"] <= 1.0
    # Trained on the generated file, never on a regenerated dataset.
    config = yaml.safe_load((clone / "results/dvc/train/config.yaml").read_text())
    assert config["data"]["problem"] == "file"
    assert config["data"]["params"] == {"path": "data/spirals.npz"}

    second = sh(clone, "dvc", "repro")
    assert "Running stage" not in second

    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["train"]["lr"] = 0.005
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    third = sh(clone, "dvc", "repro")
    assert "Running stage 'train'" in third and "Running stage 'generate_data'" not in third

    sh(clone, "git", "add", "-A")
    sh(clone, "git", "commit", "--quiet", "-m", "lr 0.005")
    sh(clone, "dvc", "exp", "run", "-S", "train.lr=0.01")
    experiments = json.loads(sh(clone, "dvc", "exp", "show", "--json"))
    assert "0.01" in json.dumps(experiments)
    shown = json.loads(sh(clone, "dvc", "metrics", "show", "--json"))
    assert "val_acc" in json.dumps(shown)
    sh(clone, "dvc", "plots", "show", "-o", str(tmp_path / "plots"))
    assert (tmp_path / "plots" / "index.html").exists()
