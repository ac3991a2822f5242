"""What the server tells its extensions (kaslite.serving): model lifecycle events, prediction facts, readiness."""

import logging
import threading

import pytest
from fastapi.testclient import TestClient

import kaslite
from kaslite.serving import ModelEvent, PredictionEvent, ServerListener
from kaslite_serve import ServerSettings, create_app
from kaslite_serve.testing import server_client

ROWS = [[0.5, -1.25], [2.0, 3.0], [-0.75, 0.0]]


class Recorder(ServerListener):
    def __init__(self) -> None:
        self.models: list[ModelEvent] = []
        self.predictions: list[PredictionEvent] = []

    def on_model_event(self, event: ModelEvent) -> None:
        self.models.append(event)

    def on_prediction(self, event: PredictionEvent) -> None:
        self.predictions.append(event)


class Subscribe:
    """An extension that subscribes ``listeners`` to every app built."""

    def __init__(self, *listeners: ServerListener) -> None:
        self.listeners = listeners

    @kaslite.hookimpl
    def kaslite_server_app(self, events):
        for listener in self.listeners:
            events.subscribe(listener)


@pytest.fixture
def recorder() -> Recorder:
    recorder = Recorder()
    kaslite.get_plugin_manager().register(Subscribe(recorder), name="recorder")
    return recorder


def described(events: list[ModelEvent]) -> list[tuple]:
    return [(e.kind, e.cause, e.model_name, e.version, e.input_dim, e.num_classes, e.error) for e in events]


def test_loads_reloads_failures_and_evictions_are_announced(counting, recorder):
    with server_client(ServerSettings(model_uri="count:/m@production", version_cache_size=1)) as client:
        for version in ("2", "3"):  # a cache of one: 3 evicts 2
            assert client.post("/predict", json={"data": ROWS, "model_version": version}).status_code == 200
        assert client.post("/predict", json={"data": ROWS, "model_version": "9"}).status_code == 404  # never loads
        assert client.post("/reload-model").status_code == 200
        counting.fail = LookupError("the registry is down")
        assert client.post("/reload-model").status_code == 503
        assert client.post("/predict", json={"data": ROWS, "model_version": "4"}).status_code == 503
    assert described(recorder.models) == [
        ("loaded", "start", "m", "1", 2, 3, None),
        ("loaded", "request", "m", "2", 2, 3, None),
        ("loaded", "request", "m", "3", 2, 3, None),
        ("evicted", "request", "m", "2", 2, 3, None),
        ("reloaded", "reload", "m", "1", 2, 3, None),
        ("failed", "reload", "m", None, None, None, "LookupError: the registry is down"),
        ("failed", "request", "m", "4", None, None, "LookupError: the registry is down"),
    ]
    loads = [e.load_seconds for e in recorder.models if e.kind in ("loaded", "reloaded")]
    assert all(seconds > 0 for seconds in loads) and len(loads) == 4
    assert [e.current for e in recorder.models] == [True, False, False, False, True, True, False]


def test_a_first_load_that_fails_is_announced_and_the_server_waits(counting, recorder):
    counting.fail = LookupError("no version has alias 'production'")
    with server_client(ServerSettings(model_uri="count:/m@production")) as client:
        assert client.get("/health/ready").json() == {"ready": False, "status": "no_model", "model_version": None}
        counting.fail = None
        assert client.post("/reload-model").status_code == 200
        assert client.get("/health/ready").json() == {"ready": True, "status": "ready", "model_version": "1"}
    assert described(recorder.models) == [
        ("failed", "start", "m", None, None, None, "LookupError: no version has alias 'production'"),
        ("reloaded", "reload", "m", "1", 2, 3, None),
    ]


def test_every_prediction_request_is_announced_with_its_facts(served_file, recorder):
    v2 = {"inputs": [{"name": "x", "shape": [3, 2], "datatype": "FP32", "data": [v for row in ROWS for v in row]}]}
    with server_client(ServerSettings(model_uri=str(served_file), max_batch_rows=50)) as client:
        answer = client.post("/predict", json={"data": ROWS}).json()
        assert client.post("/predict", json={"data": [[1.0]]}).status_code == 422
        assert (
            client.post("/predict", content=b"{not json", headers={"content-type": "application/json"}).status_code
            == 422
        )
        assert client.post("/predict", json={"data": ROWS, "model_version": "7"}).status_code == 404
        assert client.post("/v2/models/demo/infer", json=v2).status_code == 200
        assert client.post("/v2/models/demo/versions/1/infer", json={"inputs": 5}).status_code == 400
        assert client.post("/v2/models/other/infer", json=v2).status_code == 404
    facts = [(e.endpoint, e.outcome, e.rows, e.model_version) for e in recorder.predictions]
    assert facts == [
        ("/predict", "ok", 3, "1"),
        ("/predict", "bad_input", 1, "1"),
        ("/predict", "bad_input", 0, None),
        ("/predict", "not_found", 3, "7"),
        ("/v2/models/{name}/infer", "ok", 3, "1"),
        ("/v2/models/{name}/versions/{version}/infer", "bad_input", 0, None),
        ("/v2/models/{name}/infer", "not_found", 0, None),
    ]
    # The compute time announced is the one the answer carries.
    assert recorder.predictions[0].seconds * 1000.0 == answer["inference_time_ms"] > 0
    assert [e.seconds for e in recorder.predictions[1:4]] == [0.0, 0.0, 0.0]


class Broken(ServerListener):
    def on_prediction(self, event):
        raise RuntimeError("metrics backend gone")


def test_a_listener_that_raises_is_reported_once_and_unsubscribed(served_file, recorder, caplog):
    kaslite.get_plugin_manager().register(Subscribe(Broken()), name="broken")
    with (
        caplog.at_level(logging.WARNING, logger="kaslite.serve"),
        server_client(ServerSettings(model_uri=str(served_file))) as client,
    ):
        for _ in range(3):
            assert client.post("/predict", json={"data": ROWS}).status_code == 200
    assert [r.getMessage() for r in caplog.records if "server listener" in r.getMessage()] == [
        "server listener serve.test_serve_events.Broken failed (RuntimeError: metrics backend gone); "
        "it gets no more events"
    ]
    assert [e.outcome for e in recorder.predictions] == ["ok", "ok", "ok"]  # the others still hear everything


class Gate:
    """Scheme ``gate``: the first load waits until the test opens the gate."""

    def __init__(self, served_file) -> None:
        self.served_file = served_file
        self.open = threading.Event()

    def load(self, uri):
        from kaslite.models import LoadedModel, load_model

        assert self.open.wait(30)
        net = load_model(self.served_file)
        return LoadedModel(net=net, metadata=net.metadata, uri=uri, version="3")

    @kaslite.hookimpl
    def kaslite_model_sources(self):
        from kaslite.hookspecs import ModelSourceSpec

        return [ModelSourceSpec("gate", self.load, lambda uri: [], "a load that waits (tests)")]


def test_readiness_says_loading_until_the_lifespan_has_loaded_the_model(served_file):
    gate = Gate(served_file)
    kaslite.get_plugin_manager().register(gate, name="gate")
    app = create_app(ServerSettings(model_uri="gate:/m@production"))
    assert app.state.holder.state == "loading"  # building the app loads nothing
    with TestClient(app) as client:  # the lifespan starts the load
        loading = client.get("/health/ready")
        assert (loading.status_code, loading.json()) == (
            503,
            {"ready": False, "status": "loading", "model_version": None},
        )
        assert client.get("/health").json() == {"status": "loading", "model_loaded": False, "model_version": None}
        assert client.get("/health/live").status_code == 200
        early = client.post("/predict", json={"data": ROWS})
        assert (early.status_code, early.json()) == (503, {"detail": "the model is still loading; try again shortly"})
        gate.open.set()
        assert app.state.holder.wait_started(30)
        assert client.get("/health/ready").json() == {"ready": True, "status": "ready", "model_version": "3"}
        assert client.post("/predict", json={"data": ROWS}).status_code == 200
