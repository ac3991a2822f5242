"""kaslite's own training loop: one user of :class:`kaslite.Grower`, with phases, checkpoints and resume.

Phase 1 trains the network with every seed dormant. Phase 2 (optionally with
the hidden trunk frozen, ``freeze_trunk``) lets the growth policy decide after
each epoch. The loop is an ordinary PyTorch loop: one optimizer built once
over every parameter, an optional LR scheduler stepped per epoch, and
``grower.step()`` / ``grower.epoch_end()``. One ``train.seed`` drives data,
initialisation and shuffling; with a run directory, checkpoints (every few
seconds, and the last finished epoch when a run fails) let a stopped or killed
run resume to the same result.
"""

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn

from kaslite.config import ExperimentConfig, config_to_dict
from kaslite.config.schema import check_growable
from kaslite.control.base import Controller
from kaslite.errors import ConfigError, InvalidValue, first_line
from kaslite.models import save_model
from kaslite.models.signature import EXAMPLE_ROWS
from kaslite.nn import MorphogeneticNet
from kaslite.nn.modules import find_seeds
from kaslite.plot.tracking import start_drawing
from kaslite.train import distributed
from kaslite.train.data import Batches, DataSource, TensorBatches, make_batches
from kaslite.train.events import (
    EpochRecord,
    GrowthDecision,
    ModelReady,
    PhaseChange,
    RunContext,
    RunFailed,
    RunSummary,
    RunWarning,
    SeedTransition,
    event_dict,
)
from kaslite.train.grower import Grower
from kaslite.train.summary import final_metrics
from kaslite.train.threads import training_threads
from kaslite.train.tracker import Tracker, TrackerGroup

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
# A checkpoint's write cost a small network a fifth of its training time when made every epoch (10-20 ms
# each): written at most this often, a killed process loses at most this many seconds of training.
CHECKPOINT_EVERY_S = 5.0

logger = logging.getLogger("kaslite.trainer")


def _copied(state: Any) -> Any:
    """``state`` with every tensor cloned and every dict, list and tuple copied: a snapshot that training
    does not change."""
    if isinstance(state, torch.Tensor):
        return state.detach().clone()
    if isinstance(state, dict):
        return {key: _copied(value) for key, value in state.items()}
    if isinstance(state, (list, tuple)):
        values = [_copied(value) for value in state]
        if isinstance(state, list):
            return values
        return type(state)(*values) if hasattr(state, "_fields") else tuple(values)  # namedtuples too
    return state


OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], Any]


def default_optimizer(params: Iterable[Any], lr: float, device: torch.device) -> torch.optim.Optimizer:
    """kaslite's optimizer: Adam, fused where PyTorch has a fused kernel (CPU and CUDA).

    A small network's step is mostly per-tensor overhead, and a grown network has
    many small tensors: fused Adam steps one three times faster than foreach on CPU.
    """
    if device.type in ("cpu", "cuda"):
        return torch.optim.Adam(params, lr=lr, fused=True)
    return torch.optim.Adam(params, lr=lr, foreach=True)


def clip_grad_norm(params: list[nn.Parameter], max_norm: float) -> None:
    """``nn.utils.clip_grad_norm_(params, max_norm, foreach=True)``, the same arithmetic, for parameters
    that share one device and dtype, without its grouping of them by device and dtype on every call
    (a small network's step spent a tenth of its time there)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, (max_norm / (total + 1e-6)).clamp_(max=1.0))


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for an absent device is a one-line error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("invalid train.device = 'cuda': CUDA is not available here; use --device auto or cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("invalid train.device = 'mps': MPS is not available here; use --device auto or cpu")
    return torch.device(name)


def check_inputs(config: ExperimentConfig, batches: Batches) -> None:
    """Refuse, before any training, a default network's trunk that cannot take the data's samples."""
    trunk, shape = config.model.trunk, "×".join(map(str, batches.sample_shape))
    if trunk == "cnn" and len(batches.sample_shape) != 3:
        raise InvalidValue(
            "model.trunk",
            trunk,
            f"it takes images (channels×height×width per sample) and the data's samples are {shape}; "
            "use the mlp trunk, or image data (digits: --dataset-param images=true)",
        )
    if trunk == "mlp" and len(batches.sample_shape) != 1:
        raise InvalidValue(
            "model.trunk", trunk, f"it takes flat features and the data's samples are {shape}; use --trunk cnn"
        )


def build_net(config: ExperimentConfig, input_dim: int, num_classes: int) -> MorphogeneticNet:
    """The network a config describes, before training."""
    return MorphogeneticNet.from_config(input_dim, num_classes, config.model, config.seeds)


class _Recorder(Tracker):
    """Keeps the run's history rows and events, for metrics.json and checkpoints."""

    def __init__(self) -> None:
        self.history: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []

    def on_epoch_end(self, record: EpochRecord) -> None:
        self.history.append(record.row())

    def on_phase_change(self, event: PhaseChange) -> None:
        self.events.append(event_dict(event))

    def on_seed_transition(self, event: SeedTransition) -> None:
        self.events.append(event_dict(event))

    def on_growth_decision(self, event: GrowthDecision) -> None:
        self.events.append(event_dict(event))

    def on_warning(self, event: RunWarning) -> None:
        self.events.append(event_dict(event))


SCHEDULER_INTERVALS = ("epoch", "step")
# Schedules PyTorch defines per batch: stepped once an epoch they would barely move.
PER_BATCH_SCHEDULERS = (torch.optim.lr_scheduler.OneCycleLR, torch.optim.lr_scheduler.CyclicLR)


def _steps_per_batch(scheduler: Any, interval: str | None) -> bool:
    """Whether ``scheduler`` steps after each optimizer step (else once per epoch)."""
    if scheduler is None:
        return False
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        if interval == "step":
            raise ConfigError(
                "scheduler_interval='step' cannot drive ReduceLROnPlateau: it steps with the validation "
                "loss, once per epoch; leave scheduler_interval unset or 'epoch'"
            )
        return False
    if interval is not None:
        return interval == "step"
    return isinstance(scheduler, PER_BATCH_SCHEDULERS)


class Trainer:
    """Runs one experiment, into ``run_dir`` when given (files, checkpoints, resume).

    ``data`` overrides ``config.data``: a :class:`~kaslite.train.data.SplitData`,
    ``(x_train, y_train, x_val, y_val)`` tensors, or ``(train_loader, val_loader)``.
    ``model`` replaces the network ``config.model`` describes (it must hold
    :class:`~kaslite.nn.SentinelSeed` modules). ``optimizer(params)``,
    ``loss`` and ``scheduler(optimizer)`` replace Adam at ``train.lr``,
    cross-entropy and ``train.lr_schedule``. ``scheduler_interval`` says when
    the scheduler steps: ``"epoch"`` (after validation) or ``"step"`` (after
    each optimizer step), as in PyTorch Lightning; by default per step for
    the schedules PyTorch defines per batch (``OneCycleLR``, ``CyclicLR``),
    per epoch for the others. ``ReduceLROnPlateau`` steps per epoch with the
    validation loss. ``device``: the one ``config.train.device`` resolved to, when the caller has
    resolved it already (``run_experiment`` does, before any work starts).
    """

    def __init__(
        self,
        config: ExperimentConfig,
        run_dir: Path | None = None,
        trackers: Mapping[str, Tracker] | None = None,
        run_name: str = "",
        context: RunContext | None = None,
        *,
        data: DataSource | None = None,
        model: nn.Module | None = None,
        optimizer: OptimizerFactory | None = None,
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str | None = None,
        controller: Controller | None = None,
        device: torch.device | None = None,
    ) -> None:
        if scheduler_interval not in (None, *SCHEDULER_INTERVALS):
            raise ConfigError(
                f"invalid scheduler_interval = {scheduler_interval!r}: must be one of {', '.join(SCHEDULER_INTERVALS)}"
            )
        self.config = config
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.run_name = run_name or (self.run_dir.name if self.run_dir else "run")
        # What the runner knows about the run (tracker options, labels, quiet); progress is added to it.
        self.base_context = context
        self.recorder = _Recorder()
        self.trackers = TrackerGroup({"_recorder": self.recorder, **(trackers or {})})
        self.device = device if device is not None else resolve_device(config.train.device)
        self._sum_dtype = torch.float32 if self.device.type == "mps" else torch.float64
        self._data_source = data
        self._model = model
        self._optimizer_factory = optimizer
        self._scheduler_factory = scheduler
        self._scheduler_interval = scheduler_interval
        self._controller = controller
        self.loss_fn = loss if loss is not None else nn.CrossEntropyLoss()
        self.elapsed = 0.0
        self.saved_epoch = 0  # the epoch the checkpoint in run_dir holds
        # The last epoch's training state, copied (epoch, history rows, events, state), and when the
        # checkpoint was last written.
        self._snapshot: tuple[int, int, int, dict[str, Any]] | None = None
        self._written_at = -math.inf
        self.epoch_under_way = 1  # the epoch being trained (or judged) now
        self.threads = 0  # torch threads, chosen by _setup once the network's size is known
        self._frozen = False

    # -- setup ---------------------------------------------------------------

    def _setup(self) -> None:
        cfg = self.config
        if self._model is None:
            check_growable(cfg.model)  # before the data are made
        torch.manual_seed(cfg.train.seed)
        self.batches: Batches = make_batches(self._data_source, cfg, self.device)
        if self._model is None:
            check_inputs(cfg, self.batches)
            net = build_net(cfg, self.batches.input_dim, self.batches.num_classes)
            if cfg.data.standardize and isinstance(self.batches, TensorBatches):
                net.input_scale.fit(self.batches.data.x_train)
            self.net: nn.Module = net
        else:
            self.net = self._model
            if cfg.train.freeze_trunk and not hasattr(self.net, "hidden_trunk"):
                raise ConfigError(
                    f"train.freeze_trunk is true but {type(self.net).__name__} has no hidden_trunk() saying "
                    "which layers to freeze; set train.freeze_trunk=false or define hidden_trunk()"
                )
        self.net.to(self.device)
        # Under torchrun the training forward goes through DDP (it averages the gradients); validation,
        # growth and saving use the network itself. Dormant children get no gradient: find_unused_parameters.
        self.model: nn.Module = self.net
        if distributed.active():
            self.model = nn.parallel.DistributedDataParallel(self.net, find_unused_parameters=True)
        # One optimizer over every parameter, children included: dormant children get no
        # gradient, so growth never rebuilds it and a scheduler covers every parameter.
        make_optimizer = self._optimizer_factory or (
            lambda params: default_optimizer(params, cfg.train.lr, self.device)
        )
        self.optimizer = make_optimizer(self._param_groups())
        self._trained = list(self.net.parameters())  # what train.grad_clip clips (dormant children: no grad)
        self._clip: Callable[[list[nn.Parameter], float], Any] = clip_grad_norm
        if len({(p.device, p.dtype) for p in self._trained}) > 1:  # PyTorch's own groups them
            self._clip = partial(nn.utils.clip_grad_norm_, foreach=True)
        self.scheduler = self._make_scheduler()
        self._scheduler_per_step = _steps_per_batch(self.scheduler, self._scheduler_interval)
        self.grower = Grower(
            self.net,
            self._controller or cfg.controller.name,
            controller_config=cfg.controller,
            warm_up_epochs=cfg.train.warm_up_epochs,
            trackers=self.trackers,
            probe=self.batches.probe(cfg.train.probe_size),
            score_batch=self.batches.score_batch(cfg.train.probe_size),
            loss_fn=self.loss_fn,
            optimizer=self.optimizer,
        )
        # Parameters × rows measures a step's work for kaslite's own MLP only (a CNN's or a user's
        # network's is not in its parameter count): automatic keeps torch's setting for the others.
        if cfg.train.threads or (self._model is None and cfg.model.trunk == "mlp"):
            params = sum(p.numel() for p in self.net.parameters())
            self.threads = training_threads(cfg.train.threads, params, cfg.train.batch_size)
        else:
            self.threads = torch.get_num_threads()
        if distributed.active():  # the ranks share the machine's cores
            self.threads = max(1, min(self.threads, (os.cpu_count() or 1) // distributed.world_size()))
        torch.set_num_threads(self.threads)

    def _param_groups(self) -> Any:
        """Every parameter; what seeds grow in a group of its own when ``train.growth_lr_scale`` is not 1."""
        scale = self.config.train.growth_lr_scale
        if scale == 1.0:
            return self.net.parameters()
        grown = {id(p): p for seed in find_seeds(self.net) for p in seed.child.parameters()}
        rest = [p for p in self.net.parameters() if id(p) not in grown]
        return [{"params": rest}, {"params": list(grown.values()), "lr": self.config.train.lr * scale}]

    def _make_scheduler(self) -> Any:
        """The user's scheduler, else the one ``train.lr_schedule`` names (stepped once per epoch)."""
        if self._scheduler_factory is not None:
            return self._scheduler_factory(self.optimizer)
        if self.config.train.lr_schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=self.total_epochs)
        return None

    @property
    def total_epochs(self) -> int:
        return self.config.train.warm_up_epochs + self.config.train.adaptation_epochs

    @property
    def epoch(self) -> int:
        """Epochs finished (0 before setup)."""
        grower: Grower | None = self.__dict__.get("grower")  # made by _setup()
        return 0 if grower is None else grower.epoch

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.recorder.history

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.recorder.events

    # -- checkpoints -----------------------------------------------------------

    def _save_checkpoint(self) -> None:
        """After each epoch: keep a copy of the training state in memory, and write it to ``run_dir`` after the
        first epoch, the last, and whenever :data:`CHECKPOINT_EVERY_S` have passed since the last write. A
        failure (an exception, Ctrl-C) writes the last epoch's copy as it stops, so only a killed process
        loses epochs, at most that many seconds of them; resuming replays them to the same values."""
        if self.run_dir is None or not distributed.is_writer():
            self.saved_epoch = self.epoch if self.run_dir is not None else self.saved_epoch
            return
        self._snapshot = (
            self.epoch,
            len(self.recorder.history),
            len(self.recorder.events),
            _copied(
                {
                    "elapsed": self.elapsed,
                    "model": self.net.state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
                    "grower": self.grower.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "data": self.batches.state_dict(),
                }
            ),
        )
        due = time.monotonic() - self._written_at >= CHECKPOINT_EVERY_S
        if due or self.epoch in (1, self.total_epochs):
            self._write_checkpoint()

    def _write_checkpoint(self) -> None:
        """Write the last epoch's copy (see :meth:`_save_checkpoint`), unless it is written already."""
        if self._snapshot is None or self._snapshot[0] == self.saved_epoch or self.run_dir is None:
            return
        epoch, rows, events, state = self._snapshot
        payload = {
            **state,
            # As JSON text: pickling hundreds of small dicts object by object cost more than the tensors.
            "history": json.dumps(self.recorder.history[:rows]),
            "events": json.dumps(self.recorder.events[:events]),
        }
        tmp = self.run_dir / (CHECKPOINT + ".tmp")
        torch.save(payload, tmp)
        tmp.replace(self.run_dir / CHECKPOINT)  # atomic: a kill leaves the old or the new one
        self.saved_epoch = epoch
        self._written_at = time.monotonic()

    def _load_checkpoint(self, path: Path) -> None:
        # On the CPU: RNG states must stay there; the load_state_dict calls move the rest.
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.net.load_state_dict(state["model"])
        self.grower.load_state_dict(state["grower"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
            if isinstance(self.scheduler, torch.optim.lr_scheduler.CosineAnnealingLR) and not self._scheduler_factory:
                # A resume may lengthen the run: the configured schedule then decays over the new length.
                self.scheduler.T_max = self.total_epochs
        self.elapsed = float(state["elapsed"])
        torch.set_rng_state(state["torch_rng"])
        self.batches.load_state_dict(state["data"])
        # JSON text since checkpoints were made cheaper; lists in older ones.
        history, events = state["history"], state["events"]
        self.recorder.history = json.loads(history) if isinstance(history, str) else list(history)
        self.recorder.events = json.loads(events) if isinstance(events, str) else list(events)
        self.saved_epoch = self.epoch

    # -- the loop ----------------------------------------------------------------

    def _freeze_trunk(self) -> None:
        if self._frozen or self.grower.phase != 2 or not self.config.train.freeze_trunk:
            return
        self._frozen = True
        for module in self.net.hidden_trunk():  # type: ignore[operator]
            module.requires_grad_(False)

    def _train_epoch(self) -> float:
        self.net.train()
        total: torch.Tensor | float = 0.0
        count = 0
        for x, y in self.batches.train():
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss_fn(self.model(x), y)
            loss.backward()
            if self.config.train.grad_clip:
                self._clip(self._trained, self.config.train.grad_clip)
            self.optimizer.step()
            if self._scheduler_per_step:
                self.scheduler.step()
            self.grower.step()
            # Summed as a tensor and read once per epoch: no device sync per step (float64 where the
            # device has it; MPS has not).
            total = total + loss.detach().to(self._sum_dtype) * x.shape[0]
            count += x.shape[0]
        summed, samples = distributed.summed(self.device, float(total), count)  # every rank's share
        return summed / max(samples, 1)

    @torch.no_grad()
    def _validate(self) -> tuple[float, float]:
        self.net.eval()
        losses: list[tuple[float, int]] = []
        correct, classify = 0, True
        for x, y in self.batches.val():
            out = self.net(x)
            losses.append((float(self.loss_fn(out, y)), x.shape[0]))
            classify = classify and out.ndim == 2 and not y.is_floating_point()
            if classify:
                correct += int((out.argmax(dim=1) == y).sum())
        count = sum(n for _, n in losses)
        if count == 0:
            raise ConfigError("the validation data is empty; give the run some validation samples")
        # One batch (tensors in memory): its mean loss as it is, with no round trip through a sum.
        loss = losses[0][0] if len(losses) == 1 else sum(value * n for value, n in losses) / count
        return loss, correct / count if classify else math.nan

    def _run_epoch(self) -> None:
        started = time.perf_counter()
        self.epoch_under_way = self.epoch + 1
        self._freeze_trunk()
        train_loss = self._train_epoch()
        val_loss, val_acc = self._validate()
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(val_loss)
        elif self.scheduler is not None and not self._scheduler_per_step:
            self.scheduler.step()
        try:
            self.grower.epoch_end(train_loss=train_loss, val_loss=val_loss, val_acc=val_acc)
        finally:
            self.elapsed += time.perf_counter() - started
        self._save_checkpoint()

    def _write_last_epoch(self) -> None:
        """On the way out of a failed run: the checkpoint of the last finished epoch, if not written yet."""
        try:
            self._write_checkpoint()
        except Exception as exc:  # the failure under way is what the user must hear of
            logger.warning("kaslite: could not write the checkpoint of epoch %s: %s", self.epoch, first_line(exc))

    def _context(self) -> RunContext:
        base = self.base_context or RunContext(
            config=self.config,
            run_dir=self.run_dir or Path("."),
            run_name=self.run_name,
            seed_ids=tuple(self.grower.seeds),
            total_epochs=self.total_epochs,
            warm_up_epochs=self.config.train.warm_up_epochs,
        )
        return attrs.evolve(
            base,
            start_epoch=self.epoch,
            threads=self.threads,
            history=tuple(self.recorder.history),
            events=tuple(self.recorder.events),
        )

    def run(self, resume: bool = False) -> RunSummary:
        """Train to the end (from the checkpoint if ``resume``) and return the final metrics.

        If anything raises mid-run, trackers hear ``on_run_failed`` and the last
        good epoch's checkpoint stays for ``--resume``.
        """
        threads = torch.get_num_threads()  # put back afterwards: the caller's process keeps its own setting
        try:
            if self.run_dir is not None:
                self.run_dir.mkdir(parents=True, exist_ok=True)
            self._setup()
            if resume and self.run_dir is not None and (self.run_dir / CHECKPOINT).exists():
                self._load_checkpoint(self.run_dir / CHECKPOINT)
            self.trackers.emit("on_run_start", self._context())
            try:
                while self.epoch < self.total_epochs:
                    self._run_epoch()
                return self._finish()
            except BaseException as exc:
                self._write_last_epoch()
                self.trackers.emit("on_run_failed", RunFailed.from_exception(self.epoch_under_way, exc, self.run_dir))
                self.trackers.announce_places(self.epoch_under_way)
                raise
        finally:
            self.trackers.close()
            torch.set_num_threads(threads)

    def _finish(self) -> RunSummary:
        distributed.check_replicas_agree(self.net)
        states = {sid: seed.state.value for sid, seed in self.grower.seeds.items()}
        metrics = final_metrics(
            self.recorder.history,
            self.recorder.events,
            self.config.train.warm_up_epochs,
            states,
            self.grower.param_counts(),
            self.elapsed,
        )
        if distributed.active():
            metrics["processes"] = distributed.world_size()
        metadata = {
            "run_name": self.run_name,
            "problem": self.config.data.problem,
            "val_acc": metrics["val_acc"],
            "best_acc": metrics["best_acc"],
            "seeds_activated": metrics["seeds_activated"],
            "config": config_to_dict(self.config),
        }
        summary = RunSummary(
            self.run_dir or Path("."),
            self.run_name,
            metrics,
            tuple(self.recorder.history),
            tuple(self.recorder.events),
        )
        # A tracker that logs the run's figure has a helper ready to draw it: it starts now, beside the
        # model's saving and logging, and is read at on_run_end.
        start_drawing(summary)
        if self.run_dir is not None and distributed.is_writer():
            # A few validation inputs record what the model takes and returns, for serving and MLflow.
            example = self.batches.probe(EXAMPLE_ROWS)
            model_path = save_model(self.net, self.run_dir / MODEL, metadata, example_input=example)
            self.trackers.emit("on_model_ready", ModelReady(model_path, metadata))
        self.trackers.emit("on_run_end", summary)
        self.trackers.announce_places(self.epoch)
        return summary
