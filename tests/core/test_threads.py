"""Torch threads for training: one for small networks, what torch would use for large ones, or as asked."""

import pytest
import torch

from kaslite.errors import ConfigError
from kaslite.nn import SentinelSeed
from kaslite.train import Tracker, Trainer
from kaslite.train.threads import SHARED_FROM, auto_threads, training_threads

from .test_trainer import tiny_config


def test_the_automatic_count_follows_the_work_per_step():
    assert auto_threads(9_106, 32, available=8) == 1  # the default network
    assert auto_threads(SHARED_FROM // 32 - 1, 32, available=8) == 1
    assert auto_threads(SHARED_FROM // 32, 32, available=8) == 8
    assert auto_threads(2_630_914, 32, available=2) == 2  # hidden 1024
    assert training_threads(3, 10, 32) == 3  # asked for: as asked, whatever the size


class ThreadsSeen(Tracker):
    """What the run says it trains with, and what torch really uses while it does."""

    def on_run_start(self, run):
        self.said = run.threads

    def on_epoch_end(self, record):
        self.used = torch.get_num_threads()


@pytest.mark.parametrize(("setting", "expected"), [(0, 1), (2, 2)])
def test_a_run_trains_on_its_threads_and_gives_the_caller_its_own_back(tiny_data, tmp_path, setting, expected):
    before = torch.get_num_threads()
    torch.set_num_threads(3)  # not what either setting picks, so "unchanged" cannot pass for "chosen"
    try:
        seen = ThreadsSeen()
        config = tiny_config(train={"threads": setting, "warm_up_epochs": 1, "adaptation_epochs": 1})
        trainer = Trainer(config, tmp_path, {"seen": seen})
        trainer.run()
        assert (seen.said, seen.used, trainer.threads) == (expected, expected, expected)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_a_negative_thread_count_is_refused_naming_the_field():
    with pytest.raises(ConfigError) as bad:
        tiny_config(train={"threads": -1})
    assert str(bad.value).startswith("invalid train.threads = -1")


def test_automatic_leaves_a_users_network_on_torchs_own_setting(tiny_data, tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        model = torch.nn.Sequential(torch.nn.Linear(2, 4), SentinelSeed(4), torch.nn.Linear(4, 2))
        config = tiny_config(train={"threads": 0, "warm_up_epochs": 1, "adaptation_epochs": 1})
        trainer = Trainer(config, tmp_path, {}, model=model)
        trainer.run()
        assert trainer.threads == 3
    finally:
        torch.set_num_threads(before)
