"""A module kaslite did not write, with seeds in it, and a training loop driven by ``kaslite.Grower``.

Shared by the growth-driver tests and the fresh-process resume check they start.
"""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import kaslite
from kaslite.config import SeedConfig
from kaslite.nn import SentinelSeed

QUICK = SeedConfig(blend_steps=12, buffer_size=128, progress_thresh=0.3, shadow_lr=1e-2)


class UserNet(nn.Module):
    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Linear(2, width), nn.LayerNorm(width), nn.GELU())
        self.grow_a = SentinelSeed(width, config=QUICK, blueprint_options={"hidden": 24})
        self.mid = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Dropout(0.1))
        self.grow_b = SentinelSeed(width, config=QUICK, blueprint_options={"hidden": 24})
        self.head = nn.Linear(width, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.grow_b(self.mid(self.grow_a(self.stem(x)))))


def xor_data(n: int = 320, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    return x, (x[:, 0] * x[:, 1] > 0).long()


def setup(seed: int = 0, epochs: int = 12) -> dict:
    """Model, AdamW over every parameter, a cosine schedule, a shuffling DataLoader, and the Grower."""
    torch.manual_seed(seed)
    x, y = xor_data()
    model = UserNet()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    loader = DataLoader(
        TensorDataset(x[:256], y[:256]), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    grower = kaslite.Grower(model, "periodic", period=2, probe=x[256:])
    return {"model": model, "optimizer": optimizer, "scheduler": scheduler, "loader": loader, "grower": grower,
            "x_val": x[256:], "y_val": y[256:]}  # fmt: skip


def train_step(run: dict, xb: torch.Tensor, yb: torch.Tensor) -> None:
    run["model"].train()
    run["optimizer"].zero_grad()
    nn.functional.cross_entropy(run["model"](xb), yb).backward()
    run["optimizer"].step()
    run["grower"].step()


def end_epoch(run: dict, step_scheduler: bool = True) -> list:
    model = run["model"].eval()
    with torch.no_grad():
        logits = model(run["x_val"])
    loss = nn.functional.cross_entropy(logits, run["y_val"]).item()
    acc = (logits.argmax(1) == run["y_val"]).float().mean().item()
    made = run["grower"].epoch_end(val_loss=loss, val_acc=acc)
    if step_scheduler:
        run["scheduler"].step()
    return made


def make_user_net(width: int = 16) -> UserNet:
    """A factory function a model file may name (annotated: it builds a module)."""
    return UserNet(width)


def unannotated_factory(width: int = 16):  # no return annotation: a file naming it is refused
    return UserNet(width)
