"""Throughput and latency of ``kaslite serve`` against a minimal FastAPI app serving the same torch model.

Both servers start the same way (uvicorn, one worker, one torch thread, no
access log, loopback) and run side by side; the client (keep-alive
``http.client`` connections, one per thread) measures them in alternating
rounds so machine noise hits both alike, and reports the median round.
Single-row ``/predict`` at concurrency 1 and 16, then 1,000-row requests at
concurrency 1. With kaslite-tracking installed, ``mlflow
models serve`` of the same model, as kaslite-tracking logs it (``/invocations``;
it answers class indices only), is measured too.
Targets: kaslite ≥ 0.8× the minimal app's requests/s; p50 ≤ 2 ms at concurrency 1.

    python bench/serve.py [--json] [--seconds 2] [--rounds 3]
"""

import argparse
import contextlib
import http.client
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

ROW = [[0.25, -0.5]]
BATCH = [[(i % 17) / 8 - 1.0, (i % 5) / 2 - 1.0] for i in range(1000)]


def baseline_app(model_path: str):  # type: ignore[no-untyped-def]
    """The minimal app: the same model behind one FastAPI route, nothing else."""
    import torch
    from fastapi import FastAPI
    from pydantic import BaseModel

    from kaslite.models import load_model

    net = load_model(model_path)
    app = FastAPI()

    class Request(BaseModel):
        data: list[list[float]]

    @app.post("/predict")
    def predict(request: Request) -> dict:
        with torch.inference_mode():
            probabilities = torch.softmax(net(torch.tensor(request.data, dtype=torch.float32)), dim=1)
        return {"predictions": probabilities.argmax(dim=1).tolist(), "probabilities": probabilities.tolist()}

    return app


def run_baseline(model_path: str, port: int) -> None:
    """Serve the minimal app exactly as ``kaslite serve`` serves its own."""
    import torch
    import uvicorn

    torch.set_num_threads(1)
    uvicorn.run(baseline_app(model_path), host="127.0.0.1", port=port, workers=1, log_level="warning", access_log=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def started(command: list[str], port: int, probe: str) -> Iterator[int]:
    # mlflow runs `uvicorn` from PATH: make it this interpreter's.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise SystemExit(f"{command[:3]} exited: {process.stderr.read() if process.stderr else ''}")
            with contextlib.suppress(OSError):
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", probe)
                if connection.getresponse().status == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"{command[:3]} did not start")
            time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def load(port: int, path: str, body: bytes, concurrency: int, seconds: float) -> dict[str, float]:
    """Requests/s, p50 and p99 (ms) of ``concurrency`` threads posting ``body`` for ``seconds``."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[str] = []
    stop = time.perf_counter() + seconds
    barrier = threading.Barrier(concurrency)
    headers = {"Content-Type": "application/json"}

    def worker(mine: list[float]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        barrier.wait()
        while (started_at := time.perf_counter()) < stop:
            connection.request("POST", path, body, headers)
            response = connection.getresponse()
            response.read()
            mine.append(time.perf_counter() - started_at)
            if response.status != 200:
                errors.append(str(response.status))
        connection.close()

    threads = [threading.Thread(target=worker, args=(mine,)) for mine in latencies]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise SystemExit(f"{len(errors)} requests to {path} failed, e.g. HTTP {errors[0]}")
    every = sorted(t for mine in latencies for t in mine)
    return {
        "rps": round(len(every) / elapsed, 1),
        "p50_ms": round(every[len(every) // 2] * 1000, 3),
        "p99_ms": round(every[min(len(every) - 1, int(len(every) * 0.99))] * 1000, 3),
    }


def median_round(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(r[key] for r in rounds), 3) for key in rounds[0]}


def make_model(folder: Path) -> Path:
    import torch

    from kaslite.nn import MorphogeneticNet

    torch.manual_seed(0)
    net = MorphogeneticNet(input_dim=2, hidden_dim=32, num_layers=2, seeds_per_layer=1, num_classes=2)
    from kaslite.models import save_model

    return save_model(net, folder / "model.pt", {"run_name": "bench"})


def mlflow_model(model_path: Path, folder: Path) -> Path:
    """The same model as kaslite-tracking logs it (its pyfunc code + model.pt), saved locally."""
    import mlflow.pyfunc
    import numpy as np
    from mlflow.models import infer_signature

    from kaslite_tracking.model_logging import PYFUNC_CODE, pip_requirements

    example = np.asarray(ROW, dtype=np.float32)
    target = folder / "mlflow-model"
    mlflow.pyfunc.save_model(
        str(target),
        python_model=str(PYFUNC_CODE),
        artifacts={"model": str(model_path)},
        signature=infer_signature(example, np.zeros(1, dtype=np.int64)),
        pip_requirements=pip_requirements(),
    )
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per measurement (median kept)")
    parser.add_argument("--run-baseline", nargs=2, metavar=("MODEL", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_baseline:
        run_baseline(args.run_baseline[0], int(args.run_baseline[1]))
        return

    folder = Path(tempfile.mkdtemp(prefix="kaslite-bench-serve-"))
    model = make_model(folder)
    one_row = json.dumps({"data": ROW}).encode()
    thousand = json.dumps({"data": BATCH}).encode()
    servers = {
        "kaslite": ([sys.executable, "-m", "kaslite", "serve", "--model", str(model), "--log-level", "warning"],
                    "/predict", "/health/ready", one_row, thousand),
        "minimal": ([sys.executable, __file__, "--run-baseline", str(model)],
                    "/predict", "/docs", one_row, thousand),
    }  # fmt: skip
    notes = []
    if importlib.util.find_spec("kaslite_tracking") and importlib.util.find_spec("mlflow"):
        served = mlflow_model(model, folder)
        command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(served), "--env-manager", "local",
                   "--host", "127.0.0.1", "--workers", "1"]  # fmt: skip
        servers["mlflow"] = (command, "/invocations", "/ping",
                             json.dumps({"inputs": ROW}).encode(), json.dumps({"inputs": BATCH}).encode())  # fmt: skip
    else:
        notes.append("mlflow models serve: skipped (kaslite-tracking and mlflow are not installed)")

    results: dict[str, dict[str, dict[str, float]]] = {name: {} for name in servers}
    with contextlib.ExitStack() as stack:
        ports = {}
        for name, (command, _, probe, _, _) in servers.items():
            port = free_port()
            full = [*command, str(port)] if name == "minimal" else [*command, "--port", str(port)]
            ports[name] = stack.enter_context(started(full, port, probe))
        levels = [("c1", one_row, 1), ("c16", one_row, 16), ("rows1000_c1", thousand, 1)]
        for level, _, concurrency in levels:
            rounds: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
            for name, (_, path, _, single, batch) in servers.items():  # warm-up
                load(ports[name], path, single if level != "rows1000_c1" else batch, concurrency, 0.3)
            for _ in range(args.rounds):
                for name, (_, path, _, single, batch) in servers.items():
                    body = single if level != "rows1000_c1" else batch
                    rounds[name].append(load(ports[name], path, body, concurrency, args.seconds))
            for name in servers:
                results[name][level] = median_round(rounds[name])

    ratio = {level: round(results["kaslite"][level]["rps"] / results["minimal"][level]["rps"], 3) for level in
             ("c1", "c16", "rows1000_c1")}  # fmt: skip
    summary = {
        "results": results,
        "throughput_ratio_kaslite_vs_minimal": ratio,
        "targets": {
            "ratio_ge_0.8": all(value >= 0.8 for key, value in ratio.items() if key != "rows1000_c1"),
            "p50_c1_le_2ms": results["kaslite"]["c1"]["p50_ms"] <= 2.0,
        },
        "notes": notes,
    }
    if args.json:
        print(json.dumps(summary))
        return
    print(f"single-row /predict and 1,000-row requests, {args.rounds} rounds × {args.seconds:g} s, median round:")
    print(f"  {'server':<9} {'level':<12} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name, levels_done in results.items():
        for level, figures in levels_done.items():
            print(f"  {name:<9} {level:<12} {figures['rps']:>9.1f} {figures['p50_ms']:>8.3f} {figures['p99_ms']:>8.3f}")
    print(f"  kaslite ÷ minimal throughput: {ratio}  (target ≥ 0.8 for single rows)")
    print(f"  kaslite p50 at concurrency 1: {results['kaslite']['c1']['p50_ms']:.3f} ms  (target ≤ 2 ms)")
    for note in notes:
        print(f"  note: {note}")


if __name__ == "__main__":
    main()
