"""The ``models`` model source: registry URIs to kaslite models, for the inference server."""

import pytest
import torch

from kaslite.errors import ConfigError
from kaslite.models import LoadedModel, load_model
from kaslite.plugins import get_model_source
from kaslite_tracking.model_source import parse_models_uri
from kaslite_tracking.store import StoreError


@pytest.fixture
def source(trained, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained.tracking_uri)
    return get_model_source("models")


@pytest.mark.parametrize(
    ("uri", "parsed"),
    [
        ("models:/kaslite@production", ("kaslite", "production", None)),
        ("models:/kaslite/3", ("kaslite", None, "3")),
        ("models:/kaslite/latest", ("kaslite", None, "latest")),
        ("models:/my-model", ("my-model", None, None)),
    ],
)
def test_parse(uri, parsed):
    target = parse_models_uri(uri)  # kaslite's one model-URI parser, held to the registry's form
    assert (target.name, target.alias, target.version) == parsed


@pytest.mark.parametrize("uri", ["models:/kaslite@staging/2", "models:/kaslite/three"])
def test_a_bad_uri_is_one_clear_error(uri):
    with pytest.raises(ConfigError) as bad:
        parse_models_uri(uri)
    assert str(bad.value) == (
        f"invalid model URI {uri!r}: expected models:/NAME@ALIAS or models:/NAME/VERSION "
        "(e.g. models:/kaslite@production)"
    )


@pytest.mark.parametrize("uri", ["models:/kaslite@staging", "models:/kaslite/1", "models:/kaslite/latest"])
def test_load_gives_the_trained_network(trained, source, uri):
    loaded = source.load(uri)
    assert isinstance(loaded, LoadedModel)
    assert (loaded.uri, loaded.version) == (uri, "1")
    reference = load_model(trained.run_dir / "model.pt")
    assert loaded.net.state_dict().keys() == reference.state_dict().keys()
    for name, value in reference.state_dict().items():
        got = loaded.net.state_dict()[name]
        assert torch.equal(got, value) if isinstance(value, torch.Tensor) else got == value, name
    assert {seed_id: seed.state for seed_id, seed in loaded.net.seeds.items()} == {
        seed_id: seed.state for seed_id, seed in reference.seeds.items()
    }
    assert loaded.metadata["val_acc"] == trained.metrics()["val_acc"]
    assert loaded.metadata["registered_model"] == "kaslite"
    assert loaded.metadata["registry"]["aliases"] == ["staging"]
    assert not loaded.net.training


def test_list_versions(trained, source):
    (entry,) = source.list_versions("models:/kaslite@staging")
    assert {key: entry[key] for key in ("version", "aliases", "val_acc", "run_id", "uri")} == {
        "version": "1",
        "aliases": ["staging"],
        "val_acc": trained.metrics()["val_acc"],
        "run_id": trained.run_id,
        "uri": "models:/kaslite/1",
    }
    assert source.list_versions("models:/kaslite") == [entry]


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (
            "models:/kaslite@production",
            "no version of model 'kaslite' holds the alias 'production' yet; "
            "promote one with `kaslite registry promote production`",
        ),
        ("models:/kaslite/7", "model 'kaslite' has no version 7; versions: 1"),
        ("models:/other@staging", "no registered model 'other' in {uri!r}; registered models: kaslite"),
        (
            "models:/kaslite",
            "model URI models:/kaslite names no version: add @ALIAS or /VERSION (e.g. models:/kaslite@production)",
        ),
    ],
)
def test_load_errors(trained, source, uri, message):
    with pytest.raises(ConfigError) as error:
        source.load(uri)
    assert str(error.value) == message.format(uri=trained.tracking_uri)


def test_a_missing_store_is_an_error_not_a_new_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(StoreError) as error:
        get_model_source("models").load("models:/kaslite@production")
    assert str(error.value).startswith("no MLflow store at 'sqlite:///mlflow.db' ('mlflow.db' does not exist)")
    assert list(tmp_path.iterdir()) == []
