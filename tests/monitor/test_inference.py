"""Inference metrics on the real kaslite-serve app: in-process (its test client) and over HTTP (``kaslite serve``)."""

import subprocess
import sys

import pytest

import kaslite
from kaslite.testing import fake_distribution
from kaslite_monitor.inference import UNMATCHED
from kaslite_serve import ServerSettings
from kaslite_serve.testing import ServeProcess, server_client

from .conftest import subprocess_env
from .exposition import parse, scrape, series, value
from .servers import EMPTY_REGISTRY, MODEL_NAME, Registry, save_model_file

ROW = {"data": [[0.5, -0.5]]}


class Boom:
    """An extension with a route that raises, for the 500 the metrics must count."""

    @kaslite.hookimpl
    def kaslite_server_app(self, app):
        @app.get("/boom")
        def boom():
            raise RuntimeError("boom")


@pytest.fixture
def client(model_file):
    with server_client(ServerSettings(model_uri=str(model_file)), raise_server_exceptions=False) as client:
        yield client


def metrics(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return parse(response.text)


def requests(samples, endpoint: str, method: str, status: str) -> float:
    return value(samples, "kaslite_inference_requests_total", endpoint=endpoint, method=method, status=status)


def info(samples) -> dict:
    """model_info series that are 1: {(model_name, model_version)}."""
    return {
        (dict(labels)["model_name"], dict(labels)["model_version"])
        for labels, v in series(samples, "kaslite_model_info").items()
        if v == 1
    }


def test_requests_are_counted_by_route_template_method_and_status(model_file):
    kaslite.get_plugin_manager().register(Boom(), name="boom")
    with server_client(ServerSettings(model_uri=str(model_file)), raise_server_exceptions=False) as client:
        for _ in range(3):
            assert client.post("/predict", json=ROW).status_code == 200
        assert client.post("/predict", json={"data": []}).status_code == 422
        assert client.put("/predict", json=ROW).status_code == 405
        v2 = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [0.5, -0.5]}]}
        assert client.post(f"/v2/models/{MODEL_NAME}/infer", json=v2).status_code == 200
        assert client.post("/v2/models/other/infer", json=v2).status_code == 404
        assert client.get("/no/such/path").status_code == 404
        assert client.get("/boom").status_code == 500
        client.get("/metrics")  # scrapes are not requests
        samples = metrics(client)
    assert series(samples, "kaslite_inference_requests_total") == {
        frozenset({("endpoint", "/predict"), ("method", "POST"), ("status", "200")}): 3,
        frozenset({("endpoint", "/predict"), ("method", "POST"), ("status", "422")}): 1,
        frozenset({("endpoint", "/predict"), ("method", "PUT"), ("status", "405")}): 1,
        frozenset({("endpoint", "/v2/models/{name}/infer"), ("method", "POST"), ("status", "200")}): 1,
        frozenset({("endpoint", "/v2/models/{name}/infer"), ("method", "POST"), ("status", "404")}): 1,
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


def test_a_body_over_the_limit_is_counted_on_its_route(model_file):
    with server_client(ServerSettings(model_uri=str(model_file), max_body_bytes=100)) as client:
        assert client.post("/predict", json={"data": [[0.5, 0.5]] * 50}).status_code == 413
        assert requests(metrics(client), "/predict", "POST", "413") == 1


def test_prediction_facts_come_from_the_server(client):
    answers = [client.post("/predict", json={"data": [[0.5, -0.5]] * rows}).json() for rows in (1, 3, 40)]
    assert client.post("/predict", json={"data": [[0.5]]}).status_code == 422
    assert client.post("/predict", json={"data": [[0.5, 1.0]], "model_version": "9"}).status_code == 404
    v2 = {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
    assert client.post(f"/v2/models/{MODEL_NAME}/infer", json=v2).status_code == 200
    assert client.post(f"/v2/models/{MODEL_NAME}/infer", json={"inputs": "no"}).status_code == 400
    samples = metrics(client)
    outcomes = {dict(labels)["outcome"]: n for labels, n in series(samples, "kaslite_model_predictions_total").items()}
    assert outcomes == {"ok": 4, "bad_input": 2, "not_found": 1, "not_ready": 0, "error": 0}
    assert value(samples, "kaslite_model_prediction_rows_count") == 4
    assert value(samples, "kaslite_model_prediction_rows_sum") == 1 + 3 + 40 + 2
    assert value(samples, "kaslite_model_prediction_rows_bucket", le="5.0") == 3
    # The compute time is the one /predict answers with: the same measurement, not another.
    assert value(samples, "kaslite_model_prediction_duration_seconds_count") == 4
    answered = sum(answer["inference_time_ms"] for answer in answers) / 1000
    assert answered < value(samples, "kaslite_model_prediction_duration_seconds_sum") < answered + 1.0


def test_model_gauges_follow_the_first_load_reloads_and_failures(tmp_path):
    path = save_model_file(tmp_path / "model.pt", version="1")
    settings = ServerSettings(model_uri=str(path), admin_token="secret")
    token = {"Authorization": "Bearer secret"}
    with server_client(settings) as client:
        samples = metrics(client)
        assert value(samples, "kaslite_model_loaded") == 1
        assert info(samples) == {(MODEL_NAME, "1")}  # the name the server gives: the file's run name
        assert value(samples, "kaslite_model_load_duration_seconds_count", cause="start") == 1
        assert value(samples, "kaslite_model_load_duration_seconds_sum", cause="start") > 0
        assert series(samples, "kaslite_inference_requests_total") == {}

        save_model_file(path, version="2", seed=5)
        assert client.post("/reload-model", headers=token).json()["status"] == "success"
        samples = metrics(client)
        assert info(samples) == {(MODEL_NAME, "2")}
        assert len(series(samples, "kaslite_model_info")) == 1  # the old version's series is gone
        assert value(samples, "kaslite_model_reloads_total", result="success") == 1
        assert value(samples, "kaslite_model_reloads_total", result="failure") == 0
        assert value(samples, "kaslite_model_load_duration_seconds_count", cause="reload") == 1

        path.write_bytes(b"not a model")
        assert client.post("/reload-model", headers=token).status_code == 503
        assert client.post("/reload-model").status_code == 401  # refused: not a reload
        samples = metrics(client)
        assert value(samples, "kaslite_model_reloads_total", result="success") == 1
        assert value(samples, "kaslite_model_reloads_total", result="failure") == 1
        assert value(samples, "kaslite_model_load_duration_seconds_count", cause="reload") == 1
        assert (value(samples, "kaslite_model_loaded"), info(samples)) == (1, {(MODEL_NAME, "2")})  # still serving


def test_a_registry_model_that_arrives_later_and_versions_named_by_requests(tmp_path):
    registry = Registry(tmp_path)
    kaslite.get_plugin_manager().register(registry, name="mem-registry")
    with server_client(ServerSettings(model_uri=f"mem:/{MODEL_NAME}@production", version_cache_size=1)) as client:
        samples = metrics(client)  # the first load failed: nothing is served
        assert (value(samples, "kaslite_model_loaded"), info(samples)) == (0, set())
        assert value(samples, "kaslite_model_load_duration_seconds_count", cause="start") == 0
        assert client.post("/predict", json=ROW).status_code == 503

        registry.production = "2"
        assert client.post("/reload-model").status_code == 200
        for version in ("3", "1", "3"):  # cache of one: 3 loads, 1 evicts it, 3 loads again
            assert client.post("/predict", json={**ROW, "model_version": version}).status_code == 200
        samples = metrics(client)
    assert (value(samples, "kaslite_model_loaded"), info(samples)) == (1, {(MODEL_NAME, "2")})
    assert value(samples, "kaslite_model_reloads_total", result="success") == 1
    assert value(samples, "kaslite_model_load_duration_seconds_count", cause="request") == 3
    outcomes = {dict(labels)["outcome"]: n for labels, n in series(samples, "kaslite_model_predictions_total").items()}
    assert (outcomes["ok"], outcomes["not_ready"]) == (3, 1)


def test_the_model_name_given_to_the_server_names_the_series(model_file):
    with server_client(ServerSettings(model_uri=str(model_file), model_name="prod")) as client:
        assert info(metrics(client)) == {("prod", "1")}


def test_openmetrics_when_the_scraper_asks_for_it(client):
    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


def test_two_apps_in_one_process_keep_their_own_counts(model_file, tmp_path):
    other_file = save_model_file(tmp_path / "other.pt", version="7")
    with (
        server_client(ServerSettings(model_uri=str(model_file))) as one,
        server_client(ServerSettings(model_uri=str(other_file))) as other,
    ):
        one.post("/predict", json=ROW)
        one.post("/predict", json=ROW)
        other.post("/predict", json=ROW)
        assert requests(metrics(one), "/predict", "POST", "200") == 2
        assert requests(metrics(other), "/predict", "POST", "200") == 1
        assert info(metrics(other)) == {(MODEL_NAME, "7")}


def test_metrics_is_a_route_but_not_in_the_api_schema(client):
    assert any(getattr(route, "path", None) == "/metrics" for route in client.app.routes)
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def post(url: str, body: dict | None = None) -> int:
    """POST JSON and read the whole answer (its status alone arrives before the body is sent)."""
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=json.dumps(body or {}).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        exc.read()
        return exc.code


def test_two_server_processes_share_one_multiprocess_dir(tmp_path, model_file):
    """Counts add up across processes; a killed process is counted once, never twice."""
    site = fake_distribution(
        tmp_path / "site", "empty-registry", entry_points={"empty": "empty_registry"},
        modules={"empty_registry": EMPTY_REGISTRY},
    )  # fmt: skip
    shared = tmp_path / "prometheus"
    shared.mkdir()
    env = subprocess_env(site, PROMETHEUS_MULTIPROC_DIR=str(shared))
    b_file = save_model_file(tmp_path / "b.pt", version="1")
    a = ServeProcess(str(model_file), env=env, log=tmp_path / "a.log")
    servers = [a]
    try:
        b = ServeProcess(str(b_file), env=env, log=tmp_path / "b.log")
        servers.append(b)
        for _ in range(3):
            assert post(f"{a.url}/predict", ROW) == 200
        for _ in range(5):
            assert post(f"{b.url}/predict", ROW) == 200
        save_model_file(b_file, version="2")
        assert post(f"{b.url}/reload-model") == 200  # b now serves version 2, a still 1
        for server in (a, b):
            samples = parse(scrape(f"{server.url}/metrics"))
            assert requests(samples, "/predict", "POST", "200") == 8
            assert value(samples, "kaslite_model_prediction_duration_seconds_count") == 8
            assert value(samples, "kaslite_model_reloads_total", result="success") == 1
            assert value(samples, "kaslite_model_loaded") == 1
            assert info(samples) == {(MODEL_NAME, "1"), (MODEL_NAME, "2")}

        b.kill()  # no chance to clean up; its replacement serves version 1 again
        save_model_file(b_file, version="1")
        b2 = ServeProcess(str(b_file), env=env, log=tmp_path / "b2.log")
        servers.append(b2)
        for _ in range(2):
            assert post(f"{b2.url}/predict", ROW) == 200
        samples = parse(scrape(f"{a.url}/metrics"))
        assert requests(samples, "/predict", "POST", "200") == 10  # 3 + 5 (b, gone) + 2, not 15
        assert value(samples, "kaslite_model_reloads_total", result="success") == 1
        assert value(samples, "kaslite_model_loaded") == 1  # the minimum over live processes only
        assert info(samples) == {(MODEL_NAME, "1")}  # nobody alive serves version 2 any more

        c = ServeProcess(f"empty:/{MODEL_NAME}@production", env=env, log=tmp_path / "c.log")  # a live process, no model
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

from kaslite_serve import ServerSettings
from kaslite_serve.testing import server_client

with server_client(ServerSettings(model_uri=sys.argv[1])) as client:
    client.post("/predict", json={"data": [[0.5, -0.5]]})
    sys.stdout.write(client.get("/metrics").text)
"""


def test_a_process_restarted_with_the_same_pid_keeps_the_counts_but_not_the_old_model(tmp_path, model_file):
    env = subprocess_env(PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-c", RESTARTED_WITH_THE_SAME_PID, str(model_file)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    samples = parse(proc.stdout)
    assert requests(samples, "/predict", "POST", "200") == 6  # the predecessor's 5 happened; 1 more, not 5 + 6
    assert info(samples) == {(MODEL_NAME, "1")}
    assert value(samples, "kaslite_model_loaded") == 1
