"""Any model from a training loop to HTTP, as the READMEs tell it: a user's own module grown by kaslite,
saved, registered in MLflow and served from ``models:/NAME@production``; the digits CNN served from its run.

Needs kaslite-core, kaslite-datasets[digits], kaslite-tracking and kaslite-serve (the nox ``e2e`` session).
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import torch

import kaslite
from kaslite_serve.testing import ServeProcess

ROOT = Path(__file__).resolve().parents[2]
SERVE_README = ROOT / "kaslite-serve" / "README.md"


def block(marker: str) -> str:
    """The code block between ``<!-- marker -->`` and ``<!-- /marker -->`` in kaslite-serve's README."""
    (code,) = re.findall(rf"<!-- {marker} -->\n```\w+\n(.*?)```\n<!-- /{marker} -->", SERVE_README.read_text(), re.S)
    return code


def run_commands(script: str, cwd: Path, env: dict[str, str]) -> list[str]:
    """Run the README's shell lines: ``export`` sets ``env`` (a ``.`` is the folder), a ``kaslite`` line runs
    as the real console script, and the ``kaslite serve`` line is returned (as argv) for the test to start."""
    serve: list[str] = []
    for line in script.splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words[0] == "export":
            for pair in words[1:]:
                name, _, value = pair.partition("=")
                env[name] = str(cwd / value) if value == "." else value
            continue

        assert words[0] == "kaslite", line
        if words[1] == "serve":
            serve = words
            continue
        # The console script, as a user runs it (python -m would put the folder on sys.path by itself).
        script = str(Path(sys.executable).with_name("kaslite"))
        done = subprocess.run([script, *words[1:]], cwd=cwd, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    return serve


def test_a_users_grown_module_goes_from_the_registry_to_http_as_the_readme_says(tmp_path, monkeypatch):
    (tmp_path / "signalnet.py").write_text(block("serve-module"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    namespace: dict = {"__name__": "train"}
    exec(compile(block("serve-train"), "train.py", "exec"), namespace)  # trains in-process, writes signal.pt
    transitions = [e["to_state"] for e in namespace["result"].events if e["event"] == "seed_transition"]
    assert transitions[:3] == ["training", "blending", "active"]  # the seed grew before the module was saved

    env = {k: v for k, v in os.environ.items() if k not in ("KASLITE_ADMIN_TOKEN", "MLFLOW_TRACKING_URI")}
    env.update(MLFLOW_DISABLE_TELEMETRY="true")
    serve = run_commands(block("serve-commands"), tmp_path, env)
    assert serve[:4] == ["kaslite", "serve", "--model", "models:/signals@production"]
    assert (tmp_path / "mlflow.db").is_file()

    x = namespace["x"][500:510]
    model = kaslite.load_model(tmp_path / "signal.pt")  # what the server must answer, computed here
    with torch.no_grad():
        probabilities = torch.softmax(model(x), dim=-1)
    with ServeProcess(*serve[3:], env=env, cwd=tmp_path, log=tmp_path / "server.log") as server:
        models = httpx.get(server.url + "/models").json()
        assert (models["model_name"], models["input_shape"], models["output_shape"]) == ("signals", [2, 32], [3])
        nested = httpx.post(server.url + "/predict", json={"data": x.tolist()}).json()
        flat = httpx.post(server.url + "/predict", json={"data": x.flatten(1).tolist()}).json()
        tensor = {"name": "x", "shape": [10, 2, 32], "datatype": "FP32", "data": x.flatten().tolist()}
        v2 = httpx.post(server.url + "/v2/models/signals/infer", json={"inputs": [tensor]}).json()
    grown = namespace["model"].grow
    assert models["seeds"] == {grown.seed_id: {"state": grown.state.value, "alpha": grown.alpha}}
    for answer in (nested, flat):
        assert answer["model_version"] == "1"
        assert answer["predictions"] == probabilities.argmax(dim=-1).tolist()
        torch.testing.assert_close(torch.tensor(answer["probabilities"]), probabilities, rtol=0, atol=1e-6)
    assert v2["outputs"][1]["data"] == probabilities.argmax(dim=-1).tolist()


def test_the_digits_cnn_is_served_from_its_run(tmp_path):
    command = [sys.executable, "-m", "kaslite", "run", "--problem", "digits", "--trunk", "cnn", "--blueprint", "conv"]
    command += ["--dataset-param", "images=true", "--dataset-param", "n_samples=400", "--warm-up-epochs", "1"]
    command += ["--adaptation-epochs", "2", "--output-dir", str(tmp_path), "--run-name", "cnn", "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    model_file = tmp_path / "cnn" / "model.pt"

    from kaslite_datasets.generators import generate_digits  # the run's images, to send as a client would
    from kaslite_datasets.params import DigitsParams

    images = torch.from_numpy(generate_digits(DigitsParams(n_samples=400, images=True), 0).X[:6]).float()
    net = kaslite.fuse(kaslite.load_model(model_file))
    with torch.no_grad():
        expected = net(images).argmax(dim=-1).tolist()
    with ServeProcess(str(model_file), log=tmp_path / "server.log") as server:
        assert httpx.get(server.url + "/models").json()["input_shape"] == [1, 8, 8]
        as_images = httpx.post(server.url + "/predict", json={"data": images.tolist()}).json()
        as_rows = httpx.post(server.url + "/predict", json={"data": images.flatten(1).tolist()}).json()
        tensor = {"name": "pixels", "shape": [6, 1, 8, 8], "datatype": "FP32", "data": images.flatten().tolist()}
        v2 = httpx.post(server.url + "/v2/models/cnn/infer", json={"inputs": [tensor]}).json()
    assert as_images["predictions"] == as_rows["predictions"] == v2["outputs"][1]["data"] == expected
