"""The seed lifecycle and the output formula, with exact expectations."""

import pytest
import torch
from torch import nn

from kaslite.config import SeedConfig
from kaslite.nn import ALLOWED_TRANSITIONS, SeedLifecycleError, SeedState, SentinelSeed
from kaslite.nn.blueprints import mlp

DIM = 8


def make_seed(**config) -> SentinelSeed:
    torch.manual_seed(0)
    config = SeedConfig(**{"blend_steps": 4, "buffer_size": 32, **config})
    return SentinelSeed(DIM, mlp(DIM, 16), config, seed_id="seed1_1", layer=1)


def step(seed: SentinelSeed, x: torch.Tensor) -> torch.Tensor:
    """One training batch through the seed, then what the growth driver does after the optimizer step."""
    out = seed(x)
    seed.observe()
    return out


def batch(n: int = 10) -> torch.Tensor:
    return torch.randn(n, DIM, generator=torch.Generator().manual_seed(1))


def test_dormant_is_the_identity_and_stores_no_batches():
    seed = make_seed().train()
    x = batch()
    assert step(seed, x) is x
    assert seed.reservoir().shape == (0, DIM)
    assert seed.reservoir_data is None
    assert seed.health_var.shape == (DIM,)


def test_the_state_dict_holds_what_inference_needs_and_nothing_of_training():
    seed = make_seed().train()
    seed.germinate()
    step(seed, batch())
    seed.shadow_step()
    children = {f"child.{name}" for name, _ in seed.child.state_dict().items()}
    assert set(seed.state_dict()) == {"blend_alpha", "lifecycle_code", "blend_steps_done"} | children
    # The training state is in buffers all the same, so .to() moves it.
    buffers = {name for name, _ in seed.named_buffers()}
    assert {"health_var", "reservoir_data", "shadow_exp_avg_0", "shadow_exp_avg_sq_0"} <= buffers


def test_health_comes_from_the_running_activation_variance_and_mean():
    seed = make_seed(health_momentum=0.5, health_every=1).train()
    first, second = batch(), batch() * 3
    step(seed, first)
    assert torch.equal(seed.health_var, first.var(dim=0, unbiased=False))
    step(seed, second)
    expected = first.var(dim=0, unbiased=False).lerp(second.var(dim=0, unbiased=False), 0.5)
    assert torch.allclose(seed.health_var, expected)
    mean = first.mean(dim=0).lerp(second.mean(dim=0), 0.5)
    assert torch.allclose(seed.health_mean, mean)
    assert seed.health == pytest.approx(float((expected / (expected + mean.square())).mean()))


def test_health_samples_one_batch_in_health_every():
    seed = make_seed(health_momentum=0.5, health_every=3).train()
    batches = [batch() * (i + 1) for i in range(4)]
    for x in batches:
        step(seed, x)
    assert seed.health_batches == 2  # batches 1 and 4
    expected = batches[0].var(dim=0, unbiased=False).lerp(batches[3].var(dim=0, unbiased=False), 0.5)
    assert torch.allclose(seed.health_var, expected)


def test_eval_mode_does_not_touch_health():
    seed = make_seed().eval()
    step(seed, batch())
    assert seed.health_batches == 0 and seed.health == 0.0


def test_full_lifecycle_alpha_and_continuity():
    seed = make_seed().train()
    x = batch()
    seed.germinate()
    assert seed.state is SeedState.TRAINING and seed.alpha == 0.0
    assert step(seed, x) is x  # shadow training never touches the trunk's output
    assert seed.reservoir().shape == (10, DIM)
    seed.start_blending()
    assert seed.state is SeedState.BLENDING and seed.alpha == 0.0
    assert torch.equal(seed(x), x)
    alphas = []
    done = False
    while not done:
        done = seed.advance_blend()
        alphas.append(seed.alpha)
    assert alphas == [0.25, 0.5, 0.75, 1.0]
    blended = seed(x)
    seed.activate()
    assert seed.state is SeedState.ACTIVE and seed.alpha == 1.0
    active = seed(x)
    assert (active - blended).abs().max() <= 1e-6
    with torch.no_grad():
        assert torch.allclose(active, x + (seed.child(x) - x))


def test_activation_before_alpha_reaches_one_is_refused():
    seed = make_seed()
    seed.germinate()
    seed.start_blending()
    seed.advance_blend()
    with pytest.raises(SeedLifecycleError, match=r"cannot activate at alpha 0\.250"):
        seed.activate()


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (start, target)
        for start in SeedState
        for target in SeedState
        if target not in ALLOWED_TRANSITIONS[start] and target is not SeedState.DORMANT
    ],
)
def test_every_invalid_transition_is_a_clear_error(start, target):
    seed = make_seed()
    seed._set_state(start)
    seed._blend_step = seed.config.blend_steps  # so only the lifecycle rule can refuse
    action = {
        SeedState.TRAINING: seed.germinate,
        SeedState.BLENDING: seed.start_blending,
        SeedState.ACTIVE: seed.activate,
        SeedState.CULLED: seed.cull,
    }[target]
    with pytest.raises(SeedLifecycleError, match=f"seed1_1: cannot go from {start.value} to {target.value}"):
        action()


@pytest.mark.parametrize("state", [SeedState.TRAINING, SeedState.BLENDING, SeedState.ACTIVE])
def test_cull_returns_to_identity(state):
    seed = make_seed().train()
    seed.germinate()
    if state is not SeedState.TRAINING:
        seed.start_blending()
        while not seed.advance_blend():
            pass
        if state is SeedState.ACTIVE:
            seed.activate()
    seed.cull()
    x = batch()
    assert seed.state is SeedState.CULLED and seed.alpha == 0.0 and step(seed, x) is x
    assert seed.reservoir().shape == (0, DIM)


def test_reservoir_keeps_the_most_recent_rows():
    seed = make_seed(buffer_size=5).train()
    seed.germinate()
    rows = torch.arange(8 * DIM, dtype=torch.float32).reshape(8, DIM)
    step(seed, rows[:3])
    step(seed, rows[3:])
    kept = {tuple(r.tolist()) for r in seed.reservoir()}
    assert kept == {tuple(r.tolist()) for r in rows[3:]}


def test_shadow_training_raises_progress_and_leaves_no_gradients():
    seed = make_seed(shadow_lr=1e-2, buffer_size=256).train()
    seed.germinate()
    step(seed, torch.relu(torch.randn(256, DIM, generator=torch.Generator().manual_seed(3))))
    before = seed.measure_progress()
    for _ in range(300):
        seed.shadow_step(64)
    after = seed.measure_progress()
    assert 0.0 <= before < after <= 1.0
    assert after > 0.9
    assert all(p.grad is None for p in seed.child.parameters())


def test_health_is_scale_free_and_zero_for_dead_features():
    seed = make_seed(health_every=1).train()
    x = batch()
    step(seed, x)
    healthy = seed.health
    step(make_seed(health_every=1).train(), x)  # the same batch, read by another seed: the same health
    scaled = make_seed(health_every=1).train()
    step(scaled, 1000 * x)
    assert 0.0 < healthy <= 1.0 and scaled.health == pytest.approx(healthy, rel=1e-4)
    dead = make_seed(health_every=1).train()
    step(dead, torch.zeros_like(x))
    assert dead.health == 0.0  # no variance at all: a bottleneck, not a division by zero


class OriginalActiveSeed(SentinelSeed):
    """The design kaslite replaced: active seeds returned x + child(x), blending a mix."""

    def forward(self, x):
        if self.state is SeedState.ACTIVE:
            return x + self.child(x)
        return super().forward(x)


def test_the_original_jump_at_the_end_of_blending_would_be_caught():
    torch.manual_seed(0)
    child = nn.Linear(DIM, DIM)
    nn.init.eye_(child.weight)
    nn.init.zeros_(child.bias)  # child ≈ identity, as after shadow training
    seed = OriginalActiveSeed(DIM, child, SeedConfig(blend_steps=2), seed_id="seed1_1")
    seed.germinate()
    seed.start_blending()
    while not seed.advance_blend():
        pass
    x = batch()
    with torch.no_grad():
        before = seed(x)
        seed.activate()
        after = seed(x)
    assert torch.allclose(before, x)
    assert torch.allclose(after, 2 * x)  # ≈x → ≈2x
    assert (after - before).abs().max() > 1e-6  # the check kaslite applies to every transition fails here


def test_a_child_that_already_reproduces_its_input_takes_no_shadow_steps():
    from kaslite.nn.blueprints import residual

    torch.manual_seed(0)
    seed = SentinelSeed(DIM, residual(DIM, 16), SeedConfig(buffer_size=32), seed_id="seed1_1").train()
    seed.germinate()
    before = [p.detach().clone() for p in seed.child.parameters()]
    for _ in range(3):
        step(seed, batch())
        assert seed.shadow_step() is None
    assert not seed.shadow_trains() and seed.reservoir_data is None and seed._shadow_moments == []
    assert seed.measure_progress() == 1.0  # its reconstruction loss is 0: ready to blend
    assert all(torch.equal(a, b) for a, b in zip(before, seed.child.parameters(), strict=True))

    # A residual branch that is not zero (trained elsewhere) has something to learn: it shadow-trains.
    nn.init.normal_(seed.child.outer.weight, std=0.1)
    other = SentinelSeed(DIM, seed.child, SeedConfig(buffer_size=32), seed_id="seed1_2").train()
    other.germinate()
    step(other, batch())
    assert other.shadow_trains() and other.shadow_step() is not None and other.reservoir().shape[0] == 10


def test_health_is_measured_while_dormant_and_kept_from_germination_on():
    seed = make_seed(health_every=1).train()
    step(seed, batch())
    measured = seed.health
    seed.germinate()
    step(seed, batch() * 5 + 3)  # other statistics: they would move the health if it were measured
    assert seed.health == measured and seed.health_batches == 1


def test_an_active_seed_returns_its_childs_output_bit_for_bit():
    seed = make_seed(blend_steps=1).train()
    seed.germinate()
    seed.start_blending()
    assert seed.advance_blend()
    seed.activate()
    x = batch()
    with torch.no_grad():
        assert torch.equal(seed(x), seed.child(x))
        assert torch.equal(seed.delta(x), seed.child(x) - x)
