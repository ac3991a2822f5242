"""Seeds on (B, C, L) maps: ``channel_axis`` says where the features are; a wrong layout is one clear error."""

import pytest
import torch
from torch import nn

import kaslite
from kaslite.config import SeedConfig
from kaslite.errors import InvalidValue
from kaslite.nn import SentinelSeed
from kaslite.nn.seed import SeedShapeError

QUICK = {
    "train": {"warm_up_epochs": 1, "adaptation_epochs": 6, "batch_size": 16, "lr_schedule": "constant"},
    "controller": {"name": "periodic", "period": 1},
}


class Conv1dNet(nn.Module):
    """A Conv1d trunk over (B, 1, 8) sequences, a seed on its (B, 6, 8) maps, a linear head."""

    def __init__(self, blueprint: str = "mlp") -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 6, 3, padding=1)
        config = SeedConfig(blend_steps=2, progress_thresh=0.0)
        self.grow = SentinelSeed(6, config=config, blueprint=blueprint, channel_axis=1)
        self.head = nn.Linear(6 * 8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.grow(torch.relu(self.conv(x))).flatten(1))


def sequences(n: int = 96) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, 8, generator=g)
    y = (x[:, 0, :4].sum(1) > x[:, 0, 4:].sum(1)).long()
    cut = n * 3 // 4
    return x[:cut], y[:cut], x[cut:], y[cut:]


@pytest.mark.parametrize("blueprint", ["mlp", "residual"])
def test_a_seed_on_conv1d_maps_grows_to_active_fuses_and_exports(blueprint):
    torch.manual_seed(0)
    model = Conv1dNet(blueprint)
    result = kaslite.fit(model, sequences(), config=QUICK)
    transitions = [e for e in result.events if e["event"] == "seed_transition"]
    assert [e["to_state"] for e in transitions] == ["training", "blending", "active"]
    assert all(e["output_change"] <= 1e-6 for e in transitions)  # exact at every transition
    assert model.grow.health > 0  # measured per channel over every position

    model.eval()
    x = sequences()[2]
    fused = kaslite.fuse(model).eval()
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(fused(x), expected, rtol=0, atol=1e-6)
        exported = torch.export.export(fused, (x,))
        torch.testing.assert_close(exported.module()(x), expected, rtol=0, atol=1e-6)


def test_the_child_acts_on_the_channels_at_every_position():
    seed = SentinelSeed(6, channel_axis=1)
    maps = torch.randn(2, 6, 5)
    by_position = torch.stack([seed.child.body(maps[:, :, t]) for t in range(5)], dim=2)
    torch.testing.assert_close(seed.child(maps), by_position)


def test_features_on_the_wrong_axis_are_one_clear_error():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(1, 6, 3, padding=1), SentinelSeed(6), nn.Flatten(), nn.Linear(48, 2))
    grower = kaslite.Grower(model, "never")
    model(torch.randn(4, 1, 8))
    with pytest.raises(SeedShapeError) as raised:
        grower.step()
    assert str(raised.value) == (
        "seed 1 expects 6 features on axis 2 of its input and got shape (4, 6, 8); give SentinelSeed the right "
        "dim, or channel_axis= where the features are (1 for Conv1d's (B, C, L))"
    )


def test_channel_axis_is_for_vector_blueprints_and_not_the_batch_axis():
    with pytest.raises(InvalidValue, match=r"channel_axis = 0.*the batch axis"):
        SentinelSeed(6, channel_axis=0)
    with pytest.raises(InvalidValue, match="applies to vector blueprints"):
        SentinelSeed(6, blueprint="conv", channel_axis=1)
