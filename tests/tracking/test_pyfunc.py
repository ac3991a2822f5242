"""The logged pyfunc model: same classes as the kaslite network, no pickle, served by ``mlflow models serve``."""

import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cloudpickle
import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import kaslite
from kaslite.models import load_model
from kaslite.testing import XorParams, generate_xor
from kaslite.train.data import load_split

from .helpers import use_tiny_data


@pytest.fixture
def features_and_classes(trained):
    """Fresh XOR points and the classes the run's own model.pt gives them."""
    features = generate_xor(XorParams(n_samples=400, noise=0.5), seed=11).X
    net = load_model(trained.run_dir / "model.pt")
    with torch.no_grad():
        classes = net(torch.from_numpy(features)).argmax(dim=1).numpy()
    assert set(classes.tolist()) == {0, 1}  # a test that could tell the classes apart
    return features, classes


@pytest.fixture
def no_unpickling(monkeypatch):
    """Every pickle load raises; torch.load calls are recorded."""

    def refuse(*args, **kwargs):
        raise AssertionError("something was unpickled")

    for module in (pickle, cloudpickle):
        monkeypatch.setattr(module, "load", refuse)
        monkeypatch.setattr(module, "loads", refuse)
    calls = []
    real_load = torch.load

    def recording_load(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    return calls


def test_predict_gives_the_kaslite_classes_without_unpickling(
    trained, features_and_classes, no_unpickling, monkeypatch
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained.tracking_uri)
    features, classes = features_and_classes
    model_id = trained.client().get_run(trained.run_id).outputs.model_outputs[0].model_id
    for uri in (f"models:/{model_id}", "models:/kaslite/1", "models:/kaslite@staging"):
        model = mlflow.pyfunc.load_model(uri)
        predicted = model.predict(features)
        assert predicted.dtype == np.int64
        assert predicted.tolist() == classes.tolist(), uri
        frame = pd.DataFrame(features, columns=["x0", "x1"])
        assert model.predict(frame).tolist() == classes.tolist(), uri
    assert no_unpickling == [True, True, True]  # one model.pt read per load, weights only
    # It predicts with the grown network fused into plain layers.
    from kaslite.nn import SentinelSeed

    net = model.unwrap_python_model().net
    assert isinstance(net, torch.nn.Sequential)
    assert not [m for m in net.modules() if isinstance(m, SentinelSeed)]


def test_the_logged_model_files(trained, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained.tracking_uri)
    local = Path(mlflow.artifacts.download_artifacts("models:/kaslite/1", dst_path=str(tmp_path)))
    files = {str(path.relative_to(local)) for path in local.rglob("*") if path.is_file()}
    assert {"MLmodel", "pyfunc_model.py", "artifacts/model.pt", "requirements.txt", "input_example.json"} <= files
    assert [name for name in files if name.endswith((".pkl", ".pickle"))] == []
    assert (local / "artifacts" / "model.pt").read_bytes() == (trained.run_dir / "model.pt").read_bytes()

    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    flavor = mlmodel["flavors"]["python_function"]
    assert flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    assert "python_model" not in flavor  # logged as code, not as a pickle
    assert json.loads(mlmodel["signature"]["inputs"]) == [
        {"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 2]}}
    ]
    assert json.loads(mlmodel["signature"]["outputs"]) == [
        {"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}
    ]
    assert (local / "requirements.txt").read_text().splitlines() == [
        f"kaslite-core=={kaslite.__version__}",
        f"torch=={torch.__version__.split('+')[0]}",
        f"mlflow=={mlflow.__version__}",
    ]
    use_tiny_data()
    split = load_split(trained.config.data, trained.config.train.seed, torch.device("cpu"))
    example = json.loads((local / "input_example.json").read_text())
    assert example == split.x_val[:5].tolist()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(url, payload):
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_mlflow_models_serve(trained, features_and_classes, tmp_path):
    features, classes = features_and_classes
    port = free_port()
    bin_dir = str(Path(sys.executable).parent)  # MLflow execs uvicorn from PATH
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": trained.tracking_uri,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "OMP_NUM_THREADS": "1",
    }
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/kaslite@staging"]
    command += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.25)
        assert post(f"{base}/invocations", {"inputs": features.tolist()}) == {"predictions": classes.tolist()}
        split = {"dataframe_split": {"columns": ["x0", "x1"], "data": features[:10].tolist()}}
        assert post(f"{base}/invocations", split) == {"predictions": classes[:10].tolist()}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
