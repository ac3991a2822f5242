"""The training loop: warm-up, adaptation, seed transitions, checkpoints and resume.

Phase 1 trains the trunk with every seed dormant. Phase 2 freezes the hidden
trunk (``freeze_trunk``), keeps training the head, and asks the controller
after each epoch which seeds to germinate or cull. One ``train.seed`` drives
data, initialisation and shuffling; a checkpoint after every epoch lets a
killed run resume to the same result.
"""

import time
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn

from kaslite.config import ExperimentConfig, config_to_dict
from kaslite.control.base import Action, Controller, Cull, EpochMetrics, Germinate, Observation, SeedView
from kaslite.errors import ConfigError, KasliteError
from kaslite.models import save_model
from kaslite.nn import MorphogeneticNet, SeedState, SentinelSeed
from kaslite.plugins import get_controller
from kaslite.train.data import SplitData, load_split
from kaslite.train.events import (
    EpochRecord,
    ModelReady,
    PhaseChange,
    RunContext,
    RunSummary,
    RunWarning,
    SeedTransition,
    event_dict,
)
from kaslite.train.summary import final_metrics
from kaslite.train.tracker import Tracker, TrackerGroup

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for an absent device is a one-line error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("invalid train.device = 'cuda': CUDA is not available here; use --device auto or cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("invalid train.device = 'mps': MPS is not available here; use --device auto or cpu")
    return torch.device(name)


def build_net(config: ExperimentConfig, input_dim: int, num_classes: int) -> MorphogeneticNet:
    """The network a config describes, before training."""
    m = config.model
    return MorphogeneticNet(
        input_dim=input_dim,
        hidden_dim=m.hidden_dim,
        num_layers=m.num_layers,
        seeds_per_layer=m.seeds_per_layer,
        num_classes=num_classes,
        blueprint=m.blueprint,
        blueprint_options=m.blueprint_options,
        seed_config=config.seeds,
    )


class Trainer:
    """Runs one experiment into ``run_dir``, optionally resuming from its checkpoint."""

    def __init__(
        self,
        config: ExperimentConfig,
        run_dir: Path,
        trackers: dict[str, Tracker] | None = None,
        run_name: str = "",
        context: RunContext | None = None,
    ) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.run_name = run_name or self.run_dir.name
        # What the runner knows about the run (tracker options, labels, quiet); progress is added to it.
        self.base_context = context
        self.trackers = TrackerGroup(trackers or {})
        self.device = resolve_device(config.train.device)
        self.controller_spec = get_controller(config.controller.name)

    # -- setup ---------------------------------------------------------------

    def _setup(self) -> None:
        cfg = self.config
        torch.manual_seed(cfg.train.seed)
        self.data: SplitData = load_split(cfg.data, cfg.train.seed, self.device)
        self.net = build_net(cfg, self.data.input_dim, self.data.num_classes).to(self.device)
        self.optimizer = torch.optim.Adam(self.net.trunk_parameters(), lr=cfg.train.lr)
        self.grown: list[str] = []  # seeds whose children joined the optimizer, in order
        self.drift_warned: set[str] = set()  # seeds above drift_warn that were already warned about
        self.shuffle = torch.Generator().manual_seed(cfg.train.seed + 1)
        self.controller: Controller = self.controller_spec.factory(cfg.controller)
        self.probe = self.data.x_val[: cfg.train.probe_size]
        self.loss_fn = nn.CrossEntropyLoss()
        self.history: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.metric_history: list[EpochMetrics] = []
        self.epoch = 0
        self.phase = 1
        self.best_acc = 0.0
        self.elapsed = 0.0

    @property
    def total_epochs(self) -> int:
        return self.config.train.warm_up_epochs + self.config.train.adaptation_epochs

    # -- checkpoints -----------------------------------------------------------

    def _save_checkpoint(self) -> None:
        payload = {
            "epoch": self.epoch,
            "phase": self.phase,
            "best_acc": self.best_acc,
            "elapsed": self.elapsed,
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "grown": list(self.grown),
            "torch_rng": torch.get_rng_state(),
            "shuffle_rng": self.shuffle.get_state(),
            "controller": self.controller.state_dict(),
            "drift_warned": sorted(self.drift_warned),
            "history": self.history,
            "events": self.events,
        }
        tmp = self.run_dir / (CHECKPOINT + ".tmp")
        torch.save(payload, tmp)
        tmp.replace(self.run_dir / CHECKPOINT)  # atomic: a kill leaves the old or the new one

    def _load_checkpoint(self, path: Path) -> None:
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.net.load_state_dict(state["model"])
        for seed_id in state["grown"]:
            self._add_param_group(self.net.seeds[seed_id])
        self.optimizer.load_state_dict(state["optimizer"])
        self.phase = int(state["phase"])
        if self.phase == 2:
            self._freeze_trunk()
        self.epoch = int(state["epoch"])
        self.best_acc = float(state["best_acc"])
        self.elapsed = float(state["elapsed"])
        torch.set_rng_state(state["torch_rng"])
        self.shuffle.set_state(state["shuffle_rng"])
        self.controller.load_state_dict(state["controller"])
        self.drift_warned = set(state["drift_warned"])
        self.history = list(state["history"])
        self.events = list(state["events"])
        self.metric_history = [
            EpochMetrics(r["epoch"], r["phase"], r["train_loss"], r["val_loss"], r["val_acc"]) for r in self.history
        ]

    # -- seeds -----------------------------------------------------------------

    def _add_param_group(self, seed: SentinelSeed) -> None:
        # A new group leaves every existing parameter's Adam state untouched.
        self.optimizer.add_param_group({"params": list(seed.child.parameters())})
        self.grown.append(seed.seed_id)

    @torch.no_grad()
    def _probe_output(self) -> torch.Tensor:
        was_training = self.net.training
        self.net.eval()
        out: torch.Tensor = self.net(self.probe)
        self.net.train(was_training)
        return out

    def _transition(self, seed: SentinelSeed, change_state: Any) -> None:
        """Apply one seed transition, measuring how much the network's output moved."""
        before_state = seed.state.value
        before = self._probe_output()
        change_state()
        change = float((self._probe_output() - before).abs().max()) if before.numel() else 0.0
        event = SeedTransition(self.epoch, seed.seed_id, before_state, seed.state.value, seed.alpha, change)
        self._emit_event("on_seed_transition", event)

    def _germinate(self, seed: SentinelSeed) -> None:
        def grow() -> None:
            seed.germinate()
            self._add_param_group(seed)

        self._transition(seed, grow)

    def _apply(self, actions: list[Action]) -> None:
        seeds = self.net.seeds
        for action in actions:
            seed = seeds.get(action.seed_id)
            if seed is None:
                raise KasliteError(
                    f"controller {self.config.controller.name!r} named unknown seed {action.seed_id!r}; "
                    f"seeds: {', '.join(seeds)}"
                )
            if isinstance(action, Germinate):
                self._germinate(seed)
            elif isinstance(action, Cull):
                self._transition(seed, seed.cull)
            else:
                raise KasliteError(f"controller returned {action!r}; expected Germinate or Cull")

    def _seed_views(self) -> tuple[SeedView, ...]:
        return tuple(
            SeedView(s.seed_id, s.layer, s.state.value, s.alpha, s.health, s.drift, s.progress)
            for s in self.net.seeds.values()
        )

    # -- events ----------------------------------------------------------------

    def _emit_event(self, method: str, event: PhaseChange | SeedTransition | RunWarning) -> None:
        self.events.append(event_dict(event))
        self.trackers.emit(method, event)

    def _freeze_trunk(self) -> None:
        if self.config.train.freeze_trunk:
            for module in self.net.hidden_trunk():
                module.requires_grad_(False)

    # -- the loop ----------------------------------------------------------------

    def _train_epoch(self) -> float:
        self.net.train()
        x, y = self.data.x_train, self.data.y_train
        batch_size = self.config.train.batch_size
        order = torch.randperm(x.shape[0], generator=self.shuffle).to(self.device)
        seeds = list(self.net.seeds.values())
        total = 0.0
        for start in range(0, x.shape[0], batch_size):
            index = order[start : start + batch_size]
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss_fn(self.net(x[index]), y[index])
            loss.backward()
            self.optimizer.step()
            total += loss.item() * index.shape[0]
            for seed in seeds:
                if seed.state is SeedState.BLENDING:
                    if seed.advance_blend():
                        self._transition(seed, seed.activate)
                elif seed.state is SeedState.TRAINING:
                    seed.shadow_step(batch_size)
        return total / x.shape[0]

    @torch.no_grad()
    def _validate(self) -> tuple[float, float]:
        self.net.eval()
        logits = self.net(self.data.x_val)
        loss = float(self.loss_fn(logits, self.data.y_val))
        acc = float((logits.argmax(dim=1) == self.data.y_val).float().mean())
        return loss, acc

    def _after_epoch_seeds(self) -> None:
        for seed in self.net.seeds.values():
            if seed.state is SeedState.TRAINING and seed.measure_progress() >= self.config.seeds.progress_thresh:
                self._transition(seed, seed.start_blending)
            drifting = (
                seed.state in (SeedState.BLENDING, SeedState.ACTIVE) and seed.drift > self.config.seeds.drift_warn
            )
            # Warn when a seed crosses the threshold, not on every epoch it stays above it.
            if drifting and seed.seed_id not in self.drift_warned:
                self.drift_warned.add(seed.seed_id)
                message = f"{seed.seed_id} drift {seed.drift:.3f} is above drift_warn {self.config.seeds.drift_warn}"
                warning = RunWarning(self.epoch, "drift", message, seed.seed_id, seed.drift)
                self._emit_event("on_warning", warning)
            elif not drifting:
                self.drift_warned.discard(seed.seed_id)

    def _context(self) -> RunContext:
        base = self.base_context or RunContext(
            config=self.config,
            run_dir=self.run_dir,
            run_name=self.run_name,
            seed_ids=tuple(self.net.seeds),
            total_epochs=self.total_epochs,
            warm_up_epochs=self.config.train.warm_up_epochs,
        )
        return attrs.evolve(base, start_epoch=self.epoch, history=tuple(self.history), events=tuple(self.events))

    def run(self, resume: bool = False) -> RunSummary:
        """Train to the end (from the checkpoint if ``resume``) and return the final metrics."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._setup()
        checkpoint = self.run_dir / CHECKPOINT
        if resume and checkpoint.exists():
            self._load_checkpoint(checkpoint)
        try:
            self.trackers.emit("on_run_start", self._context())
            if self.epoch == 0 and self.config.train.warm_up_epochs == 0:
                self.phase = 2
                self._freeze_trunk()
            while self.epoch < self.total_epochs:
                self._run_epoch()
            return self._finish()
        finally:
            self.trackers.close()

    def _run_epoch(self) -> None:
        started = time.perf_counter()
        self.epoch += 1
        if self.phase == 1 and self.epoch > self.config.train.warm_up_epochs:
            self.phase = 2
            self._freeze_trunk()
            self._emit_event("on_phase_change", PhaseChange(self.epoch, 2, 1))
        train_loss = self._train_epoch()
        val_loss, val_acc = self._validate()
        self.best_acc = max(self.best_acc, val_acc)
        self._after_epoch_seeds()
        seeds = self._seed_views()
        self.metric_history.append(EpochMetrics(self.epoch, self.phase, train_loss, val_loss, val_acc))
        actions: list[Action] = []
        if self.phase == 2:
            actions = self.controller.decide(Observation(self.epoch, self.phase, tuple(self.metric_history), seeds))
        record = EpochRecord(
            self.epoch,
            self.phase,
            train_loss,
            val_loss,
            val_acc,
            self.best_acc,
            seeds,
            self.controller.state_dict(),
            duration_s=time.perf_counter() - started,
        )
        self.history.append(record.row())
        self.trackers.emit("on_epoch_end", record)
        self._apply(actions)  # after the epoch's record, so its transitions follow it in every log
        self.elapsed += time.perf_counter() - started
        self._save_checkpoint()

    def _finish(self) -> RunSummary:
        states = {sid: seed.state.value for sid, seed in self.net.seeds.items()}
        metrics = final_metrics(
            self.history, self.events, self.config.train.warm_up_epochs, states, self.net.param_counts(), self.elapsed
        )
        metadata = {
            "run_name": self.run_name,
            "problem": self.config.data.problem,
            "val_acc": metrics["val_acc"],
            "best_acc": metrics["best_acc"],
            "seeds_activated": metrics["seeds_activated"],
            "config": config_to_dict(self.config),
        }
        model_path = save_model(self.net, self.run_dir / MODEL, metadata)
        self.trackers.emit("on_model_ready", ModelReady(model_path, metadata))
        summary = RunSummary(self.run_dir, self.run_name, metrics)
        self.trackers.emit("on_run_end", summary)
        return summary
