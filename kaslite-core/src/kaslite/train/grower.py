"""``Grower``: the one driver of growth, for any module with seeds and any training loop.

It plays the part ``torch.optim.lr_scheduler`` plays for learning rates: made
once beside the optimizer, called once per optimizer step and once per epoch,
with ``state_dict()`` / ``load_state_dict()`` for resume::

    grower = kaslite.Grower(model, "kasmina", probe=x_val[:256])
    for epoch in range(epochs):
        for x, y in loader:
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
            grower.step()
        grower.epoch_end(train_loss=..., val_loss=..., val_acc=...)

Build the optimizer once over ``model.parameters()``: the children of dormant
seeds receive no gradient, so Adam, AdamW or SGD leave them untouched until
they blend in, growth never rebuilds the optimizer, and an LR scheduler
schedules every parameter alike.

Under ``torch.distributed`` every rank calls the same methods; rank 0 takes
each growth decision and broadcasts it, with the child's weights, so the
ranks stay identical.
"""

import logging
import math
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any

import attrs
import torch
from torch import nn

from kaslite.config import ControllerConfig
from kaslite.control.base import (
    SEED_KINDS,
    Action,
    Candidate,
    Controller,
    Cull,
    EpochMetrics,
    Germinate,
    Observation,
    SeedView,
)
from kaslite.errors import ConfigError, KasliteError, first_line
from kaslite.nn.modules import count_parameters, evaluating, find_seeds, unwrap
from kaslite.nn.seed import ALLOWED_TRANSITIONS, SeedState, SentinelSeed
from kaslite.train.events import (
    EpochRecord,
    GrowthDecision,
    PhaseChange,
    RunWarning,
    SeedTransition,
    drift_message,
)
from kaslite.train.scores import GradientAt, measure_gradients, score_candidates
from kaslite.train.tracker import Tracker, TrackerGroup

logger = logging.getLogger("kaslite.grower")
# A drift warning needs the val loss this much (relatively) above where it was when the seed began
# blending: epoch-to-epoch noise is not a reason to act.
DRIFT_LOSS_RISE = 0.1
# While the val loss stays risen, an active seed's drift is measured again on every this many epochs, not
# on every epoch: an overfitting run (the val loss up for most of it) spent a tenth of its time on
# probe passes, one per active seed and epoch, and an active seed's share of the output moves slowly.
DRIFT_EVERY = 5


class GrowthPolicyError(KasliteError):
    """A growth policy raised, or asked for something impossible."""


def _make_room_for_recompiles(seeds: int) -> None:
    """Under ``torch.compile``, let dynamo keep a graph per state growth passes through.

    A compiled model gets a graph per mode and set of seeds in use: up to 3·seeds + 2
    over a run, beyond dynamo's default limit of 8 once there are 3 seeds, past which
    it would silently fall back to eager.
    """
    dynamo = sys.modules.get("torch._dynamo")  # imported by torch.compile; not imported here for nothing
    if dynamo is None:
        return
    needed = 4 * seeds + 8  # with room for dynamo's own recompiles (e.g. a smaller last batch)
    # torch 2.7 renamed cache_size_limit to recompile_limit (and kept the old name as an alias).
    name = "recompile_limit" if hasattr(dynamo.config, "recompile_limit") else "cache_size_limit"
    if getattr(dynamo.config, name) < needed:
        logger.info("kaslite: raising torch._dynamo.config.%s to %d for %d seeds", name, needed, seeds)
        setattr(dynamo.config, name, needed)


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _from_rank_zero(value: Any) -> Any:
    """``value`` as rank 0 has it (the value itself outside torch.distributed)."""
    if not _distributed():
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def _chose_seed_kinds(controller: Controller) -> bool:
    """Whether the policy says which kinds it handles, rather than inheriting :class:`Controller`'s default."""
    return any("seed_kinds" in vars(cls) for cls in type(controller).__mro__ if cls is not Controller)


def _is_rank_zero() -> bool:
    return not _distributed() or torch.distributed.get_rank() == 0


class Grower:
    """Drives the growth of every :class:`~kaslite.nn.SentinelSeed` in ``model``.

    :param model: the network (it may be wrapped by DDP or ``torch.compile``).
    :param controller: a growth policy's registered name (``kasmina``,
        ``periodic``, ``never``, or a plugin's) or a :class:`~kaslite.control.Controller`.
    :param seeds: the seeds to drive; by default every seed inside ``model``.
    :param controller_config: the policy's settings (its name is taken from ``controller``);
        or give them as keywords: ``Grower(model, "periodic", period=3)``.
    :param warm_up_epochs: epochs before the policy is first consulted (phase 1).
    :param trackers: what hears of epochs, transitions and warnings: Tracker
        objects, a name → Tracker mapping, or a :class:`~kaslite.train.tracker.TrackerGroup`.
    :param probe: a batch of inputs; each transition then reports how far it
        moved the model's output on it (``SeedTransition.output_change``, NaN without a probe).
    :param score_batch: ``(inputs, targets)`` from the training data. With it, a
        germinated seed whose child grows from a zero fan-out gets GradMax's fan-in
        (``seeds.fan_in``), and a policy that asks for expansion scores gets them.
    :param loss_fn: the training loss, ``loss_fn(model(inputs), targets)``, for the
        score batch (cross-entropy by default).
    :param optimizer: the training loop's optimizer. With it, a :meth:`step` after an
        optimizer step that did not happen (``GradScaler.step`` skips it when the gradients
        hold inf or NaN) does nothing: no blend step, no shadow step.
    """

    def __init__(
        self,
        model: nn.Module,
        controller: str | Controller = "kasmina",
        *,
        seeds: Iterable[SentinelSeed] | None = None,
        controller_config: ControllerConfig | None = None,
        warm_up_epochs: int = 0,
        trackers: TrackerGroup | Mapping[str, Tracker] | Iterable[Tracker] | None = None,
        probe: torch.Tensor | None = None,
        score_batch: tuple[torch.Tensor, torch.Tensor] | None = None,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        **settings: Any,
    ) -> None:
        self.model = model
        found = find_seeds(model)
        chosen = found if seeds is None else list(dict.fromkeys(seeds))
        if not chosen:
            raise ConfigError(
                f"{type(model).__name__} holds no SentinelSeed to grow; put kaslite.nn.SentinelSeed(dim) "
                "where the network may grow"
            )
        for index, seed in enumerate(chosen, start=1):
            if seed not in found:
                raise ConfigError(f"seed {seed.seed_id or index!r} passed to Grower is not inside the model")
            if seed.layer < 0:  # not placed by its network: its position among the seeds
                seed.layer = index
        ids = [seed.seed_id for seed in chosen]
        duplicates = sorted({sid for sid in ids if ids.count(sid) > 1})
        if duplicates:
            raise ConfigError(f"seed ids must be unique; repeated: {', '.join(duplicates)}")
        self.seeds: dict[str, SentinelSeed] = dict(zip(ids, chosen, strict=True))
        self._seed_list = chosen
        _make_room_for_recompiles(len(chosen))
        if warm_up_epochs < 0:
            raise ConfigError(f"invalid warm_up_epochs = {warm_up_epochs!r}: must be an integer >= 0")
        self.warm_up_epochs = warm_up_epochs
        if settings:
            if controller_config is not None:
                raise ConfigError("give the policy's settings as controller_config or as keywords, not both")
            controller_config = _controller_config(controller, settings)
        self.controller, self.policy_name = self._make_controller(controller, controller_config)
        self.trackers = trackers if isinstance(trackers, TrackerGroup) else TrackerGroup(_named(trackers))
        self.probe = probe
        self.score_batch = score_batch
        self.loss_fn = loss_fn if loss_fn is not None else nn.CrossEntropyLoss()
        # This epoch's measurements: what each dormant seed's fan-out would see, and their scores.
        self._gradients: dict[str, GradientAt] = {}
        self._candidates: dict[str, Candidate] = {}
        self.epoch = 0  # epochs finished
        self.best_acc = -math.inf
        self.history: list[EpochMetrics] = []
        self._drift_warned: set[str] = set()
        self._told_hidden_kinds = False  # the policy is not shown some seeds: said once per run
        self._drift_measured: set[str] = set()  # active seeds whose drift this process has measured
        # Each growing seed's val loss when it began blending: a drift warning needs the loss to have risen.
        self._loss_at_blend: dict[str, float] = {}
        self._phase_announced = warm_up_epochs > 0  # phase 1 needs no announcement
        self._epoch_started: float | None = None
        self._warned_no_step = False
        # Optimizer steps taken (counted by a hook) and how many of them step() has followed.
        self._optimizer_steps = self._followed_steps = 0
        self._watching_optimizer = optimizer is not None
        if optimizer is not None:
            optimizer.register_step_post_hook(self._count_optimizer_step)

    @staticmethod
    def _make_controller(controller: str | Controller, config: ControllerConfig | None) -> tuple[Controller, str]:
        if isinstance(controller, Controller):
            return controller, type(controller).__name__
        from kaslite.plugins import CONTROLLER, get_controller, get_plugin_manager

        spec = get_controller(controller)
        config = ControllerConfig(name=controller) if config is None else config
        if config.name != controller:
            config = ControllerConfig(**{**attrs.asdict(config, recurse=False), "name": controller})
        get_plugin_manager().validate_params(CONTROLLER, controller, config.options)
        provider = get_plugin_manager().provider(CONTROLLER, controller)
        return spec.factory(config), f"{controller!r} (plugin {provider})"

    # -- the two calls of a training loop --------------------------------------

    @property
    def phase(self) -> int:
        """1 during the warm-up epochs, 2 once the policy is consulted (for the epoch under way)."""
        return 1 if self.epoch < self.warm_up_epochs else 2

    def _count_optimizer_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self._optimizer_steps += 1

    def step(self) -> None:
        """After each optimizer step: observe activations, shadow-train, ramp and finish blends."""
        if self._watching_optimizer:
            if self._optimizer_steps == self._followed_steps:
                return  # the optimizer skipped its step (GradScaler found inf or NaN gradients)
            self._followed_steps = self._optimizer_steps
        if self._epoch_started is None:
            self._epoch_started = time.perf_counter()
            if not self._phase_announced:
                self._announce_phase()
        for seed in self._seed_list:
            seed.observe()
            state = seed.state
            if state is SeedState.BLENDING:
                if seed.advance_blend():
                    self._transition(seed, seed.activate, epoch=self.epoch + 1)  # during the next epoch
            elif state is SeedState.TRAINING:
                seed.shadow_step()

    def epoch_end(
        self,
        *,
        val_loss: float,
        val_acc: float = math.nan,
        train_loss: float = math.nan,
    ) -> list[SeedTransition]:
        """After each epoch's validation: move trained seeds to blending, ask the policy, apply
        its decisions. Returns the transitions made (activations happen in :meth:`step`)."""
        started, self._epoch_started = self._epoch_started, None
        if started is None and not self._warned_no_step:
            self._warned_no_step = True
            warnings.warn(
                "kaslite.Grower.epoch_end() after an epoch without grower.step(): call grower.step() after "
                "each optimizer.step(), or no seed ever shadow-trains, blends in or becomes active",
                stacklevel=2,
            )
        if not self._phase_announced:
            self._announce_phase()
        self.epoch += 1
        phase = 1 if self.epoch <= self.warm_up_epochs else 2
        self.best_acc = max(self.best_acc, val_acc) if not math.isnan(val_acc) else self.best_acc
        self.history.append(EpochMetrics(self.epoch, phase, float(train_loss), float(val_loss), float(val_acc)))
        made = self._start_trained_blends()
        self._loss_at_blend.update({event.seed_id: float(val_loss) for event in made})
        self._measure_drift(float(val_loss))
        self._warn_about_drift(float(val_loss))
        self._gradients, self._candidates = {}, {}
        if phase == 2 and self.controller.wants_scores and _is_rank_zero():
            self._measure(self._seed_list)
        views = self.seed_views()
        actions: list[Action] = []
        failure: GrowthPolicyError | None = None
        if phase == 2:
            try:
                actions = self._decide(Observation(self.epoch, phase, tuple(self.history), self._shown(views)))
            except GrowthPolicyError as exc:
                failure = exc  # raised once the epoch's record is out, so the epoch is logged
        record = EpochRecord(
            self.epoch,
            phase,
            float(train_loss),
            float(val_loss),
            float(val_acc),
            self.best_acc if self.best_acc > -math.inf else math.nan,
            views,
            self.controller.state_dict(),
            duration_s=0.0 if started is None else time.perf_counter() - started,
            params=self.param_counts()[1],
        )
        self.trackers.emit("on_epoch_end", record)
        if failure is not None:
            raise failure
        germinated = tuple(a.seed_id for a in actions if isinstance(a, Germinate))
        if self._candidates or germinated:
            ranked = sorted(self._candidates.values(), key=lambda c: -c.score)
            self.trackers.emit("on_growth_decision", GrowthDecision(self.epoch, tuple(ranked), germinated))
        made += self._apply(actions)  # after the epoch's record, so its transitions follow it in every log
        if self.epoch == self.warm_up_epochs:
            self.trackers.emit("on_phase_change", PhaseChange(self.epoch + 1, 2, 1))
        return made

    def _announce_phase(self) -> None:
        """With no warm-up, phase 2 starts with epoch 1: say so once, before anything else."""
        self._phase_announced = True
        self.trackers.emit("on_phase_change", PhaseChange(1, 2, 1))

    # -- decisions ---------------------------------------------------------------

    def seed_views(self) -> tuple[SeedView, ...]:
        """Every seed as a policy sees it, in order."""
        return tuple(
            SeedView(
                s.seed_id,
                s.layer,
                s.state.value,
                s.alpha,
                s.health,
                s.drift,
                s.progress,
                s.kind,
                self._candidates[s.seed_id].score if s.seed_id in self._candidates else None,
            )
            for s in self._seed_list
        )

    def _measure(self, seeds: list[SentinelSeed]) -> None:
        """What each dormant seed among ``seeds`` would see if it grew, on the score batch, and its score."""
        if self.score_batch is None:
            return
        dormant = [seed for seed in seeds if seed.state is SeedState.DORMANT]
        measured, trunk_norm2 = measure_gradients(self.model, dormant, *self.score_batch, self.loss_fn)
        self._gradients.update(measured)
        self._candidates.update({c.seed_id: c for c in score_candidates(self.seeds, measured, trunk_norm2)})

    def _germinate(self, seed: SentinelSeed) -> None:
        """Germinate ``seed``, with GradMax's fan-in where its child grows from a zero fan-out."""
        # Rank 0's child is broadcast to every rank once germinated (see _transition).
        wanted = seed.config.fan_in == "gradmax" and self.score_batch is not None and _is_rank_zero()
        if wanted and seed.grows_from_zero():
            if seed.seed_id not in self._gradients:
                self._measure([seed])
            gradient = self._gradients.get(seed.seed_id)
            if gradient is not None:
                seed.init_fan_in(gradient.inputs, gradient.deltas)
        seed.germinate()

    def _start_trained_blends(self) -> list[SeedTransition]:
        ready = [
            s.seed_id
            for s in self._seed_list
            if s.state is SeedState.TRAINING and s.measure_progress() >= s.config.progress_thresh
        ]
        return [self._transition(self.seeds[sid], self.seeds[sid].start_blending) for sid in _from_rank_zero(ready)]

    def _shown(self, views: tuple[SeedView, ...]) -> tuple[SeedView, ...]:
        """The seeds of the kinds the policy handles (``Controller.seed_kinds``); the first time others are
        left out, a warning says which and how to be shown them."""
        kinds = tuple(getattr(self.controller, "seed_kinds", SEED_KINDS))
        hidden = sorted({view.kind for view in views if view.kind not in kinds})
        if hidden and not self._told_hidden_kinds and not _chose_seed_kinds(self.controller):
            self._told_hidden_kinds = True
            message = (
                f"growth policy {self.policy_name} is shown {', '.join(kinds)} seeds only: it never grows this "
                f"network's {', '.join(hidden)} seeds; give it seed_kinds = {SEED_KINDS!r} to be shown them"
            )
            self.trackers.emit("on_warning", RunWarning(self.epoch, "policy", message))
        return tuple(view for view in views if view.kind in kinds)

    def _decide(self, obs: Observation) -> list[Action]:
        outcome: tuple[str, Any] = ("actions", [])
        if _is_rank_zero():
            try:
                outcome = ("actions", list(self.controller.decide(obs)))
            except Exception as exc:
                outcome = ("error", first_line(exc))
        kind, value = _from_rank_zero(outcome)
        if kind == "error":
            raise GrowthPolicyError(f"growth policy {self.policy_name} raised at epoch {self.epoch}: {value}")
        return list(value)

    def _apply(self, actions: list[Action]) -> list[SeedTransition]:
        """Apply the policy's actions, once every one of them is known to be possible."""
        where = f"growth policy {self.policy_name} at epoch {self.epoch}"
        planned: dict[str, SeedState] = {}
        for action in actions:
            if not isinstance(action, (Germinate, Cull)):
                raise GrowthPolicyError(f"{where} returned {action!r}; expected Germinate or Cull")
            seed = self.seeds.get(action.seed_id)
            if seed is None:
                raise GrowthPolicyError(
                    f"{where} named unknown seed {action.seed_id!r}; seeds: {', '.join(self.seeds)}"
                )
            current = planned.get(seed.seed_id, seed.state)
            target = SeedState.TRAINING if isinstance(action, Germinate) else SeedState.CULLED
            if target not in ALLOWED_TRANSITIONS[current]:
                raise GrowthPolicyError(
                    f"{where} asked to {type(action).__name__.lower()} {seed.seed_id}, which is {current.value}"
                )
            planned[seed.seed_id] = target
        return [
            self._transition(seed, partial(self._germinate, seed) if isinstance(action, Germinate) else seed.cull)
            for action in actions
            for seed in [self.seeds[action.seed_id]]
        ]

    @torch.no_grad()
    def _measure_drift(self, val_loss: float) -> None:
        """Each blending seed's share of the output on the probe batch (``SentinelSeed.drift``), and each
        active one's when first seen active and, every :data:`DRIFT_EVERY` epochs, while the val loss is
        above where it was at its blend's start (when a drift warning can fire). Otherwise an active
        seed keeps its last figure: one probe pass per seed and epoch would cost a tenth of a small
        network's training."""
        recheck = self.epoch % DRIFT_EVERY == 0
        in_use = [
            seed
            for seed in self._seed_list
            if seed.state is SeedState.BLENDING
            or (
                seed.state is SeedState.ACTIVE
                and (
                    seed.seed_id not in self._drift_measured
                    or (recheck and self._loss_has_risen(seed.seed_id, val_loss))
                )
            )
        ]
        self._drift_measured.update(seed.seed_id for seed in in_use if seed.state is SeedState.ACTIVE)
        if not in_use or self.probe is None or self.probe.shape[0] == 0:
            return
        model = unwrap(self.model)  # eager: switching a seed off must not recompile a compiled model
        with evaluating(model):
            full = self._probe_forward(model)
            if full is None:
                return
            for seed in in_use:
                seed._child_in_use = False
                try:
                    without = self._probe_forward(model)
                finally:
                    seed._child_in_use = True
                assert without is not None
                moved, rest = float((full - without).norm()), float(without.norm())
                seed._drift = moved / (moved + rest) if moved + rest > 0 else 0.0

    def _warn_about_drift(self, val_loss: float) -> None:
        """Warn about a seed that makes up more than ``drift_warn`` of the output while the val loss is
        10% or more above where it was when the seed began blending: growth that may be hurting."""
        for seed in self._seed_list:
            limit = seed.config.drift_warn
            in_use = seed.state in (SeedState.BLENDING, SeedState.ACTIVE)
            drifting = in_use and seed.drift > limit and self._loss_has_risen(seed.seed_id, val_loss)
            # Warn when a seed crosses the threshold, not on every epoch it stays above it.
            if drifting and seed.seed_id not in self._drift_warned:
                self._drift_warned.add(seed.seed_id)
                message = drift_message(seed.seed_id, seed.drift, limit, self._loss_at_blend[seed.seed_id], val_loss)
                self.trackers.emit("on_warning", RunWarning(self.epoch, "drift", message, seed.seed_id, seed.drift))
            elif not drifting:
                self._drift_warned.discard(seed.seed_id)

    def _loss_has_risen(self, seed_id: str, val_loss: float) -> bool:
        """Is ``val_loss`` 10% or more above the val loss when ``seed_id`` began blending?"""
        return val_loss > self._loss_at_blend.get(seed_id, math.inf) * (1 + DRIFT_LOSS_RISE)

    # -- transitions ---------------------------------------------------------------

    def _transition(self, seed: SentinelSeed, change: Callable[[], None], epoch: int | None = None) -> SeedTransition:
        """Apply one seed transition, measuring how far it moved the output on the probe batch.

        ``epoch``: the epoch it belongs to (by default the one that just finished)."""
        before_state = seed.state.value
        before = self._probe_output(self.model)
        change()
        if _distributed() and seed.state in (SeedState.TRAINING, SeedState.BLENDING):
            # Shadow training saw each rank's own data: rank 0's child is the one every rank keeps.
            with torch.no_grad():
                for tensor in [*seed.child.parameters(), *seed.child.buffers()]:
                    torch.distributed.broadcast(tensor, src=0)
        after = self._probe_output(self.model)
        moved = math.nan if before is None or after is None else float((after - before).abs().max())
        event = SeedTransition(
            self.epoch if epoch is None else epoch,
            seed.seed_id,
            before_state,
            seed.state.value,
            seed.alpha,
            moved,
            seed.kind,
        )
        self.trackers.emit("on_seed_transition", event)
        return event

    @torch.no_grad()
    def _probe_output(self, model: nn.Module) -> torch.Tensor | None:
        """``model``'s output on the probe batch in eval mode (None without a probe batch)."""
        if self.probe is None or self.probe.shape[0] == 0:
            return None
        with evaluating(model):
            return self._probe_forward(model)

    def _probe_forward(self, model: nn.Module) -> torch.Tensor | None:
        """The probe batch through ``model`` as it is, its output as one float tensor (None: no tensor out)."""
        assert self.probe is not None
        out = model(self.probe)
        if isinstance(out, torch.Tensor):
            return out.detach().float()
        leaves = [t for t in (out.values() if isinstance(out, Mapping) else out) if isinstance(t, torch.Tensor)]
        return torch.cat([t.detach().float().flatten() for t in leaves]) if leaves else None

    # -- resume ----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs besides the model's and the optimizer's state dicts."""
        return {
            "epoch": self.epoch,
            "best_acc": self.best_acc,
            "history": [list(attrs.astuple(m)) for m in self.history],
            "controller": self.controller.state_dict(),
            "drift_warned": sorted(self._drift_warned),
            "loss_at_blend": dict(self._loss_at_blend),
            "phase_announced": self._phase_announced,
            "seeds": {sid: seed.training_state() for sid, seed in self.seeds.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; load the model's state dict first (it holds the seeds' states)."""
        unknown = sorted(set(state["seeds"]) - set(self.seeds))
        if unknown:
            raise ConfigError(f"Grower state names seeds this model lacks: {', '.join(unknown)}")
        self.epoch = int(state["epoch"])
        self.best_acc = float(state["best_acc"])
        self.history = [EpochMetrics(*row) for row in state["history"]]
        self.controller.load_state_dict(state["controller"])
        self._drift_warned = set(state["drift_warned"])
        self._loss_at_blend = dict(state.get("loss_at_blend", {}))  # older checkpoints lack it
        self._phase_announced = bool(state["phase_announced"])
        for sid, seed_state in state["seeds"].items():
            self.seeds[sid].load_training_state(seed_state)

    def param_counts(self) -> tuple[int, int]:
        """(parameters outside the seeds' children, those plus the grown children)."""
        return count_parameters(self.model)


def _controller_config(controller: str | Controller, settings: dict[str, Any]) -> ControllerConfig:
    """ControllerConfig fields from ``settings``; the rest are the policy's own options."""
    from kaslite.config.structure import structure

    if not isinstance(controller, str):
        raise ConfigError(f"settings {', '.join(sorted(settings))} need a policy name, not a Controller object")
    from kaslite.plugins import get_controller

    known = {field.name for field in attrs.fields(ControllerConfig)} - {"name", "options"}
    options = {key: value for key, value in settings.items() if key not in known}
    if options and get_controller(controller).params_type is None:
        raise ConfigError(
            f"unknown field(s) {', '.join(sorted(options))} for controller {controller!r}; "
            f"allowed: {', '.join(sorted(known))}"
        )
    fields = {key: value for key, value in settings.items() if key in known}
    return structure({**fields, "name": controller, "options": options}, ControllerConfig, path="controller")


def _named(trackers: Mapping[str, Tracker] | Iterable[Tracker] | None) -> dict[str, Tracker]:
    if trackers is None:
        return {}
    if isinstance(trackers, Mapping):
        return dict(trackers)
    named: dict[str, Tracker] = {}
    for tracker in trackers:
        name = base = type(tracker).__name__
        suffix = 2
        while name in named:
            name, suffix = f"{base}-{suffix}", suffix + 1
        named[name] = tracker
    return named
