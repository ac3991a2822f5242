"""Any module ``save_model`` wrote is served from its file's signature: images, sequences, a user's network."""

import time

import pytest
import torch
from torch import nn

import kaslite
from kaslite.models import LoadedModel, load_model, save_model
from kaslite.models.files import ModelFileError
from kaslite.nn import MorphogeneticNet
from kaslite_serve import ServerSettings
from kaslite_serve.holder import ServedModel
from kaslite_serve.testing import server_client


class TokenScorer(nn.Module):
    """(B, T, D) sequences -> a class per position: logits of shape (B, T, 4)."""

    def __init__(self) -> None:
        super().__init__()
        self.mix = nn.Linear(3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mix(torch.tanh(x))


def images(n: int = 6) -> torch.Tensor:
    return torch.randn(n, 1, 6, 6, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def cnn_file(tmp_path):
    torch.manual_seed(0)
    net = MorphogeneticNet(1, 4, 1, 1, 3, blueprint="conv", trunk="cnn")
    return save_model(net, tmp_path / "cnn.pt", {"run_name": "cnn"}, example_input=images())


def same_probabilities(answer: list, expected_probabilities: list) -> None:
    torch.testing.assert_close(torch.tensor(answer), torch.tensor(expected_probabilities), rtol=0, atol=1e-6)


def expected(path, x: torch.Tensor) -> tuple[list, list]:
    with torch.no_grad():
        probabilities = torch.softmax(kaslite.fuse(load_model(path))(x), dim=-1)
    return probabilities.argmax(dim=-1).tolist(), probabilities.tolist()


def test_a_cnn_answers_nested_images_and_flat_rows_on_both_protocols(cnn_file):
    x = images(4)
    predictions, probabilities = expected(cnn_file, x)
    with server_client(ServerSettings(model_uri=str(cnn_file))) as client:
        models = client.get("/models").json()
        assert (models["input_shape"], models["output_shape"], models["input_dim"]) == ([1, 6, 6], [3], 36)
        for data in (x.tolist(), x.flatten(1).tolist()):
            answer = client.post("/predict", json={"data": data}).json()
            assert answer["predictions"] == predictions
            same_probabilities(answer["probabilities"], probabilities)
        flat = x.flatten().tolist()
        for shape, data in (([4, 1, 6, 6], flat), ([4, 1, 6, 6], x.tolist()), ([4, 36], flat)):
            tensor = {"name": "x", "shape": shape, "datatype": "FP32", "data": data}
            outputs = client.post("/v2/models/cnn/infer", json={"inputs": [tensor]}).json()["outputs"]
            assert outputs[1] == {"name": "predictions", "datatype": "INT64", "shape": [4], "data": predictions}
            assert outputs[0]["shape"] == [4, 3]
        metadata = client.get("/v2/models/cnn").json()
        assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 6, 6]}]
        wrong = client.post("/predict", json={"data": [x[0, 0].tolist()]})
        assert (wrong.status_code, wrong.json()) == (
            422, {"detail": "data samples have shape 6×6; the model takes shape 1×6×6 (or a row of 36 numbers)"}
        )  # fmt: skip
        bad = {"name": "x", "shape": [1, 6, 6], "datatype": "FP32", "data": x[0].flatten().tolist()}
        refused = client.post("/v2/models/cnn/infer", json={"inputs": [bad]})
        assert (refused.status_code, refused.json()) == (
            400, {"error": "input 'x' has shape [1, 6, 6]; expected [rows, 1, 6, 6] or [rows, 36]"}
        )  # fmt: skip


def test_a_sequence_model_answers_a_class_per_position(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(2, 5, 3)
    path = save_model(TokenScorer(), tmp_path / "tokens.pt", factory="serve.test_serve_any_module:TokenScorer",
                      example_input=x)  # fmt: skip
    predictions, probabilities = expected(path, x)
    with server_client(ServerSettings(model_uri=str(path))) as client:
        answer = client.post("/predict", json={"data": x.tolist()}).json()
        assert answer["predictions"] == predictions and len(predictions[0]) == 5
        same_probabilities(answer["probabilities"], probabilities)
        tensor = {"name": "x", "shape": [2, 5, 3], "datatype": "FP32", "data": x.flatten().tolist()}
        outputs = client.post("/v2/models/tokens/infer", json={"inputs": [tensor]}).json()["outputs"]
        assert outputs[1]["shape"] == [2, 5] and outputs[1]["data"] == [c for row in predictions for c in row]
        assert client.get("/v2/models/tokens").json()["outputs"][1]["shape"] == [-1, 5]


def test_a_file_that_does_not_say_what_its_model_takes_is_refused_at_load(tmp_path):
    net = MorphogeneticNet(1, 4, 1, 1, 3, blueprint="conv", trunk="cnn")  # image size unknown without an example
    path = save_model(net, tmp_path / "cnn.pt")
    loaded = LoadedModel(net=load_model(path), metadata={}, uri="file:///cnn.pt")
    with pytest.raises(ModelFileError, match=r"^file:///cnn.pt does not say what MorphogeneticNet takes: save it "
                       r"with kaslite.save_model\(model, path, example_input=batch\)"):  # fmt: skip
        ServedModel.prepare(loaded, time.perf_counter())


class Regressor(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=1)


class Embedder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.table = nn.Embedding(10, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table(x).sum(dim=1)


@pytest.mark.parametrize(
    ("model", "example", "message"),
    [
        (Regressor(), torch.zeros(2, 3), "returns one value per sample; the server answers classifiers"),
        (Embedder(), torch.zeros(2, 4, dtype=torch.long), "takes int64 inputs; the server answers models over"),
    ],
)
def test_models_the_server_cannot_answer_are_refused_in_one_line(tmp_path, model, example, message):
    path = save_model(model, tmp_path / "m.pt", example_input=example)
    with pytest.raises(ModelFileError, match=message):
        ServedModel.prepare(LoadedModel(load_model(path, model=type(model)()), {}, "m.pt"), time.perf_counter())


def test_a_model_that_no_longer_returns_what_its_file_says_is_refused(tmp_path):
    path = save_model(nn.Linear(3, 4), tmp_path / "m.pt", example_input=torch.zeros(2, 3))
    net = load_model(path, model=nn.Linear(3, 4))
    net.forward = lambda x: torch.zeros(len(x), 5)  # the code changed since the file was written
    with pytest.raises(ModelFileError, match=r"returns \(5,\) per sample; its file says \(4,\)"):
        ServedModel.prepare(LoadedModel(net, {}, "m.pt"), time.perf_counter())


@pytest.mark.parametrize(
    ("example", "message"),
    [
        ([[1.0, 2.0, 3.0]], "example_input must be a batch: a tensor with a batch axis and ≥ 1 row; got list"),
        (torch.tensor(1.0), r"example_input must be a batch: .*; got a tensor of shape \(\)"),
        (torch.zeros(2, 3, dtype=torch.bool), "example_input has dtype bool"),
    ],
)
def test_a_bad_example_input_is_refused_before_anything_is_written(tmp_path, example, message):
    with pytest.raises(ModelFileError, match=rf"^cannot save Linear to .*m.pt': {message}"):
        save_model(nn.Linear(3, 4), tmp_path / "m.pt", example_input=example)
    assert not (tmp_path / "m.pt").exists()
