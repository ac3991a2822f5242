"""Every endpoint and every bad input, over HTTP, against a real ``kaslite serve`` of a model file."""

import json

import httpx
import pytest

from .conftest import expected

ROWS = [[0.5, -1.25], [2.0, 3.0], [-0.75, 0.0]]
FLAT_ROWS = [value for row in ROWS for value in row]


def test_predict_answers_what_the_model_computes(server):
    with server.client() as client:
        answer = client.post("/predict", json={"data": ROWS})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    predictions, probabilities = expected(0, ROWS)
    assert set(body) == {"predictions", "probabilities", "model_version", "inference_time_ms"}
    assert body["predictions"] == predictions
    assert body["probabilities"] == probabilities
    assert body["model_version"] == "1"
    assert 0 < body["inference_time_ms"] < 1000


def test_a_version_can_be_named_as_a_string_or_a_number(server):
    with server.client() as client:
        for version in ("1", 1):
            answer = client.post("/predict", json={"data": ROWS[:1], "model_version": version})
            assert answer.status_code == 200 and answer.json()["model_version"] == "1", answer.text


def test_models_health_and_reload(server):
    with server.client() as client:
        assert client.get("/models").json() == {
            "model_name": "demo",
            "current_version": "1",
            "available_versions": ["1"],
            "input_shape": [2],
            "output_shape": [3],
            "input_dim": 2,
            "num_classes": 3,
            "seeds": {"seed1_1": {"state": "active", "alpha": 1.0}, "seed2_1": {"state": "dormant", "alpha": 0.0}},
        }
        assert client.get("/health").json() == {"status": "ok", "model_loaded": True, "model_version": "1"}
        live = client.get("/health/live")
        assert (live.status_code, live.json()) == (200, {"status": "alive"})
        ready = client.get("/health/ready")
        assert (ready.status_code, ready.json()) == (200, {"ready": True, "status": "ready", "model_version": "1"})
        reload = client.post("/reload-model")
        assert (reload.status_code, reload.json()) == (
            200,
            {"status": "success", "message": "Reloaded model version 1"},
        )


def test_open_inference_protocol_routes(server):
    predictions, probabilities = expected(0, ROWS)
    flat = [p for row in probabilities for p in row]
    request = {"id": "r1", "inputs": [{"name": "x", "shape": [3, 2], "datatype": "FP32", "data": FLAT_ROWS}]}
    with server.client() as client:
        assert client.get("/v2").json() == {"name": "kaslite", "version": "0.1.0", "extensions": []}
        assert client.get("/v2/health/live").json() == {"live": True}
        assert client.get("/v2/health/ready").json() == {"ready": True}
        assert client.get("/v2/models/demo/ready").json() == {"name": "demo", "ready": True}
        assert client.get("/v2/models/demo").json() == {
            "name": "demo",
            "versions": ["1"],
            "platform": "pytorch_kaslite",
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 2]}],
            "outputs": [
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
                {"name": "predictions", "datatype": "INT64", "shape": [-1]},
            ],
        }
        assert client.post("/v2/models/demo/infer", json=request).json() == {
            "model_name": "demo",
            "model_version": "1",
            "id": "r1",
            "outputs": [
                {"name": "probabilities", "datatype": "FP32", "shape": [3, 3], "data": flat},
                {"name": "predictions", "datatype": "INT64", "shape": [3], "data": predictions},
            ],
        }
        nested = {"inputs": [{**request["inputs"][0], "data": ROWS}], "outputs": [{"name": "predictions"}]}
        by_version = client.post("/v2/models/demo/versions/1/infer", json=nested).json()
        assert by_version["outputs"] == [
            {"name": "predictions", "datatype": "INT64", "shape": [3], "data": predictions}
        ]
        assert "id" not in by_version
        unknown = client.get("/v2/models/other/ready")
        assert (unknown.status_code, unknown.json()) == (
            404,
            {"error": "unknown model 'other'; this server serves 'demo'"},
        )


NaN_ROW = '{"data": [[0.5, NaN]]}'


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({}, 422, "data: Field required"),
        ({"data": 5}, 422, "data: Input should be a valid list"),
        ({"data": [1.0, 2.0]}, 422, "data[0]: Input should be a valid list; data[1]: Input should be a valid list"),
        ({"data": [[0.5, 1.0], [1.0]]}, 422, "data rows differ in length: data[0] has 2 values, data[1] has 1 value"),
        ({"data": [[0.5, 1.0, 2.0]]}, 422, "data rows have 3 values; the model takes input_dim = 2"),
        ({"data": [[0.5, "1"]]}, 422, "data[0][1]: Input should be a valid number"),
        ({"data": [[0.5, True]]}, 422, "data[0][1]: Input should be a valid number"),
        ({"data": [[0.5, None]]}, 422, "data[0][1]: Input should be a valid number"),
        (NaN_ROW, 422, "data[0][1] is NaN; send finite numbers"),
        ('{"data": [[0, 1], [-Infinity, 1]]}', 422, "data[1][0] is infinite; send finite numbers"),
        ('{"data": [[1e400, 1]]}', 422, "data[0][0] is infinite; send finite numbers"),
        ({"data": [[1.0, 1e39]]}, 422, "data[0][1] is beyond float32 range (±3.4e38); send finite numbers"),
        ('{"data": [[1' + "0" * 400 + ", 1]]}", 422, "data[0][0]: Input should be a valid number"),
        ({"data": [[-3e38, -3e38]]}, 422, "the model's output is not finite for this data (values too large?)"),
        ({"data": []}, 422, "data has no rows; send at least one row of 2 numbers"),
        ({"data": [[0.0, 0.0]] * 51}, 422, "data has 51 rows; at most 50 are allowed per request"),
        ({"data": [[0.0, 0.0]], "model_version": "7"}, 404, "unknown model_version '7'; available: 1"),
        ({"data": [[0.0, 0.0]], "model_version": True}, 422, "model_version: Input should be a valid string"),
        ("[1, 2]", 422, "body: Input should be a valid dictionary or object to extract fields from"),
        ("{not json", 422, "body is not valid JSON (Expecting property name enclosed in double quotes)"),
    ],
)
def test_bad_predict_input_is_a_clear_4xx(server, body, status, message):
    content = body if isinstance(body, str) else json.dumps(body)
    with server.client() as client:
        answer = client.post("/predict", content=content, headers={"content-type": "application/json"})
        assert (answer.status_code, answer.json()) == (status, {"detail": message})
        assert client.get("/health/ready").status_code == 200  # still serving


def test_bodies_over_the_size_cap_get_413_declared_or_chunked(server):
    big = json.dumps({"data": [[1.5, 2.5]] * 2000}).encode()  # over the 20000-byte cap
    expected_answer = (413, {"detail": "request body is over the 20000-byte limit"})
    with server.client() as client:
        declared = client.post("/predict", content=big, headers={"content-type": "application/json"})
        assert (declared.status_code, declared.json()) == expected_answer
        chunks = (big[i : i + 4096] for i in range(0, len(big), 4096))  # a generator: no Content-Length
        chunked = client.post("/predict", content=chunks, headers={"content-type": "application/json"})
        assert (chunked.status_code, chunked.json()) == expected_answer
        v2 = client.post("/v2/models/demo/infer", content=big, headers={"content-type": "application/json"})
        assert (v2.status_code, v2.json()) == (413, {"error": "request body is over the 20000-byte limit"})


def v2_input(**changes):
    tensor = {"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [0.5, 1.0], **changes}
    return {"inputs": [tensor]}


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({}, 400, "inputs: Field required"),
        ({"inputs": []}, 400, "the model takes exactly one input tensor; the request has 0"),
        (v2_input(data=[0.5, "a"]), 400, "inputs[0].data[1]: Input should be a valid number"),
        (v2_input(data=[[0.5, 1.0], [0.5]], shape=[2, 2]), 400,
         "input 'x': data is not 2 rows of 2 values, as its shape [2, 2] says"),
        (v2_input(data=[0.5, 1.0, 2.0]), 400, "input 'x': shape [1, 2] needs 2 values; data holds 3"),
        (v2_input(datatype="BYTES"), 400, "input 'x' has datatype 'BYTES'; expected one of FP32, FP64, INT64, ..."),
        (v2_input(shape=[2]), 400, "input 'x' has shape [2]; expected [rows, 2]"),
        (v2_input(shape=[10**12, 0], data=[]), 400,
         "input 'x' has 1000000000000 rows; at most 50 are allowed per request"),
        (v2_input(shape=[1, 3], data=[0.5, 1.0, 2.0]), 400,
         "input 'x' rows have 3 values; the model takes input_dim = 2"),
        (v2_input(shape=[0, 2], data=[]), 400, "input 'x' has no rows; send at least one row of 2 numbers"),
        ({**v2_input(), "outputs": [{"name": "logits"}]}, 400,
         "unknown output 'logits'; the model has probabilities, predictions"),
    ],
)  # fmt: skip
def test_bad_v2_input_is_a_400_with_an_error(server, body, status, message):
    with server.client() as client:
        answer = client.post("/v2/models/demo/infer", json=body)
    assert (answer.status_code, answer.json()) == (status, {"error": message})


def test_v2_nan_and_unknown_names(server):
    with server.client() as client:
        nan = client.post(
            "/v2/models/demo/infer",
            content=json.dumps(v2_input(data=[0.5, float("nan")])),
            headers={"content-type": "application/json"},
        )
        assert (nan.status_code, nan.json()) == (400, {"error": "input 'x'[0][1] is NaN; send finite numbers"})
        other = client.post("/v2/models/other/infer", json=v2_input())
        assert (other.status_code, other.json()) == (404, {"error": "unknown model 'other'; this server serves 'demo'"})
        version = client.post("/v2/models/demo/versions/4/infer", json=v2_input())
        assert (version.status_code, version.json()) == (404, {"error": "unknown model_version '4'; available: 1"})


def test_unknown_routes_and_methods_are_4xx(server):
    with server.client() as client:
        assert client.get("/nothing").status_code == 404
        assert client.get("/predict").status_code == 405
        assert (
            client.post("/predict", content=b"\xff\xfe", headers={"content-type": "application/json"}).status_code
            == 422
        )


def test_openapi_schema_lists_every_route(server):
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    assert set(paths) == {
        "/predict", "/models", "/health", "/health/live", "/health/ready", "/reload-model",
        "/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/{name}", "/v2/models/{name}/ready",
        "/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}",
        "/v2/models/{name}/versions/{version}/ready", "/v2/models/{name}/versions/{version}/infer",
    }  # fmt: skip


def test_accepted_connections_turn_nagle_off():
    """A response split over two writes must not wait for a delayed ACK (Nagle's algorithm: ~40 ms each).

    asyncio sets TCP_NODELAY only on sockets created with proto IPPROTO_TCP, so check
    what a connection accepted on kaslite's own listening socket really gets.
    """
    import asyncio
    import socket

    from kaslite_serve.server import listen

    async def accepted_nodelay() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport):
                sock = transport.get_extra_info("socket")
                seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

        sock = listen("127.0.0.1", 0)
        server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
        _, writer = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
        try:
            return await asyncio.wait_for(seen, timeout=30)
        finally:
            writer.close()
            server.close()

    assert asyncio.run(accepted_nodelay()) != 0
