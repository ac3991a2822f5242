"""Helpers for the kaslite-tracking tests: tiny experiments, store copies, the CLI in a subprocess."""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import torch

import kaslite
from kaslite.config import ExperimentConfig, build_config
from kaslite.testing import tiny_datasets

TINY = [
    "--problem", "xor", "--n-samples", "160", "--hidden-dim", "8", "--blueprint-hidden", "16",
    "--warm-up-epochs", "3", "--adaptation-epochs", "6", "--controller", "periodic", "--period", "2",
    "--blend-steps", "3", "--progress-thresh", "0", "--batch-size", "16",
    "--width-seeds", "0", "--lr-schedule", "constant",
]  # fmt: skip
# Two deep seeds and a wide one, at a constant lr: nine epochs of a cosine schedule leave the tiny
# network predicting one class, and the tests need one that tells the classes apart.


def tiny_config(seed: int = 0) -> ExperimentConfig:
    """The same experiment as the TINY flags, for in-process runs."""
    return build_config(
        {},
        {
            "data": {"problem": "xor", "params": {"n_samples": 160}},
            "model": {"hidden_dim": 8, "blueprint_options": {"hidden": 16}, "width_seeds": 0},
            "train": {
                "warm_up_epochs": 3,
                "adaptation_epochs": 6,
                "batch_size": 16,
                "seed": seed,
                "lr_schedule": "constant",
            },
            "controller": {"name": "periodic", "period": 2},
            "seeds": {"blend_steps": 3, "progress_thresh": 0},
        },
    )


def use_tiny_data() -> None:
    """Register the ``xor`` dataset in the process-wide plugin manager."""
    manager = kaslite.get_plugin_manager()
    if not manager.has_plugin("tiny"):
        manager.register(tiny_datasets, name="tiny")


def copy_store(template: Path, folder: Path) -> str:
    """A fresh store at ``folder/mlflow.db`` (the default URI when ``folder`` is the working directory)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(template, folder / "mlflow.db")
    return f"sqlite:///{folder / 'mlflow.db'}"


@attrs.frozen
class TrainedRun:
    """One finished run with every tracker of this package, shared by read-only tests."""

    root: Path
    tracking_uri: str
    run_dir: Path
    summary: Any
    run_id: str
    config: ExperimentConfig

    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def metrics(self) -> dict[str, Any]:
        return json.loads((self.run_dir / "metrics.json").read_text())


def kaslite_cli(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``kaslite ARGS`` in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "kaslite", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def read_events(log_dir: Path) -> Any:
    """A TensorBoard log folder's events, read with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def texts(accumulator: Any, tag: str) -> list[tuple[int, str]]:
    """The text logged under ``tag`` (``SummaryWriter.add_text`` files it as ``tag/text_summary``)."""
    from tensorboard.util.tensor_util import make_ndarray

    return [
        (event.step, make_ndarray(event.tensor_proto).item().decode())
        for event in accumulator.Tensors(f"{tag}/text_summary")
    ]


def conv_net() -> torch.nn.Module:
    """A small Conv1d classifier over (B, 2, 8) signals: a user's module that a model file rebuilds by name."""
    return torch.nn.Sequential(torch.nn.Conv1d(2, 3, 3), torch.nn.Flatten(), torch.nn.Linear(3 * 6, 4))
