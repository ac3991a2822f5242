"""A small FastAPI app answering like kaslite-serve's documented routes, for testing the monitor hook.

``create_app(state)`` builds it and extends it through the ``kaslite_server_app``
hook exactly as kaslite-serve does (the plugin manager, so kaslite-monitor is
found through its entry point). Run as a script it serves on a free port of
127.0.0.1 with uvicorn and prints that port first.
"""

import argparse
import socket
import sys
from typing import Any

import attrs


@attrs.define
class FakeModel:
    """What the fake server serves; tests change it between requests."""

    loaded: bool = True
    version: int = 1
    inference_ms: float = 0.25
    fail_reload: bool = False
    token: str | None = None


@attrs.frozen
class Settings:
    """Duck-typed like kaslite-serve's ServerSettings: the fields the monitor reads."""

    model_uri: str = "models:/xor-net@production"
    model_name: str | None = None


def create_app(model: FakeModel, settings: Settings | None = None) -> Any:
    from fastapi import FastAPI, Header, Request
    from fastapi.responses import JSONResponse

    import kaslite

    app = FastAPI()

    def not_ready() -> JSONResponse:
        return JSONResponse({"detail": "no model is loaded"}, status_code=503)

    @app.post("/predict")
    async def predict(request: Request) -> Any:
        if not model.loaded:
            return not_ready()
        rows = (await request.json()).get("data")
        if not isinstance(rows, list) or not rows:
            return JSONResponse({"detail": "data: must be a non-empty list of rows"}, status_code=422)
        return {
            "predictions": [0 for _ in rows],
            "probabilities": [[0.75, 0.25] for _ in rows],
            "model_version": str(model.version),
            "inference_time_ms": model.inference_ms,
        }

    @app.post("/v2/models/{name}/infer")
    def infer(name: str) -> Any:
        return {"model_name": name, "model_version": str(model.version), "outputs": []}

    @app.get("/models")
    def models() -> Any:
        if not model.loaded:
            return not_ready()
        return {"model_name": "xor", "current_version": str(model.version), "available_versions": [str(model.version)]}

    @app.get("/health")
    def health() -> Any:
        return {
            "status": "ok" if model.loaded else "no_model",
            "model_loaded": model.loaded,
            "model_version": str(model.version) if model.loaded else None,
        }

    @app.get("/health/live")
    def live() -> Any:
        return {"status": "alive"}

    @app.get("/health/ready")
    def ready() -> Any:
        body = {"ready": model.loaded, "model_version": str(model.version) if model.loaded else None}
        return JSONResponse(body, status_code=200 if model.loaded else 503)

    @app.post("/reload-model")
    def reload_model(authorization: str | None = Header(default=None), fail: bool = False) -> Any:
        if model.token is not None and authorization != f"Bearer {model.token}":
            return JSONResponse({"detail": "needs a bearer token"}, status_code=401)
        if model.fail_reload or fail:  # ?fail=true: how a test fails a reload of a server in a subprocess
            return JSONResponse({"detail": "reload failed: no such version; still serving"}, status_code=503)
        model.version += 1
        model.loaded = True
        return {"status": "success", "message": f"Reloaded model version {model.version}"}

    @app.get("/boom")
    def boom() -> Any:
        raise RuntimeError("boom")

    kaslite.get_plugin_manager().hook.kaslite_server_app(app=app, settings=settings or Settings())
    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--no-model", action="store_true")
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    print(sock.getsockname()[1], flush=True)
    app = create_app(FakeModel(loaded=not args.no_model))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    server.run(sockets=[sock])
    sys.exit(0)


if __name__ == "__main__":
    main()
