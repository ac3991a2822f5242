"""Inference metrics through the ``kaslite_server_app`` hook: a FastAPI app in-process and over real HTTP."""

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from kaslite_monitor.inference import UNMATCHED, model_name_of

from .conftest import FakeServer, subprocess_env
from .exposition import parse, scrape, series, value
from .fake_server import FakeModel, Settings, create_app

ROW = {"data": [[0.5, -0.5]]}


@pytest.fixture
def model():
    return FakeModel()


@pytest.fixture
def client(model):
    with TestClient(create_app(model), raise_server_exceptions=False) as client:  # runs the lifespan
        yield client


def metrics(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return parse(response.text)


def requests(samples, endpoint: str, method: str, status: str) -> float:
    return value(samples, "kaslite_inference_requests_total", endpoint=endpoint, method=method, status=status)


def test_requests_are_counted_by_route_template_method_and_status(client):
    for _ in range(3):
        assert client.post("/predict", json=ROW).status_code == 200
    assert client.post("/predict", json={"data": []}).status_code == 422
    assert client.put("/predict", json=ROW).status_code == 405
    assert client.post("/v2/models/xor/infer", json={}).status_code == 200
    assert client.post("/v2/models/other/infer", json={}).status_code == 200
    assert client.get("/no/such/path").status_code == 404
    assert client.get("/boom").status_code == 500
    client.get("/metrics")  # scrapes are not requests
    samples = metrics(client)
    assert series(samples, "kaslite_inference_requests_total") == {
        frozenset({("endpoint", "/predict"), ("method", "POST"), ("status", "200")}): 3,
        frozenset({("endpoint", "/predict"), ("method", "POST"), ("status", "422")}): 1,
        frozenset({("endpoint", "/predict"), ("method", "PUT"), ("status", "405")}): 1,
        frozenset({("endpoint", "/v2/models/{name}/infer"), ("method", "POST"), ("status", "200")}): 2,
        frozenset({("endpoint", UNMATCHED), ("method", "GET"), ("status", "404")}): 1,
        frozenset({("endpoint", "/boom"), ("method", "GET"), ("status", "500")}): 1,
    }
    durations = {
        dict(labels)["endpoint"]: count
        for labels, count in series(samples, "kaslite_inference_request_duration_seconds_count").items()
    }
    assert durations == {"/predict": 5, "/v2/models/{name}/infer": 2, UNMATCHED: 1, "/boom": 1}
    # Sub-millisecond buckets, and the 1 s and 2 s edges the alerts watch.
    edges = {dict(labels)["le"] for labels in series(samples, "kaslite_inference_request_duration_seconds_bucket")}
    assert {"0.0001", "0.00025", "0.0005", "0.001", "1.0", "2.0", "+Inf"} <= edges


def test_prediction_time_is_the_answers_inference_time_ms(client, model):
    for ms in (250.0, 500.0, 1250.0):
        model.inference_ms = ms
        assert client.post("/predict", json=ROW).json()["inference_time_ms"] == ms
    assert client.post("/predict", json={"data": []}).status_code == 422  # no prediction, nothing observed
    samples = metrics(client)
    assert value(samples, "kaslite_model_prediction_duration_seconds_count") == 3
    assert value(samples, "kaslite_model_prediction_duration_seconds_sum") == 2.0
    buckets = {
        dict(labels)["le"]: count
        for labels, count in series(samples, "kaslite_model_prediction_duration_seconds_bucket").items()
    }
    assert (buckets["0.1"], buckets["0.25"], buckets["0.5"], buckets["1.0"], buckets["2.0"]) == (0, 1, 2, 2, 3)


def info(samples) -> dict:
    """model_info series that are 1: {(model_name, model_version)}."""
    return {
        (dict(labels)["model_name"], dict(labels)["model_version"])
        for labels, v in series(samples, "kaslite_model_info").items()
        if v == 1
    }


def test_model_gauges_follow_health_models_and_reloads(client, model):
    samples = metrics(client)  # the lifespan and the scrape asked /health; nothing was counted
    assert value(samples, "kaslite_model_loaded") == 1
    assert info(samples) == {("xor-net", "1")}  # the name from the model URI
    assert series(samples, "kaslite_inference_requests_total") == {}

    assert client.get("/models").status_code == 200  # the server names its model
    assert info(metrics(client)) == {("xor", "1")}

    assert client.post("/reload-model").json()["status"] == "success"
    samples = metrics(client)
    assert info(samples) == {("xor", "2")}
    assert len(series(samples, "kaslite_model_info")) == 1  # the old version's series is gone
    assert value(samples, "kaslite_model_reloads_total", result="success") == 1
    assert value(samples, "kaslite_model_reloads_total", result="failure") == 0
    assert value(samples, "kaslite_model_load_duration_seconds_count") == 1

    model.fail_reload = True
    assert client.post("/reload-model").status_code == 503
    model.token = "secret"
    assert client.post("/reload-model").status_code == 401  # refused: not a reload
    samples = metrics(client)
    assert value(samples, "kaslite_model_reloads_total", result="success") == 1
    assert value(samples, "kaslite_model_reloads_total", result="failure") == 1
    assert value(samples, "kaslite_model_load_duration_seconds_count") == 1
    assert info(samples) == {("xor", "2")}

    model.loaded = False  # the model went away: the next scrape says so
    samples = metrics(client)
    assert value(samples, "kaslite_model_loaded") == 0
    assert info(samples) == set()
    assert client.get("/health/ready").status_code == 503
    model.loaded = True
    assert client.get("/health/ready").status_code == 200
    assert info(metrics(client)) == {("xor", "2")}


def test_openmetrics_when_the_scraper_asks_for_it(client):
    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


def test_two_apps_in_one_process_keep_their_own_counts():
    with TestClient(create_app(FakeModel())) as one, TestClient(create_app(FakeModel(version=7))) as other:
        one.post("/predict", json=ROW)
        one.post("/predict", json=ROW)
        other.post("/predict", json=ROW)
        assert requests(metrics(one), "/predict", "POST", "200") == 2
        assert requests(metrics(other), "/predict", "POST", "200") == 1
        assert info(metrics(other)) == {("xor-net", "7")}


def test_metrics_is_a_route_but_not_in_the_api_schema(client):
    assert any(getattr(route, "path", None) == "/metrics" for route in client.app.routes)
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        (Settings(model_uri="models:/kaslite@production"), "kaslite"),
        (Settings(model_uri="models:/kaslite/3"), "kaslite"),
        (Settings(model_uri="results/run/model.pt"), "model"),
        (Settings(model_uri="file:///srv/models/spirals.pt"), "spirals"),
        (Settings(model_uri="models:/kaslite@production", model_name="prod"), "prod"),
        (SimpleNamespace(), "unknown"),
    ],
)
def test_the_model_name_before_the_server_says_it(settings, name):
    assert model_name_of(settings) == name


def post(url: str, body: dict | None = None) -> int:
    """POST JSON and read the whole answer (its status alone arrives before the body is sent)."""
    request = urllib.request.Request(url, data=json.dumps(body or {}).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        exc.read()
        return exc.code


def test_two_server_processes_share_one_multiprocess_dir(tmp_path):
    """Counts add up across processes; a killed process is counted once, never twice."""
    env = subprocess_env(PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    a, b = FakeServer(env), FakeServer(env)
    servers = [a, b]
    try:
        for _ in range(3):
            assert post(f"{a.url}/predict", ROW) == 200
        for _ in range(5):
            assert post(f"{b.url}/predict", ROW) == 200
        assert post(f"{b.url}/reload-model") == 200  # b now serves version 2, a still 1
        for server in (a, b):
            samples = parse(scrape(f"{server.url}/metrics"))
            assert requests(samples, "/predict", "POST", "200") == 8
            assert value(samples, "kaslite_model_prediction_duration_seconds_count") == 8
            assert value(samples, "kaslite_model_reloads_total", result="success") == 1
            assert value(samples, "kaslite_model_loaded") == 1
            assert info(samples) == {("xor-net", "1"), ("xor-net", "2")}

        b.kill()  # no chance to clean up; its replacement starts with a fresh model (version 1)
        b2 = FakeServer(env)
        servers.append(b2)
        for _ in range(2):
            assert post(f"{b2.url}/predict", ROW) == 200
        samples = parse(scrape(f"{a.url}/metrics"))
        assert requests(samples, "/predict", "POST", "200") == 10  # 3 + 5 (b, gone) + 2, not 15
        assert value(samples, "kaslite_model_reloads_total", result="success") == 1
        assert value(samples, "kaslite_model_loaded") == 1  # the minimum over live processes only
        assert info(samples) == {("xor-net", "1")}  # nobody alive serves version 2 any more

        c = FakeServer(env, "--no-model")  # one live process without a model: the app is not fully loaded
        servers.append(c)
        samples = parse(scrape(f"{b2.url}/metrics"))
        assert value(samples, "kaslite_model_loaded") == 0
        assert requests(samples, "/predict", "POST", "200") == 10
    finally:
        for server in servers:
            server.stop()


RESTARTED_WITH_THE_SAME_PID = """
import os, sys
from prometheus_client.mmap_dict import MmapedDict, mmap_key

# What a killed predecessor with this PID left: it served version 9 and had counted 5 predictions.
directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
info = MmapedDict(os.path.join(directory, f"gauge_livemax_{os.getpid()}.db"))
info.write_value(mmap_key("kaslite_model_info", "kaslite_model_info", ["model_name", "model_version"],
                          ["xor-net", "9"], "1 for the model version being served"), 1.0, 0.0)
info.close()
counts = MmapedDict(os.path.join(directory, f"counter_{os.getpid()}.db"))
counts.write_value(mmap_key("kaslite_inference_requests", "kaslite_inference_requests_total",
                            ["endpoint", "method", "status"], ["/predict", "POST", "200"], "HTTP requests answered"),
                   5.0, 0.0)
counts.close()

from fastapi.testclient import TestClient
from monitor.fake_server import FakeModel, create_app

with TestClient(create_app(FakeModel(version=3))) as client:
    client.post("/predict", json={"data": [[0.5, -0.5]]})
    sys.stdout.write(client.get("/metrics").text)
"""


def test_a_process_restarted_with_the_same_pid_keeps_the_counts_but_not_the_old_model(tmp_path):
    env = subprocess_env(Path(__file__).resolve().parents[1], PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-c", RESTARTED_WITH_THE_SAME_PID], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    samples = parse(proc.stdout)
    assert requests(samples, "/predict", "POST", "200") == 6  # the predecessor's 5 happened; 1 more, not 5 + 6
    assert info(samples) == {("xor-net", "3")}
    assert value(samples, "kaslite_model_loaded") == 1
