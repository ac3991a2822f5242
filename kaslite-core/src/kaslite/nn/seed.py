"""The sentinel seed: its lifecycle, output formula, health, shadow training and drift.

A seed's output is always ``y = x + α·(child(x) − x)`` (computed as ``lerp``). α is 0 while dormant
and shadow-training, grows by ``1/blend_steps`` per optimizer step while
blending and is exactly 1.0 when active, so every transition is continuous by
construction. Where the child is not in use the seed returns ``x`` itself: a
bitwise identity.

``forward`` does nothing but that formula, and keeps a reference to the batch
it saw in training mode. Everything that learns from activations (health,
the reservoir, shadow training) happens in :meth:`SentinelSeed.observe`
and :meth:`SentinelSeed.shadow_step`, which the growth driver
(:class:`kaslite.Grower`) calls after each optimizer step, outside ``forward``:
so ``forward`` has no Python counters for ``torch.compile`` to guard on, no
``.item()``, and no second backward through a DDP-wrapped module.

State a model file needs (lifecycle, α, blend step) lives in persistent
buffers; training-only state (health, reservoir, the shadow optimizer's
moments) lives in non-persistent buffers, so ``.to()`` moves all of it and
``state_dict()`` carries only what inference needs. :meth:`training_state`
hands the rest to the growth driver's checkpoint.
"""

import enum
from typing import Any, cast

import torch
from torch import nn
from torch.optim.adam import adam

from kaslite.config import SeedConfig
from kaslite.errors import InvalidValue, KasliteError


class SeedState(enum.StrEnum):
    """Where a seed is in its life."""

    DORMANT = "dormant"
    TRAINING = "training"
    BLENDING = "blending"
    ACTIVE = "active"
    CULLED = "culled"


ALLOWED_TRANSITIONS: dict[SeedState, frozenset[SeedState]] = {
    SeedState.DORMANT: frozenset({SeedState.TRAINING}),
    SeedState.TRAINING: frozenset({SeedState.BLENDING, SeedState.CULLED}),
    SeedState.BLENDING: frozenset({SeedState.ACTIVE, SeedState.CULLED}),
    SeedState.ACTIVE: frozenset({SeedState.CULLED}),
    SeedState.CULLED: frozenset(),
}
# The lifecycle buffer stores a state as its index here.
STATE_CODES: tuple[SeedState, ...] = tuple(SeedState)
# The states in which the child takes part in the output.
CHILD_IN_USE = frozenset({SeedState.BLENDING, SeedState.ACTIVE})

# The shadow optimizer is Adam with torch's defaults, its moments kept in buffers.
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


class SeedLifecycleError(KasliteError):
    """A transition the lifecycle does not allow (e.g. dormant → active)."""


def feature_axis(ndim: int) -> int:
    """Where features live: channels (axis 1) of ``(B, C, *spatial)`` maps, else the last axis."""
    return 1 if ndim >= 4 else ndim - 1


def per_feature(x: torch.Tensor, axis: int) -> torch.Tensor:
    """``x`` as ``(rows, features)``: every position of every sample is a row."""
    return x.movedim(axis, -1).reshape(-1, x.shape[axis])


# Samples per forward when progress is measured over the reservoir.
PROGRESS_CHUNK = 256


class SeedShapeError(KasliteError):
    """A seed met activations whose feature axis does not hold its ``dim`` features."""


class FeaturesLast(nn.Module):
    """``body`` applied with the features moved to the last axis and back: the vector blueprints
    (Linear layers) on ``(B, C, L)`` or ``(B, C, D, H, W)`` maps, position by position."""

    def __init__(self, body: nn.Module, axis: int) -> None:
        super().__init__()
        self.body = body
        self.axis = axis

    # What the growth driver reads of a child that grows from zero (GradMax's fan-in, units).
    @property
    def inner(self) -> Any:
        return getattr(self.body, "inner", None)

    @property
    def outer(self) -> Any:
        return getattr(self.body, "outer", None)

    def is_identity(self) -> bool:
        is_identity = getattr(self.body, "is_identity", None)
        return callable(is_identity) and bool(is_identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(x.movedim(self.axis, -1)).movedim(-1, self.axis)
        return out


class SentinelSeed(nn.Module):
    """A dormant slot that can grow ``child`` into the trunk without disturbing it.

    ``dim`` is the number of features (or channels) of the activation at the
    slot, which may be ``(B, dim)``, ``(B, T, dim)`` or ``(B, dim, H, W)``. The
    reservoir keeps whole samples, so their shape must stay the same while the
    seed shadow-trains (a new shape starts the reservoir over). ``channel_axis``
    says where the features are when that is elsewhere: ``channel_axis=1`` for a
    ``Conv1d``'s ``(B, C, L)`` maps or ``(B, C, D, H, W)`` volumes; the child
    (a vector blueprint's) then acts on the features at every position.
    Without ``child`` the seed builds one with ``blueprint``: ``mlp`` by
    default, a child that shadow-trains to reproduce the slot's activations
    (``conv`` for feature maps). That differs on purpose from ``kaslite run``'s
    network, whose seeds use ``residual`` (``ModelConfig.blueprint``): a block
    that starts at zero and only the task loss grows, which suits a small trunk
    that kaslite designs; a seed in your own model grows from what it has
    learnt of the activations there. ``seed_id`` defaults to the seed's
    attribute path inside the model the growth driver is given, and ``layer``
    (its depth, as policies see it) to its position among that model's seeds.
    """

    # What grows here, as policies and trackers see it: a block in the trunk ("deep"), new units in
    # a layer ("width"), or a branch from the input to the output ("wide").
    kind = "deep"

    blend_alpha: torch.Tensor
    lifecycle_code: torch.Tensor
    blend_steps_done: torch.Tensor
    health_var: torch.Tensor
    health_mean: torch.Tensor
    health_count: torch.Tensor
    reservoir_data: torch.Tensor | None

    def __init__(
        self,
        dim: int,
        child: nn.Module | None = None,
        config: SeedConfig | None = None,
        *,
        blueprint: str = "mlp",
        blueprint_options: dict[str, Any] | None = None,
        seed_id: str = "",
        layer: int = -1,
        channel_axis: int | None = None,
    ) -> None:
        super().__init__()
        if child is None:
            from kaslite.nn.blueprints import build_child
            from kaslite.plugins import get_blueprint

            child = build_child(get_blueprint(blueprint), dim, dict(blueprint_options or {}))
        if channel_axis is not None:
            if channel_axis == 0:
                raise InvalidValue("channel_axis", channel_axis, "must not be 0, the batch axis")
            if any(isinstance(module, nn.modules.conv._ConvNd) for module in child.modules()):
                raise InvalidValue(
                    "channel_axis",
                    channel_axis,
                    "applies to vector blueprints (mlp, residual, bottleneck); a convolutional child reads "
                    "(B, C, H, W) maps as they are",
                )
            child = FeaturesLast(child, channel_axis)
        self.channel_axis = channel_axis
        self.seed_id = seed_id
        self.layer = layer
        self.dim = dim
        self.child = child
        self.config = config or SeedConfig()
        # What a model file needs: persistent.
        self.register_buffer("blend_alpha", torch.zeros(()))
        self.register_buffer("lifecycle_code", torch.zeros((), dtype=torch.int64))
        self.register_buffer("blend_steps_done", torch.zeros((), dtype=torch.int64))
        # Training only: non-persistent, so state_dict() leaves them out and .to() moves them.
        self.register_buffer("health_var", torch.zeros(dim), persistent=False)
        self.register_buffer("health_mean", torch.zeros(dim), persistent=False)
        # How many batches the health estimate has seen: a tensor, so compiled code counts without guards.
        self.register_buffer("health_count", torch.zeros((), dtype=torch.int64), persistent=False)
        self.register_buffer("reservoir_data", None, persistent=False)
        # Python mirrors of the buffers above, read on every forward without touching a tensor.
        self._state = SeedState.DORMANT
        self._child_in_use = False
        self._whole = False  # active: the output is child(x) itself, α = 1 need not be computed
        self._watching = True  # dormant or shadow-training: forward leaves its batches for observe()
        # Whether the child has anything to learn in the shadow (shadow_trains()), asked once per germination.
        self._learns_in_shadow: bool | None = None
        self._blend_step = 0
        self.progress = 0.0
        self._drift = 0.0
        self._observed = 0
        self._health_next = True  # whether observe() updates the health from the next batch
        self._health_batches = 0  # health_count as eager code has counted it: no tensor read per batch
        self._reservoir_next = 0
        self._reservoir_filled = 0
        self._shadow_steps = 0
        # Per child parameter: the names of its Adam moments' buffers and of its step count's.
        self._shadow_moments: list[tuple[str, str, str]] = []
        self._batch_size = 1  # of the last observed batch: shadow steps use batches as big
        # The last training batch forward saw, for observe().
        self._seen: torch.Tensor | None = None
        # While the growth driver measures expansion scores (kaslite.train.scores): the seed's input and
        # a zero tensor added where it writes, whose gradient is the loss gradient there.
        self._scoring = False
        self._score_tap: tuple[torch.Tensor, torch.Tensor] | None = None

    # -- what the trunk sees -------------------------------------------------

    @property
    def state(self) -> SeedState:
        return self._state

    @property
    def blend_step(self) -> int:
        return self._blend_step

    @property
    def drift(self) -> float:
        """The seed's share of the network's output, in [0, 1): ``‖f − f₀‖ / (‖f − f₀‖ + ‖f₀‖)`` on the growth
        driver's probe batch, where ``f₀`` is the output without this seed. Measured the same way for every
        kind of seed after each epoch while it blends; once it is active, at the first epoch's end and
        whenever the val loss is 10% above where it was when its blend began (when a drift warning can
        fire), keeping the last figure in between; 0 before."""
        return float(self._drift)

    @property
    def health_batches(self) -> int:
        """How many batches the health estimate has seen."""
        return int(self.health_count)

    @property
    def health(self) -> float:
        """How much the features at the slot vary, in [0, 1]: the mean over features of
        ``var / (var + mean²)`` of recent training activations. A dead or constant feature
        scores 0, a centred one 1; scale-free, so slots of any kind and width compare. Low means
        a bottleneck. Measured while the seed can still be germinated (dormant); from germination on
        it keeps its last figure, and the seed's steps cost nothing for it."""
        var, mean = self.health_var.float(), self.health_mean.float()
        return float((var / (var + mean.square()).clamp_min(1e-12)).mean())

    def _keep(self, x: torch.Tensor) -> None:
        """Leave the batch for :meth:`observe`, while the seed is dormant or shadow-training."""
        if not self._watching:
            return
        if torch.compiler.is_compiling():
            # Compiled, the health update fuses into the step's graph for almost nothing, so it
            # runs on every batch there (eager code samples one batch in health_every), and only a
            # shadow-training seed leaves observe() its batch: no extra outputs for the graph.
            if self._state is SeedState.DORMANT:
                with torch.no_grad():
                    self._update_health(x.detach())
            if self._state is not SeedState.TRAINING:
                return
            self.__dict__["_health_in_graph"] = True
        # Detached, so the stash never keeps the autograd graph alive (nor stops a deepcopy); through
        # __dict__, not nn.Module.__setattr__, which alone costs more than a dormant seed's forward.
        # A batch observe() will learn from is copied: an in-place op after the seed (ReLU(inplace=True))
        # would otherwise rewrite it first. The others are read for their shape only.
        learns = self._state is SeedState.TRAINING or (self._health_next and self._state is SeedState.DORMANT)
        self.__dict__["_seen"] = x.detach().clone() if learns else x.detach()

    def _score_point(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``out`` plus a zero tensor whose gradient will be the loss gradient where the seed writes."""
        tap = torch.zeros_like(out, requires_grad=True)
        self.__dict__["_score_tap"] = (x.detach(), tap)
        return out + tap

    def delta(self, x: torch.Tensor) -> torch.Tensor | None:
        """``α·(child(x) − x)``, or None where the seed is an exact identity (for slots of several seeds)."""
        if not self._child_in_use:
            if self._scoring:
                return self._score_point(x, torch.zeros_like(x))
            if self.training:
                self._keep(x)
            return None
        grown: torch.Tensor = self.child(x) - x
        return grown if not torch.compiler.is_compiling() and self._whole else self.blend_alpha * grown

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x + α·(child(x) − x)``, computed as ``lerp(x, child(x), α)``: exactly ``x`` at α = 0 and
        exactly ``child(x)`` at α = 1, so an active seed and its fused child agree bit for bit."""
        if not self._child_in_use:
            if self._scoring:
                return self._score_point(x, x)
            if self.training:
                self._keep(x)
            return x
        # lerp at α = 1 is child(x) exactly: eager code need not compute it (compiled code fuses it into
        # the step's kernels for almost nothing, and one graph serves both blending and active).
        if not torch.compiler.is_compiling() and self._whole:
            whole: torch.Tensor = self.child(x).to(x.dtype)
            return whole
        return torch.lerp(x, self.child(x).to(x.dtype), self.blend_alpha.to(x.dtype))

    def feature_axis(self, ndim: int) -> int:
        """The axis of a ``ndim``-dimensional activation that holds this seed's features."""
        if self.channel_axis is None:
            return feature_axis(ndim)
        return self.channel_axis % ndim

    def _update_health(self, x: torch.Tensor) -> None:
        """Fold one batch into the running per-feature variance (the first batch sets it)."""
        rows = x if x.ndim == 2 and self.channel_axis is None else per_feature(x, self.feature_axis(x.ndim))
        if rows.shape[0] < 2:
            return
        var, mean = torch.var_mean(rows, dim=0, unbiased=False)
        if var.dtype != self.health_var.dtype:
            var, mean = var.to(self.health_var.dtype), mean.to(self.health_var.dtype)
        momentum: torch.Tensor | float
        if torch.compiler.is_compiling():  # a tensor condition: no guard on a Python count
            momentum = torch.where(self.health_count == 0, 1.0, self.config.health_momentum).to(var.dtype)
        else:
            momentum = 1.0 if self.__dict__["_health_batches"] == 0 else self.config.health_momentum
            self.__dict__["_health_batches"] += 1
        self.health_var.lerp_(var, momentum)
        self.health_mean.lerp_(mean, momentum)
        self.health_count.add_(1)

    # -- what would grow here --------------------------------------------------

    @property
    def output_dim(self) -> int:
        """Features of what the seed writes (its input's, for a seed inside the trunk)."""
        return self.dim

    @property
    def units(self) -> int:
        """New hidden units the child adds: its ``inner`` layer's outputs, else the slot's width."""
        inner = getattr(self.child, "inner", None)
        return inner.out_features if isinstance(inner, nn.Linear) else self.dim

    def grows_from_zero(self) -> bool:
        """Whether the child is ``outer(relu(inner(x)))`` (plus x) with a zero ``outer`` of Linear layers:
        then its fan-in can be chosen from the gradient without moving the output."""
        inner, outer = getattr(self.child, "inner", None), getattr(self.child, "outer", None)
        return (
            isinstance(inner, nn.Linear)
            and isinstance(outer, nn.Linear)
            and not bool(outer.weight.any())
            and (outer.bias is None or not bool(outer.bias.any()))
        )

    @torch.no_grad()
    def init_fan_in(self, inputs: torch.Tensor, deltas: torch.Tensor) -> bool:
        """Give the child's ``inner`` layer GradMax's fan-in (:func:`kaslite.nn.width.gradmax_fan_in`) from
        rows of the seed's input and of the loss gradient where it writes. Only where
        :meth:`grows_from_zero`, so the output never moves; returns whether it did."""
        from kaslite.nn.width import gradmax_fan_in

        if not self.grows_from_zero():
            return False
        inner = cast(nn.Linear, self.child.inner)
        bias = inner.bias if inner.bias is not None else inner.weight.new_zeros(inner.out_features)
        current = torch.cat([inner.weight, bias[:, None]], dim=1)
        rows = gradmax_fan_in(current, inputs.to(current.device), deltas.to(current.device))
        inner.weight.copy_(rows[:, :-1])
        if inner.bias is not None:
            inner.bias.copy_(rows[:, -1])
        return True

    # -- lifecycle -----------------------------------------------------------

    def _move_to(self, target: SeedState) -> None:
        if target not in ALLOWED_TRANSITIONS[self._state]:
            allowed = ", ".join(sorted(s.value for s in ALLOWED_TRANSITIONS[self._state])) or "nothing (final)"
            raise SeedLifecycleError(
                f"{self.seed_id}: cannot go from {self._state.value} to {target.value}; "
                f"allowed from {self._state.value}: {allowed}"
            )
        self._set_state(target)

    def _set_state(self, state: SeedState) -> None:
        self._state = state
        self._child_in_use = state in CHILD_IN_USE
        self._whole = state is SeedState.ACTIVE
        self._watching = state in (SeedState.DORMANT, SeedState.TRAINING)
        self._learns_in_shadow = None  # asked again once the child's weights are those of this state
        if not self._watching:
            self._seen = None
        self.lifecycle_code.fill_(STATE_CODES.index(state))

    def shadow_trains(self) -> bool:
        """Whether the child has anything to learn in the shadow: not when it already reproduces its
        input exactly (its ``is_identity()`` says so, as a residual blueprint's zero branch does).
        Such a seed keeps no reservoir and takes no shadow steps; its progress is 1 at once, so it
        blends in at the next epoch's end."""
        is_identity = getattr(self.child, "is_identity", None)
        return not (callable(is_identity) and is_identity())

    def _learns(self) -> bool:
        """:meth:`shadow_trains`, asked once per germination (a dormant child never changes)."""
        if self._learns_in_shadow is None:
            self._learns_in_shadow = self.shadow_trains()
        return self._learns_in_shadow

    def _set_blend_step(self, step: int) -> None:
        self._blend_step = step
        self.blend_steps_done.fill_(step)
        self.blend_alpha.fill_(self.alpha)

    @property
    def alpha(self) -> float:
        """α as a Python number: 0 until blending, ``blend_step/blend_steps`` while blending, 1.0 active."""
        if self._state is SeedState.BLENDING:
            return self._blend_step / self.config.blend_steps
        return 1.0 if self._state is SeedState.ACTIVE else 0.0

    def germinate(self) -> None:
        """dormant → training: start shadow-training the child on this slot's activations."""
        self._move_to(SeedState.TRAINING)
        self._release_shadow_state()
        self._allocate_moments()
        self.progress = 0.0

    def start_blending(self) -> None:
        """training → blending: α starts ramping from 0."""
        self._move_to(SeedState.BLENDING)
        self._set_blend_step(0)
        self._release_shadow_state()

    def advance_blend(self) -> bool:
        """One optimizer step of blending; True once α has reached exactly 1.0."""
        if self._state is not SeedState.BLENDING:
            raise SeedLifecycleError(f"{self.seed_id}: advance_blend needs state blending, not {self._state.value}")
        self._set_blend_step(min(self._blend_step + 1, self.config.blend_steps))
        return self._blend_step == self.config.blend_steps

    def activate(self) -> None:
        """blending → active; only once α is 1.0, so the output does not move."""
        if self._state is SeedState.BLENDING and self._blend_step != self.config.blend_steps:
            raise SeedLifecycleError(
                f"{self.seed_id}: cannot activate at alpha {self.alpha:.3f}; blending must reach 1.0 first"
            )
        self._move_to(SeedState.ACTIVE)
        self._set_blend_step(self.config.blend_steps)

    def cull(self) -> None:
        """Any non-dormant state → culled: the seed is an identity again, for good."""
        self._move_to(SeedState.CULLED)
        self._set_blend_step(0)
        self._release_shadow_state()

    # -- observation: health and reservoir ------------------------------------

    def observe(self) -> None:
        """Learn from the last training batch forward saw: the reservoir, and (one batch in
        ``health_every``) the health signal. The growth driver calls it after each step."""
        # Plain attributes through __dict__: this runs every step for every seed, and
        # nn.Module.__setattr__ would cost more than the rest of a dormant seed's step.
        state = self.__dict__
        x = state["_seen"]
        if x is None:
            return
        state["_seen"] = None
        state["_batch_size"] = x.shape[0]
        health = state["_health_next"] and self._state is SeedState.DORMANT
        state["_observed"] += 1
        state["_health_next"] = self._observed % self.config.health_every == 0
        if self._state is SeedState.TRAINING and self._learns():
            self._check_features(x)
            self._remember(x)
        if not health:
            return
        self._check_features(x)  # the first batch always updates the health: a wrong shape stops step 1
        # The stash is detached: no autograd context needed here (and none paid for).
        if not state.pop("_health_in_graph", False):
            self._update_health(x)

    def _check_features(self, x: torch.Tensor) -> None:
        axis = self.feature_axis(x.ndim) if x.ndim > 1 else -1
        if x.ndim < 2 or x.shape[axis] != self.dim:
            raise SeedShapeError(
                f"seed {self.seed_id or '(unnamed)'} expects {self.dim} features on axis {axis} of its input and "
                f"got shape {tuple(x.shape)}; give SentinelSeed the right dim, or channel_axis= where the "
                "features are (1 for Conv1d's (B, C, L))"
            )

    def _remember(self, x: torch.Tensor) -> None:
        """Keep the most recent training samples in a ring buffer: ``buffer_size`` of them, fewer where
        that many would take more than ``buffer_mb``."""
        dtype = self._child_dtype()
        sample_bytes = max(1, x[0].numel() * torch.empty((), dtype=dtype).element_size())
        size = max(1, min(self.config.buffer_size, int(self.config.buffer_mb * 2**20) // sample_bytes))
        rows = x[-size:].to(dtype)
        if self.reservoir_data is None or self.reservoir_data.shape != (size, *rows.shape[1:]):
            self.reservoir_data = rows.new_empty((size, *rows.shape[1:]))
            self._reservoir_next = self._reservoir_filled = 0
        start, end = self._reservoir_next, self._reservoir_next + rows.shape[0]
        if end <= size:
            self.reservoir_data[start:end] = rows
        else:
            split = size - start
            self.reservoir_data[start:] = rows[:split]
            self.reservoir_data[: end - size] = rows[split:]
        self._reservoir_next = end % size
        self._reservoir_filled = min(size, self._reservoir_filled + rows.shape[0])

    def reservoir(self) -> torch.Tensor:
        """The activations remembered so far (empty before germination)."""
        if self.reservoir_data is None:
            return self.health_var.new_empty((0, self.dim))
        return self.reservoir_data[: self._reservoir_filled]

    def _child_dtype(self) -> torch.dtype:
        floating = [p.dtype for p in self.child.parameters() if p.is_floating_point()]
        return floating[0] if floating else self.health_var.dtype

    # -- shadow training ------------------------------------------------------

    def _allocate_moments(self) -> None:
        self._shadow_moments = []
        self._shadow_steps = 0
        if not self._learns():
            return
        for index, param in enumerate(self.child.parameters()):
            names = (f"shadow_exp_avg_{index}", f"shadow_exp_avg_sq_{index}", f"shadow_step_{index}")
            self.register_buffer(names[0], torch.zeros_like(param), persistent=False)
            self.register_buffer(names[1], torch.zeros_like(param), persistent=False)
            # Adam's step count as torch keeps it for a fused step: a float on the parameter's device.
            self.register_buffer(names[2], torch.zeros((), device=param.device), persistent=False)
            self._shadow_moments.append(names)

    def _release_shadow_state(self) -> None:
        for names in self._shadow_moments:
            for name in names:
                delattr(self, name)
        self._shadow_moments = []
        self._shadow_steps = 0
        self.reservoir_data = None
        self._reservoir_next = self._reservoir_filled = 0

    def shadow_step(self, batch_size: int | None = None) -> torch.Tensor | None:
        """One Adam step (lr ``shadow_lr``) of reconstruction on a random reservoir batch; the loss (a tensor).

        The batch is as big as the last training batch unless ``batch_size`` says otherwise.
        Gradients come from ``torch.autograd.grad`` on the child alone: nothing
        reaches ``.grad`` (which the task optimizer reads) or a DDP reducer.
        """
        if self._state is not SeedState.TRAINING or self._reservoir_filled == 0:
            return None
        assert self.reservoir_data is not None
        if not self._shadow_moments:  # a model loaded mid-shadow-training without its training state
            self._allocate_moments()
        size = min(batch_size or self._batch_size, self._reservoir_filled)
        index = torch.randint(self._reservoir_filled, (size,)).to(self.reservoir_data.device)
        batch = self.reservoir_data[index]
        params = list(self.child.parameters())
        device_type = batch.device.type
        with torch.enable_grad(), torch.autocast(device_type, enabled=False):
            loss = nn.functional.mse_loss(self.child(batch), batch)
            grads: list[torch.Tensor | None] = list(torch.autograd.grad(loss, params, allow_unused=True))
        self._shadow_steps += 1
        used = [(index, grad) for index, grad in enumerate(grads) if grad is not None]
        if used:
            moments = [[getattr(self, name) for name in self._shadow_moments[index]] for index, _ in used]
            # One fused kernel for every parameter where PyTorch has one (CPU, CUDA), as the task's Adam.
            fused = all(params[index].device.type in ("cpu", "cuda") for index, _ in used)
            with torch.no_grad():
                adam(
                    [params[index] for index, _ in used],
                    [grad for _, grad in used],
                    [avg for avg, _, _ in moments],
                    [avg_sq for _, avg_sq, _ in moments],
                    [],
                    [step for _, _, step in moments],
                    foreach=not fused,
                    fused=fused,
                    amsgrad=False,
                    beta1=ADAM_BETAS[0],
                    beta2=ADAM_BETAS[1],
                    lr=self.config.shadow_lr,
                    weight_decay=0.0,
                    eps=ADAM_EPS,
                    maximize=False,
                )
        return loss.detach()  # a tensor: reading it would sync the device every step

    @torch.no_grad()
    def measure_progress(self) -> float:
        """Explained variance ``1 − mse/var(x)`` over the reservoir, clipped to [0, 1]; 1 for a child with
        nothing to learn (:meth:`shadow_trains`)."""
        if self._state is SeedState.TRAINING and not self._learns():
            self.progress = 1.0
            return self.progress
        data = self.reservoir()
        if data.shape[0] < 2:
            self.progress = 0.0
            return self.progress
        axis = self.feature_axis(data.ndim)
        squared_error = 0.0
        # In chunks: one forward of a whole reservoir of feature maps would hold all its activations.
        for chunk in torch.split(data, PROGRESS_CHUNK):
            with torch.autocast(data.device.type, enabled=False):
                rebuilt = self.child(chunk)
            squared_error += float((rebuilt.float() - chunk.float()).square().sum())
        variance = float(per_feature(data, axis).float().var(dim=0, unbiased=False).mean())
        mse = squared_error / data.numel()
        self.progress = 0.0 if variance <= 0 else min(1.0, max(0.0, 1.0 - mse / variance))
        return self.progress

    # -- persistence -----------------------------------------------------------

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        # The buffers are the truth in a state dict; bring the Python mirrors in line.
        code = int(self.lifecycle_code)
        if not 0 <= code < len(STATE_CODES):
            raise SeedLifecycleError(f"{self.seed_id or prefix.rstrip('.')}: unknown lifecycle code {code}")
        self._set_state(STATE_CODES[code])
        self._blend_step = int(self.blend_steps_done)

    def training_state(self) -> dict[str, Any]:
        """What resuming training needs beyond ``state_dict()``: health, reservoir, shadow optimizer."""
        return {
            "progress": self.progress,
            "drift": self.drift,
            "health_var": self.health_var.clone(),
            "health_mean": self.health_mean.clone(),
            "health_count": self.health_count.clone(),
            "observed": self._observed,
            "reservoir": None if self.reservoir_data is None else self.reservoir_data.clone(),
            "reservoir_next": self._reservoir_next,
            "reservoir_filled": self._reservoir_filled,
            "shadow_steps": self._shadow_steps,
            # The moments; each step count is shadow_steps.
            "shadow_moments": [[getattr(self, name).clone() for name in names[:2]] for names in self._shadow_moments],
        }

    def load_training_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`training_state`; tensors are copied, never shared with ``state``."""
        self.progress = float(state["progress"])
        self._drift = float(state["drift"])
        self.health_var.copy_(state["health_var"])
        if "health_mean" in state:  # checkpoints from before health was scale-free lack it
            self.health_mean.copy_(state["health_mean"])
        self.health_count.copy_(state["health_count"])
        self._health_batches = int(self.health_count)
        self._observed = int(state["observed"])
        self._health_next = self._observed % self.config.health_every == 0
        reservoir = state["reservoir"]
        device = self.health_var.device
        self.reservoir_data = None if reservoir is None else reservoir.to(device, self._child_dtype(), copy=True)
        self._reservoir_next = int(state["reservoir_next"])
        self._reservoir_filled = int(state["reservoir_filled"])
        moments = state["shadow_moments"]
        if moments:
            self._allocate_moments()
            for names, tensors in zip(self._shadow_moments, moments, strict=True):
                for name, tensor in zip(names, tensors, strict=False):  # the two moments; the step below
                    getattr(self, name).copy_(tensor)
        self._shadow_steps = int(state["shadow_steps"])
        for names in self._shadow_moments:
            getattr(self, names[2]).fill_(self._shadow_steps)

    def extra_repr(self) -> str:
        return f"{self.seed_id or 'seed'}, dim={self.dim}, state={self._state.value}, alpha={self.alpha:.3f}"
