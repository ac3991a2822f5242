"""kaslite.fit: kaslite's loop on the user's own model and tensors, and on the default network."""

import pytest
import torch
from torch import nn

import kaslite
import kaslite.train.trainer
from kaslite.config import SeedConfig
from kaslite.errors import InvalidValue
from kaslite.nn import SentinelSeed
from kaslite.train.trainer import clip_grad_norm

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
    data = xor()
    result = kaslite.fit(model, data, config=QUICK)
    assert result.model is model and result.run_dir is None
    assert model.grow.state.value == "active"
    assert [row["epoch"] for row in result.history] == list(range(1, 9))
    assert result.metrics["seeds_activated"] == 1
    with torch.no_grad():  # the accuracy reported is the grown model's, on the user's validation tensors
        accuracy = (model.eval()(data[2]).argmax(dim=1) == data[3]).float().mean().item()
    assert result.metrics["val_acc"] == pytest.approx(accuracy, abs=1e-6)
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


def test_reduce_lr_on_plateau_steps_with_the_validation_loss():
    torch.manual_seed(0)
    seen, optimizers = [], []

    def plateau(optimizer):
        optimizers.append(optimizer)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=0, threshold=10.0)
        step = scheduler.step
        scheduler.step = lambda metrics: seen.append(metrics) or step(metrics)
        return scheduler

    result = kaslite.fit(Mine(), xor(), config=QUICK, scheduler=plateau)
    assert seen == [row["val_loss"] for row in result.history]
    # threshold=10 (relative): no epoch counts as an improvement, the first included, so each of the
    # 8 epochs halves the lr; stepped without the loss, it would raise a TypeError at the first.
    assert [group["lr"] for group in optimizers[0].param_groups] == [3e-3 * 0.5**8]


@pytest.mark.parametrize("interval", [None, "step"])
def test_a_per_batch_schedule_steps_per_batch(interval):
    torch.manual_seed(0)
    x_train = xor()[0]
    steps = 8 * -(-x_train.shape[0] // 16)  # epochs × batches per epoch
    made = []

    def one_cycle(optimizer):
        made.append(torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.01, total_steps=steps))
        return made[-1]

    kaslite.fit(Mine(), xor(), config=QUICK, scheduler=one_cycle, scheduler_interval=interval)
    (scheduler,) = made
    # Stepped once per optimizer step: OneCycleLR would raise on a step past total_steps.
    assert scheduler.last_epoch == steps


def test_an_epoch_interval_and_a_bad_interval():
    made = []

    def step_lr(optimizer):
        made.append(torch.optim.lr_scheduler.StepLR(optimizer, step_size=1))
        return made[-1]

    kaslite.fit(Mine(), xor(), config=QUICK, scheduler=step_lr)
    assert made[0].last_epoch == 8  # once per epoch: the default for schedules defined per epoch
    with pytest.raises(kaslite.errors.ConfigError, match="invalid scheduler_interval = 'batch': must be one of"):
        kaslite.fit(Mine(), xor(), config=QUICK, scheduler=step_lr, scheduler_interval="batch")
    plateau = lambda optimizer: torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)  # noqa: E731
    with pytest.raises(kaslite.errors.ConfigError, match="cannot drive ReduceLROnPlateau"):
        kaslite.fit(Mine(), xor(), config=QUICK, scheduler=plateau, scheduler_interval="step")


@pytest.mark.parametrize("scale", [1e-3, 1e3])
def test_the_trainers_clipping_is_pytorchs_to_the_bit(scale):
    torch.manual_seed(0)
    ours = [torch.nn.Parameter(torch.randn(shape)) for shape in [(5, 3), (3,), (1,), (7, 2)]]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    for mine, other in zip(ours, theirs, strict=True):
        mine.grad = torch.randn_like(mine) * scale
        other.grad = mine.grad.clone()
    ours[2].grad = None  # a dormant child's parameter
    theirs[2].grad = None
    before = [None if p.grad is None else p.grad.clone() for p in ours]
    clip_grad_norm(ours, 1.0)
    torch.nn.utils.clip_grad_norm_(theirs, 1.0, foreach=True)
    assert all(torch.equal(a.grad, b.grad) for a, b in zip(ours, theirs, strict=True) if a.grad is not None)
    norm = float(torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in ours if p.grad is not None])))
    if scale > 1:
        assert norm == pytest.approx(1.0, rel=1e-5)
    else:  # under the limit: untouched
        assert all(torch.equal(p.grad, b) for p, b in zip(ours, before, strict=True) if b is not None)


def test_grad_clip_clips_every_step_and_zero_turns_it_off(monkeypatch):
    calls = []

    def recording(params, max_norm):
        calls.append(max_norm)
        return clip_grad_norm(params, max_norm)

    monkeypatch.setattr(kaslite.train.trainer, "clip_grad_norm", recording)
    steps = 8 * -(-xor()[0].shape[0] // 16)
    kaslite.fit(Mine(), xor(), config={**QUICK, "train": {**QUICK["train"], "grad_clip": 0.5}})
    assert calls == [0.5] * steps
    calls.clear()
    kaslite.fit(Mine(), xor(), config={**QUICK, "train": {**QUICK["train"], "grad_clip": 0.0}})
    assert calls == []
    with pytest.raises(kaslite.errors.ConfigError, match="grad_clip"):
        kaslite.fit(Mine(), xor(), config={**QUICK, "train": {**QUICK["train"], "grad_clip": -1.0}})


def test_a_network_with_no_seed_is_refused_before_any_data_are_made(monkeypatch):
    import kaslite.train.trainer as trainer_module

    monkeypatch.setattr(trainer_module, "make_batches", lambda *args: pytest.fail("data made"))
    seedless = {"model": {"seeds_per_layer": 0, "width_seeds": 0, "wide_seeds": 0}}
    with pytest.raises(kaslite.errors.ConfigError, match="seeds_per_layer, width_seeds and wide_seeds are all 0"):
        kaslite.fit(config=seedless)
