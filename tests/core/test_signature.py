"""A model file says what its model takes and returns: traced from an example batch, or read from kaslite's MLP."""

import torch

import kaslite
from kaslite.models import Signature, TensorSpec, load_model, read_model_file, save_model, signature_of
from kaslite.nn import MorphogeneticNet

from .test_fit import QUICK, Mine, images, xor


def test_kaslites_mlp_describes_itself_without_an_example(tmp_path):
    path = save_model(MorphogeneticNet(3, 8, 1, 1, 4), tmp_path / "m.pt")
    assert signature_of(load_model(path)) == Signature(TensorSpec((3,), "float32"), TensorSpec((4,), "float32"))


def test_a_cnn_is_described_by_its_example_and_keeps_a_few_rows(tmp_path):
    net = MorphogeneticNet(1, 4, 1, 1, 3, blueprint="conv", trunk="cnn")
    example = images()[2]
    path = save_model(net, tmp_path / "cnn.pt", example_input=example)
    signature = signature_of(load_model(path))
    assert signature == Signature(TensorSpec((1, 6, 6), "float32"), TensorSpec((3,), "float32"))
    assert torch.equal(signature.example, example[:5])
    assert read_model_file(path)["signature"]["input"] == {"shape": [1, 6, 6], "dtype": "float32"}


def test_tracing_the_example_changes_nothing_in_a_training_model(tmp_path):
    torch.manual_seed(0)
    model = Mine().train()
    model.grow.germinate()  # a shadow-training seed learns from what passes through it in training mode
    before = {k: v.clone() for k, v in model.state_dict().items()}
    save_model(model, tmp_path / "m.pt", example_input=torch.randn(4, 2))
    assert model.training and model.grow.state.value == "training"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_run_saves_its_model_with_its_validation_inputs_as_the_example(tmp_path):
    torch.manual_seed(0)
    data = xor()
    result = kaslite.fit(Mine(), data, config=QUICK, run_dir=tmp_path / "run")
    signature = Signature.from_payload(read_model_file(result.run_dir / "model.pt")["signature"])
    assert (signature.input, signature.output) == (TensorSpec((2,), "float32"), TensorSpec((2,), "float32"))
    assert torch.equal(signature.example, data[2][:5])


def test_a_module_saved_without_an_example_has_no_signature(tmp_path):
    path = save_model(torch.nn.Linear(2, 2), tmp_path / "m.pt", factory="torch.nn:Linear",
                      factory_kwargs={"in_features": 2, "out_features": 2})  # fmt: skip
    assert read_model_file(path)["signature"] is None and signature_of(load_model(path)) is None
