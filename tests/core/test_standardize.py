"""kaslite's network standardises its inputs with the training split's statistics, and keeps them."""

import torch

import kaslite
from kaslite.models import load_model, save_model
from kaslite.nn import MorphogeneticNet

from .test_fit import QUICK


def far_from_unit_scale(n: int = 200) -> tuple[torch.Tensor, ...]:
    """XOR of signs on features of scale 25 around 100, with a constant third feature."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, generator=g)
    y = (x[:, 0] * x[:, 1] > 0).long()
    raw = torch.cat([100 + 25 * x, torch.full((n, 1), 7.0)], dim=1)
    return raw[:150], y[:150], raw[150:], y[150:]


def test_a_run_fits_the_scale_on_the_training_split_and_the_model_takes_raw_inputs(tmp_path):
    x_train, y_train, x_val, y_val = far_from_unit_scale()
    result = kaslite.fit(None, (x_train, y_train, x_val, y_val), config=QUICK, run_dir=tmp_path / "run")
    scale = result.model.input_scale
    assert torch.allclose(scale.mean[:2], x_train[:, :2].mean(0)) and torch.allclose(
        scale.std[:2], x_train[:, :2].std(0)
    )
    assert (float(scale.mean[2]), float(scale.std[2])) == (7.0, 1.0)  # constant in training: left as it is
    loaded = load_model(tmp_path / "run" / "model.pt").eval()
    fused = kaslite.fuse(loaded)
    assert torch.equal(loaded.input_scale.mean, scale.mean) and torch.equal(loaded.input_scale.std, scale.std)
    with torch.no_grad():
        assert torch.allclose(loaded.input_scale(x_val), (x_val - scale.mean) / scale.std)
        assert torch.equal(loaded(x_val), result.model.eval()(x_val))
        assert torch.allclose(fused(x_val), loaded(x_val), atol=1e-5)  # the scaling is in the fused module too


def test_without_standardize_or_with_loaders_the_inputs_pass_as_they_are():
    x_train, y_train, x_val, y_val = far_from_unit_scale()
    config = {**QUICK, "data": {"standardize": False}}
    result = kaslite.fit(None, (x_train, y_train, x_val, y_val), config=config)
    assert result.model.input_scale._identity
    x = torch.randn(4, 3)
    assert torch.equal(result.model.input_scale(x), x)


def test_a_model_file_from_before_standardisation_loads_as_the_identity(tmp_path):
    net = MorphogeneticNet(3, 4, 1, 1, 2)
    net.input_scale.fit(torch.randn(20, 3) * 5 + 2)
    save_model(net, tmp_path / "model.pt")
    payload = torch.load(tmp_path / "model.pt", weights_only=True)
    payload["state_dict"] = {k: v for k, v in payload["state_dict"].items() if not k.startswith("input_scale.")}
    torch.save(payload, tmp_path / "old.pt")
    old = load_model(tmp_path / "old.pt")
    assert old.input_scale._identity
    x = torch.randn(5, 3)
    with torch.no_grad():
        assert torch.equal(old.input_scale(x), x)
