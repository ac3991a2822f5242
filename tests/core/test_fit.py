"""kaslite.fit: kaslite's loop on the user's own model and tensors, and on the default network."""

import pytest
import torch
from torch import nn

import kaslite
from kaslite.config import SeedConfig
from kaslite.errors import InvalidValue
from kaslite.nn import SentinelSeed

QUICK = {
    "train": {"warm_up_epochs": 2, "adaptation_epochs": 6, "batch_size": 16},
    "controller": {"name": "periodic", "period": 2},
    "seeds": {"blend_steps": 3, "progress_thresh": 0.0},
}


def xor(n: int = 160) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, generator=g)
    y = (x[:, 0] * x[:, 1] > 0).long()
    cut = n * 3 // 4
    return x[:cut], y[:cut], x[cut:], y[cut:]


def images(n: int = 96) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, 6, 6, generator=g)
    y = (x.mean(dim=(1, 2, 3)) > 0).long()
    cut = n * 3 // 4
    return x[:cut], y[:cut], x[cut:], y[cut:]


class Mine(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Linear(2, 8), nn.ReLU())
        self.grow = SentinelSeed(8, config=SeedConfig(blend_steps=3, progress_thresh=0.0))
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.grow(self.stem(x)))


def test_fit_grows_the_users_model_on_their_tensors_and_writes_nothing():
    torch.manual_seed(0)
    model = Mine()
    result = kaslite.fit(model, xor(), config=QUICK)
    assert result.model is model and result.run_dir is None
    assert model.grow.state.value == "active"
    assert [row["epoch"] for row in result.history] == list(range(1, 9))
    assert result.metrics["seeds_activated"] == 1 and 0.0 <= result.metrics["val_acc"] <= 1.0
    assert any(event.get("to_state") == "active" for event in result.events)


def test_fit_writes_a_run_folder_when_given_one(tmp_path):
    torch.manual_seed(0)
    result = kaslite.fit(Mine(), xor(), config=QUICK, run_dir=tmp_path / "run")
    assert {"config.yaml", "metrics.json", "history.csv", "model.pt"} <= {p.name for p in result.run_dir.iterdir()}


def test_the_default_cnn_grows_on_images():
    torch.manual_seed(0)
    config = {**QUICK, "model": {"trunk": "cnn", "blueprint": "conv", "hidden_dim": 4, "num_layers": 1}}
    result = kaslite.fit(data=images(), config=config)
    assert result.metrics["seeds_activated"] == 1
    assert result.model(images()[2]).shape == (24, 2)


@pytest.mark.parametrize(
    ("trunk", "data", "message"),
    [
        ("cnn", xor, r"invalid model\.trunk = 'cnn': it takes images .* the data's samples are 2; use the mlp"),
        ("mlp", images, r"invalid model\.trunk = 'mlp': it takes flat features and the data's samples are 1×6×6"),
    ],
)
def test_a_trunk_that_cannot_take_the_data_is_refused_before_training(trunk, data, message):
    blueprint = "conv" if trunk == "cnn" else "mlp"
    with pytest.raises(InvalidValue, match=message):
        kaslite.fit(data=data(), config={**QUICK, "model": {"trunk": trunk, "blueprint": blueprint}})
