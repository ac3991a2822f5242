"""``kaslite.fit``: kaslite's training loop on your model and data, in process."""

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn

from kaslite.config import ExperimentConfig, build_config, config_to_dict
from kaslite.control.base import Controller
from kaslite.train.data import DataSource
from kaslite.train.grower import _named
from kaslite.train.tracker import Tracker
from kaslite.train.trainer import OptimizerFactory, SchedulerFactory, Trainer


@attrs.frozen
class FitResult:
    """The trained network and what the run measured."""

    model: nn.Module
    metrics: dict[str, Any]
    history: list[dict[str, Any]]  # one row per epoch, as in history.csv
    events: list[dict[str, Any]]  # phase changes, seed transitions, warnings, as in events.jsonl
    run_dir: Path | None


def fit(
    model: nn.Module | None = None,
    data: str | DataSource | None = None,
    *,
    config: ExperimentConfig | Mapping[str, Any] | None = None,
    controller: str | Controller | None = None,
    optimizer: OptimizerFactory | None = None,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    scheduler: SchedulerFactory | None = None,
    scheduler_interval: str | None = None,
    trackers: Mapping[str, Tracker] | Iterable[Tracker] | None = None,
    run_dir: str | Path | None = None,
) -> FitResult:
    """Train ``model`` (default: the network ``config.model`` describes) on ``data`` with growth.

    ``data`` is a dataset name, ``(x_train, y_train, x_val, y_val)`` tensors or
    ``(train_loader, val_loader)``; by default, the dataset ``config`` names
    (spirals). ``config`` (an ExperimentConfig or nested mapping over the
    defaults, e.g. ``{"train": {"adaptation_epochs": 50}}``)
    sets epochs, seeds and the policy. ``optimizer(params)``, ``loss`` and
    ``scheduler(optimizer)`` replace Adam, cross-entropy and ``train.lr_schedule``;
    ``scheduler_interval`` (``"epoch"`` or ``"step"``) says when the scheduler
    steps: by default per step for ``OneCycleLR`` and ``CyclicLR``, per epoch for
    the others; ``ReduceLROnPlateau`` steps per epoch with the validation loss.
    With ``run_dir``, the run writes its files, checkpoints and model.pt there.
    """
    layers: list[dict[str, Any]] = []
    if isinstance(config, ExperimentConfig):
        layers.append(config_to_dict(config))
    elif config is not None:
        layers.append(dict(config))
    if isinstance(data, str):
        layers.append({"data": {"problem": data}})
    if isinstance(controller, str):
        layers.append({"controller": {"name": controller}})
    resolved = build_config(*layers)
    named = _named(trackers)
    folder = None if run_dir is None else Path(run_dir)
    if folder is not None:
        from kaslite.config import save_yaml
        from kaslite.train.trackers.files import RunFilesTracker

        folder.mkdir(parents=True, exist_ok=True)
        save_yaml(resolved, folder / "config.yaml")
        named = {"json": RunFilesTracker(folder), **named}
    trainer = Trainer(
        resolved,
        folder,
        named,
        data=None if data is None or isinstance(data, str) else data,
        model=model,
        optimizer=optimizer,
        loss=loss,
        scheduler=scheduler,
        scheduler_interval=scheduler_interval,
        controller=controller if isinstance(controller, Controller) else None,
    )
    summary = trainer.run()
    return FitResult(trainer.net, summary.metrics, trainer.history, trainer.events, folder)
