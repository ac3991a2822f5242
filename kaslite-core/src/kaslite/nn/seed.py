"""The sentinel seed: its lifecycle, output formula, health, shadow training and drift.

A seed's output is always ``y = x + α·(child(x) − x)``. α is 0 while dormant
and shadow-training, grows by ``1/blend_steps`` per optimizer step while
blending and is exactly 1.0 when active, so every transition is continuous by
construction. Where α is 0 the seed returns ``x`` itself: a bitwise identity.
"""

import enum
from typing import Any

import torch
from torch import nn

from kaslite.config import SeedConfig
from kaslite.errors import KasliteError


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


class SeedLifecycleError(KasliteError):
    """A transition the lifecycle does not allow (e.g. dormant → active)."""


class SentinelSeed(nn.Module):
    """A dormant slot that can grow ``child`` into the trunk without disturbing it."""

    health_var: torch.Tensor

    def __init__(self, seed_id: str, layer: int, dim: int, child: nn.Module, config: SeedConfig) -> None:
        super().__init__()
        self.seed_id = seed_id
        self.layer = layer
        self.dim = dim
        self.child = child
        self.config = config
        self.state = SeedState.DORMANT
        self.blend_step = 0
        self.progress = 0.0
        self.drift = 0.0
        # Health: running per-feature variance of the activations at this slot.
        self.register_buffer("health_var", torch.zeros(dim))
        self.health_batches = 0
        self._batches_seen = 0
        # Shadow-training state; allocated at germination, released at blending.
        self._reservoir: torch.Tensor | None = None
        self._reservoir_next = 0
        self._reservoir_filled = 0
        self._shadow_optimizer: torch.optim.Adam | None = None

    # -- what the trunk sees -------------------------------------------------

    @property
    def alpha(self) -> float:
        """The blend weight: 0 until blending, ``blend_step/blend_steps`` while blending, 1.0 active."""
        if self.state is SeedState.BLENDING:
            return self.blend_step / self.config.blend_steps
        return 1.0 if self.state is SeedState.ACTIVE else 0.0

    @property
    def health(self) -> float:
        """Mean running activation variance at the slot; low means a bottleneck."""
        return float(self.health_var.mean())

    def delta(self, x: torch.Tensor) -> torch.Tensor | None:
        """``α·(child(x) − x)``, or None where the seed is an exact identity."""
        state = self.state
        if self.training and state is not SeedState.CULLED:
            self._observe_health(x)  # the health signal stays live after germination too
        if state is SeedState.DORMANT:
            return None
        if state is SeedState.TRAINING:
            if self.training:
                self._remember(x)
            return None
        alpha = self.alpha
        if alpha == 0.0:  # culled, or blending at step 0
            return None
        change: torch.Tensor = alpha * (self.child(x) - x)
        if self.training:
            with torch.no_grad():
                self.drift = float((change.norm(dim=1) / x.norm(dim=1).clamp_min(1e-12)).mean())
        return change

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x + α·(child(x) − x)`` for this seed alone."""
        change = self.delta(x)
        return x if change is None else x + change

    # -- lifecycle -----------------------------------------------------------

    def _move_to(self, target: SeedState) -> None:
        if target not in ALLOWED_TRANSITIONS[self.state]:
            allowed = ", ".join(sorted(s.value for s in ALLOWED_TRANSITIONS[self.state])) or "nothing (final)"
            raise SeedLifecycleError(
                f"{self.seed_id}: cannot go from {self.state.value} to {target.value}; "
                f"allowed from {self.state.value}: {allowed}"
            )
        self.state = target

    def germinate(self) -> None:
        """dormant → training: start shadow-training the child on this slot's activations."""
        self._move_to(SeedState.TRAINING)
        self._reservoir = torch.empty(self.config.buffer_size, self.dim, device=self.health_var.device)
        self._reservoir_next = 0
        self._reservoir_filled = 0
        self._shadow_optimizer = torch.optim.Adam(self.child.parameters(), lr=self.config.shadow_lr)
        self.progress = 0.0

    def start_blending(self) -> None:
        """training → blending: α starts ramping from 0."""
        self._move_to(SeedState.BLENDING)
        self.blend_step = 0
        self._release_shadow_state()

    def advance_blend(self) -> bool:
        """One optimizer step of blending; True once α has reached exactly 1.0."""
        if self.state is not SeedState.BLENDING:
            raise SeedLifecycleError(f"{self.seed_id}: advance_blend needs state blending, not {self.state.value}")
        self.blend_step = min(self.blend_step + 1, self.config.blend_steps)
        return self.blend_step == self.config.blend_steps

    def activate(self) -> None:
        """blending → active; only once α is 1.0, so the output does not move."""
        if self.state is SeedState.BLENDING and self.blend_step != self.config.blend_steps:
            raise SeedLifecycleError(
                f"{self.seed_id}: cannot activate at alpha {self.alpha:.3f}; blending must reach 1.0 first"
            )
        self._move_to(SeedState.ACTIVE)

    def cull(self) -> None:
        """Any non-dormant state → culled: the seed is an identity again, for good."""
        self._move_to(SeedState.CULLED)
        self.blend_step = 0
        self._release_shadow_state()

    # -- health and shadow training -------------------------------------------

    def _observe_health(self, x: torch.Tensor) -> None:
        # Called on every training batch of every seed, so it samples one
        # batch in `health_every` and uses detach() rather than a no_grad context:
        # dormant seeds must cost almost nothing (bench/overhead.py).
        self._batches_seen += 1
        if x.shape[0] < 2 or (self._batches_seen - 1) % self.config.health_every:
            return
        var = x.detach().var(dim=0, unbiased=False)
        if self.health_batches == 0:
            self.health_var.copy_(var)
        else:
            self.health_var.lerp_(var, self.config.health_momentum)
        self.health_batches += 1

    @torch.no_grad()
    def _remember(self, x: torch.Tensor) -> None:
        """Keep the most recent ``buffer_size`` training rows in a ring buffer."""
        assert self._reservoir is not None
        rows = x.detach()[-self.config.buffer_size :]
        size = self.config.buffer_size
        start = self._reservoir_next
        end = start + rows.shape[0]
        if end <= size:
            self._reservoir[start:end] = rows
        else:
            split = size - start
            self._reservoir[start:] = rows[:split]
            self._reservoir[: end - size] = rows[split:]
        self._reservoir_next = end % size
        self._reservoir_filled = min(size, self._reservoir_filled + rows.shape[0])

    def reservoir(self) -> torch.Tensor:
        """The activations remembered so far (empty before germination)."""
        if self._reservoir is None:
            return torch.empty(0, self.dim)
        return self._reservoir[: self._reservoir_filled]

    def shadow_step(self, batch_size: int) -> float | None:
        """One Adam step of reconstruction on a random batch of the reservoir; the loss."""
        if self.state is not SeedState.TRAINING or self._reservoir_filled == 0:
            return None
        assert self._shadow_optimizer is not None and self._reservoir is not None
        index = torch.randint(self._reservoir_filled, (min(batch_size, self._reservoir_filled),))
        batch = self._reservoir[index]
        loss = nn.functional.mse_loss(self.child(batch), batch)
        self._shadow_optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        self._shadow_optimizer.step()
        # No stale gradient may reach the trunk's optimizer, which also holds these parameters.
        self._shadow_optimizer.zero_grad(set_to_none=True)
        return loss.item()

    @torch.no_grad()
    def measure_progress(self) -> float:
        """Explained variance ``1 − mse/var(x)`` over the reservoir, clipped to [0, 1]."""
        data = self.reservoir()
        if data.shape[0] < 2:
            self.progress = 0.0
            return self.progress
        variance = float(data.var(dim=0, unbiased=False).mean())
        mse = float(nn.functional.mse_loss(self.child(data), data))
        self.progress = 0.0 if variance <= 0 else min(1.0, max(0.0, 1.0 - mse / variance))
        return self.progress

    def _release_shadow_state(self) -> None:
        self._reservoir = None
        self._reservoir_next = self._reservoir_filled = 0
        self._shadow_optimizer = None

    # -- persistence (part of the module's state_dict) -------------------------

    def get_extra_state(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "blend_step": self.blend_step,
            "progress": self.progress,
            "drift": self.drift,
            "health_batches": self.health_batches,
            "batches_seen": self._batches_seen,
            "reservoir": None if self._reservoir is None else self._reservoir.clone(),
            "reservoir_next": self._reservoir_next,
            "reservoir_filled": self._reservoir_filled,
            "shadow_optimizer": None if self._shadow_optimizer is None else self._shadow_optimizer.state_dict(),
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.state = SeedState(state["state"])
        self.blend_step = int(state["blend_step"])
        self.progress = float(state["progress"])
        self.drift = float(state["drift"])
        self.health_batches = int(state["health_batches"])
        self._batches_seen = int(state["batches_seen"])
        self._reservoir = state["reservoir"]
        self._reservoir_next = int(state["reservoir_next"])
        self._reservoir_filled = int(state["reservoir_filled"])
        self._shadow_optimizer = None
        if state["shadow_optimizer"] is not None:
            self._shadow_optimizer = torch.optim.Adam(self.child.parameters(), lr=self.config.shadow_lr)
            self._shadow_optimizer.load_state_dict(state["shadow_optimizer"])

    def extra_repr(self) -> str:
        return f"{self.seed_id}, state={self.state.value}, alpha={self.alpha:.3f}"
