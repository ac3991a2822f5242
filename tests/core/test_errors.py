"""One line per error, also for exceptions whose message is empty."""

import pytest
import torch
import yaml

from kaslite.config import load_yaml
from kaslite.errors import ConfigError, first_line, message_line
from kaslite.models import load_model, save_model
from kaslite.models.files import ModelFileError


def test_first_line_and_message_line():
    assert first_line(ValueError("bad value\nmore detail")) == "ValueError: bad value"
    assert first_line(RuntimeError()) == first_line(RuntimeError("  \n")) == "RuntimeError"
    assert message_line(ValueError("bad value\nmore")) == "bad value"
    assert message_line(KeyError()) == "KeyError"


def test_errors_with_empty_messages_are_still_one_line(tmp_path, monkeypatch):
    # Each of these used to raise IndexError (the first line of an empty message).
    path = save_model(torch.nn.Linear(2, 2), tmp_path / "m.pt", factory="torch.nn:Linear",
                      factory_kwargs={"in_features": 2, "out_features": 2})  # fmt: skip

    def silent(*args, **kwargs):
        raise RuntimeError()

    monkeypatch.setattr(torch, "load", silent)
    with pytest.raises(ModelFileError, match=r"is not readable: RuntimeError$"):
        load_model(path)
    monkeypatch.undo()
    monkeypatch.setattr(torch.nn.Linear, "load_state_dict", silent)
    with pytest.raises(ModelFileError, match=r"does not fit Linear: RuntimeError$"):
        load_model(path)
    config = tmp_path / "c.yaml"
    config.write_text("a: 1\n")
    monkeypatch.setattr(yaml, "safe_load", lambda text: (_ for _ in ()).throw(yaml.YAMLError()))
    with pytest.raises(ConfigError, match=r"is not valid YAML: YAMLError$"):
        load_yaml(config)
