"""kaslite-monitor on the real kaslite-serve: ``/metrics`` over HTTP after real traffic, and no
inference rule or dashboard query names a metric or label the server does not emit.

Needs kaslite-core, kaslite-serve and kaslite-monitor installed (the nox ``e2e`` session).
"""

import json
import os
import re
import urllib.error
import urllib.request

import yaml

import kaslite
from kaslite.config import build_config
from kaslite.testing import tiny_datasets
from kaslite.train import run_experiment

NAME = re.compile(r"\b(kaslite_[a-z0-9_]+)\b")
SELECTOR = re.compile(r"\b(kaslite_[a-z0-9_]+)\s*\{([^}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")


def call(url: str, body: dict | None = None) -> tuple[int, dict | str]:
    """GET (or POST ``body`` as JSON) and read the whole answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def samples(text: str) -> dict[str, dict[frozenset, float]]:
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, dict[frozenset, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return out


def test_the_real_server_reports_its_traffic_and_model(tmp_path):
    from kaslite_monitor.export import asset_files
    from kaslite_serve.testing import ServeProcess  # here: a missing kaslite-serve fails this test, never the others

    kaslite.reset_plugin_manager()
    kaslite.get_plugin_manager().register(tiny_datasets, name="tiny")
    config = build_config(
        {
            "data": {"problem": "xor", "params": {"n_samples": 120}},
            "model": {"hidden_dim": 8},
            "train": {"warm_up_epochs": 2, "adaptation_epochs": 2, "batch_size": 16},
        }
    )
    summary = run_experiment(config, tmp_path, "served", trackers=["json"], quiet=True)
    kaslite.reset_plugin_manager()
    model = summary.run_dir / "model.pt"

    env = {k: v for k, v in os.environ.items() if k not in ("KASLITE_ADMIN_TOKEN", "PROMETHEUS_MULTIPROC_DIR")}
    with ServeProcess(str(model), env=env, log=tmp_path / "server.log") as server:
        url = server.url
        status, health = call(f"{url}/health")
        assert status == 200 and health["model_loaded"] is True, health
        for _ in range(3):
            status, answer = call(f"{url}/predict", {"data": [[1.0, -1.0], [-1.0, -1.0]]})
            assert status == 200 and len(answer["predictions"]) == 2, answer
        assert call(f"{url}/predict", {"data": [[1.0]]})[0] == 422
        status, models = call(f"{url}/models")
        assert status == 200
        assert call(f"{url}/v2/models/{models['model_name']}/infer", {"inputs": []})[0] in (200, 400)
        assert call(f"{url}/reload-model", {})[0] == 200
        model.write_bytes(b"not a model")  # the next reload fails; the loaded model keeps serving
        assert call(f"{url}/reload-model", {})[0] == 503
        status, text = call(f"{url}/metrics")
        assert status == 200 and isinstance(text, str)

    got = samples(text)

    def value(name: str, **labels: str) -> float:
        return got[name][frozenset(labels.items())]

    assert value("kaslite_inference_requests_total", endpoint="/predict", method="POST", status="200") == 3
    assert value("kaslite_inference_requests_total", endpoint="/predict", method="POST", status="422") == 1
    assert value("kaslite_inference_requests_total", endpoint="/reload-model", method="POST", status="200") == 1
    assert value("kaslite_inference_requests_total", endpoint="/reload-model", method="POST", status="503") == 1
    v2 = {dict(labels)["endpoint"] for labels in got["kaslite_inference_requests_total"]}
    assert "/v2/models/{name}/infer" in v2
    assert value("kaslite_model_prediction_duration_seconds_count") == 3
    assert value("kaslite_model_prediction_rows_sum") == 6
    assert value("kaslite_model_predictions_total", outcome="ok") == 3
    assert value("kaslite_model_predictions_total", outcome="bad_input") == 2  # the 422 and the /v2 400
    assert value("kaslite_model_reloads_total", result="success") == 1
    assert value("kaslite_model_reloads_total", result="failure") == 1
    assert value("kaslite_model_load_duration_seconds_count", cause="start") == 1  # the first load is measured
    assert value("kaslite_model_load_duration_seconds_count", cause="reload") == 1
    assert value("kaslite_model_loaded") == 1
    served = {dict(labels)["model_version"]: v for labels, v in got["kaslite_model_info"].items()}
    assert served == {health["model_version"]: 1}
    assert {dict(labels)["model_name"] for labels in got["kaslite_model_info"]} == {models["model_name"]}

    # Every metric and label an inference rule or dashboard query names is really emitted.
    emitted: dict[str, set[str]] = {}
    for name, series in got.items():
        for labels in series:
            emitted.setdefault(name, set()).update(label for label, _ in labels)
    files = asset_files()
    exprs = [
        r["expr"] for g in yaml.safe_load(files["prometheus/rules/kaslite-inference.yml"])["groups"] for r in g["rules"]
    ]
    board = json.loads(files["grafana/dashboards/kaslite-inference.json"])
    exprs += [t["expr"] for panel in board["panels"] for t in panel["targets"]]
    missing = sorted({name for expr in exprs for name in NAME.findall(expr)} - set(emitted))
    assert missing == []
    for expr in exprs:
        for name, matchers in SELECTOR.findall(expr):
            assert set(MATCHER.findall(matchers)) <= emitted[name] | {"job", "instance"}, expr
