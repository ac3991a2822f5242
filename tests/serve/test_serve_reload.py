"""Reloads over HTTP: atomic under load, a failed reload keeps serving, registry aliases, the admin token."""

import os
import threading
import time

import httpx

from .conftest import expected, save_net, serving, set_alias

ROWS = [[0.5, -1.25], [2.0, 3.0]]
TOKEN = {"Authorization": "Bearer s3cret"}


def test_twenty_reloads_under_load_fail_no_request(tmp_path):
    """8 threads predict while the file flips between two models and is reloaded 20 times."""
    path = tmp_path / "model.pt"
    seeds = {"1": 11, "2": 12}  # file version -> net seed
    answers = {version: expected(seed, ROWS) for version, seed in seeds.items()}
    save_net(seeds["1"], path, version="1")
    failures: list[str] = []
    seen: list[str] = []
    done = threading.Event()

    def client_loop(server):
        with server.client() as client:
            while not done.is_set():
                try:
                    answer = client.post("/predict", json={"data": ROWS})
                    body = answer.json()
                    version = body.get("model_version")
                    if answer.status_code != 200 or version not in answers:
                        failures.append(f"{answer.status_code} {answer.text}")
                    elif (body["predictions"], body["probabilities"]) != answers[version]:
                        failures.append(f"version {version} answered with another model's output")
                    else:
                        seen.append(version)
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

    with serving(str(path), tmp_path) as server:
        threads = [threading.Thread(target=client_loop, args=(server,)) for _ in range(8)]
        for thread in threads:
            thread.start()
        try:
            with server.client() as admin:
                for index in range(20):
                    version = "2" if index % 2 == 0 else "1"
                    save_net(seeds[version], path, version=version)
                    reload = admin.post("/reload-model")
                    assert reload.json() == {"status": "success", "message": f"Reloaded model version {version}"}
                    time.sleep(0.02)
        finally:
            done.set()
            for thread in threads:
                thread.join()
    assert failures == []
    assert set(seen) == {"1", "2"} and len(seen) > 100


def test_a_failed_reload_keeps_the_old_model_serving(tmp_path):
    path = save_net(7, tmp_path / "model.pt", version="5")
    with serving(str(path), tmp_path) as server, server.client() as client:
        broken = path.with_name("broken.tmp")
        broken.write_bytes(b"not a model")
        os.replace(broken, path)
        reload = client.post("/reload-model")
        assert reload.status_code == 503
        detail = reload.json()["detail"]
        assert detail.startswith(f"reload failed: model file {str(path)!r} is not readable: "), detail
        assert detail.endswith("; still serving version 5"), detail
        assert client.get("/health/ready").json() == {"ready": True, "status": "ready", "model_version": "5"}
        answer = client.post("/predict", json={"data": ROWS}).json()
        assert (answer["model_version"], (answer["predictions"], answer["probabilities"])) == ("5", expected(7, ROWS))

        path.unlink()
        missing = client.post("/reload-model")
        assert missing.status_code == 503
        assert missing.json() == {
            "detail": f"reload failed: model file {str(path)!r} does not exist; still serving version 5"
        }
        assert client.get("/models").json()["available_versions"] == ["5"]  # listing fails: the served one


def test_a_registry_without_production_starts_and_takes_the_model_on_reload(registry, registry_env, tmp_path):
    env = {**registry_env, "KASLITE_ADMIN_TOKEN": "s3cret"}
    with serving("reg:/kaslite@production", tmp_path, env=env) as server, server.client() as client:
        warnings = [line for line in server.output().splitlines() if "no model behind" in line]
        assert warnings == [
            "WARNING:     kaslite: no model behind reg:/kaslite@production yet (LookupError: model 'kaslite' has "
            "no version with alias 'production'); /health/ready answers 503 until POST /reload-model loads one"
        ]
        not_ready = client.get("/health/ready")
        assert (not_ready.status_code, not_ready.json()) == (
            503,
            {"ready": False, "status": "no_model", "model_version": None},
        )
        assert client.get("/health").json() == {"status": "no_model", "model_loaded": False, "model_version": None}
        assert client.get("/health/live").status_code == 200
        assert client.get("/v2/health/ready").status_code == 400
        assert client.get("/v2/models/kaslite/ready").json() == {"name": "kaslite", "ready": False}
        no_model = {"detail": "no model is loaded; POST /reload-model once one is available"}
        for answer in (client.post("/predict", json={"data": ROWS}), client.get("/models")):
            assert (answer.status_code, answer.json()) == (503, no_model)

        early = client.post("/reload-model", headers=TOKEN)
        assert (early.status_code, early.json()) == (
            503,
            {
                "detail": "reload failed: LookupError: model 'kaslite' has no version with alias 'production'; "
                "no model is loaded"
            },
        )

        set_alias(registry, "production", "2")
        reload = client.post("/reload-model", headers=TOKEN)
        assert reload.json() == {"status": "success", "message": "Reloaded model version 2"}
        assert client.get("/health/ready").status_code == 200
        models = client.get("/models").json()
        assert (models["model_name"], models["current_version"], models["available_versions"]) == (
            "kaslite",
            "2",
            ["1", "2", "3"],
        )
        current = client.post("/predict", json={"data": ROWS}).json()
        assert (current["model_version"], current["predictions"], current["probabilities"]) == ("2", *expected(2, ROWS))

        # Other versions load on demand, by string or number; an unknown one is a 404.
        for version, seed in (("3", 3), (1, 1), ("3", 3)):
            answer = client.post("/predict", json={"data": ROWS, "model_version": version}).json()
            assert (answer["model_version"], answer["predictions"], answer["probabilities"]) == (
                str(version),
                *expected(seed, ROWS),
            )
        unknown = client.post("/predict", json={"data": ROWS, "model_version": "9"})
        assert (unknown.status_code, unknown.json()) == (
            404,
            {"detail": "unknown model_version '9'; available: 1, 2, 3"},
        )
        v2 = {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP64", "data": ROWS}]}
        infer = client.post("/v2/models/kaslite/versions/3/infer", json=v2).json()
        assert (infer["model_version"], infer["outputs"][1]["data"]) == ("3", expected(3, ROWS)[0])
        assert client.get("/v2/models/kaslite/versions/1/ready").json() == {"name": "kaslite", "ready": True}

        set_alias(registry, "production", "3")  # a promotion
        assert client.post("/reload-model", headers=TOKEN).json()["message"] == "Reloaded model version 3"
        assert client.post("/predict", json={"data": ROWS}).json()["model_version"] == "3"


def test_the_admin_token_guards_reload(served_file, tmp_path):
    env = {"KASLITE_ADMIN_TOKEN": "s3cret"}
    with serving(str(served_file), tmp_path, env=env) as server, server.client() as client:
        missing = client.post("/reload-model")
        assert (missing.status_code, missing.json()) == (
            401,
            {"detail": "/reload-model needs 'Authorization: Bearer <token>' (KASLITE_ADMIN_TOKEN is set)"},
        )
        assert missing.headers["www-authenticate"] == "Bearer"
        basic = client.post("/reload-model", headers={"Authorization": "Basic czNjcmV0"})
        assert basic.status_code == 401
        wrong = client.post("/reload-model", headers={"Authorization": "Bearer guess"})
        assert (wrong.status_code, wrong.json()) == (403, {"detail": "/reload-model: wrong admin token"})
        right = client.post("/reload-model", headers=TOKEN)
        assert (right.status_code, right.json()["status"]) == (200, "success")
        # The token guards the admin route only.
        assert client.post("/predict", json={"data": ROWS}).status_code == 200
