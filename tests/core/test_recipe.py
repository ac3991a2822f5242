"""The training recipe: a cosine schedule over the run by default, and a learning rate of its own for
what seeds grow when asked."""

import pytest
import torch

from kaslite.errors import InvalidValue
from kaslite.train import Trainer

from .test_trainer import tiny_config

pytestmark = pytest.mark.usefixtures("tiny_data")


def test_the_default_schedule_decays_the_lr_to_zero_by_the_last_epoch(tmp_path):
    trainer = Trainer(tiny_config(), tmp_path)
    trainer.run()
    assert isinstance(trainer.scheduler, torch.optim.lr_scheduler.CosineAnnealingLR)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    constant = Trainer(tiny_config(train={"lr_schedule": "constant"}), tmp_path / "constant")
    constant.run()
    assert constant.scheduler is None and constant.optimizer.param_groups[0]["lr"] == 3e-3


def test_a_users_scheduler_replaces_the_configured_one(tmp_path):
    trainer = Trainer(tiny_config(), tmp_path, scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, 100))
    trainer.run()
    assert isinstance(trainer.scheduler, torch.optim.lr_scheduler.StepLR)


def test_growth_lr_scale_gives_what_seeds_grow_a_group_of_its_own(tmp_path):
    trainer = Trainer(tiny_config(train={"growth_lr_scale": 0.1, "lr_schedule": "constant"}), tmp_path)
    trainer.run()
    trunk, grown = trainer.optimizer.param_groups
    assert (trunk["lr"], grown["lr"]) == (3e-3, pytest.approx(3e-4))
    children = {id(p) for seed in trainer.net.seeds.values() for p in seed.child.parameters()}
    assert {id(p) for p in grown["params"]} == children
    assert not children & {id(p) for p in trunk["params"]}


def test_bad_recipe_values_are_refused_naming_the_field():
    with pytest.raises(InvalidValue, match=r"train\.lr_schedule.*'linear'.*constant, cosine"):
        tiny_config(train={"lr_schedule": "linear"})
    with pytest.raises(InvalidValue, match=r"train\.growth_lr_scale.*0"):
        tiny_config(train={"growth_lr_scale": 0})
