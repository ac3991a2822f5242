"""Throughput, latency and memory of ``kaslite serve`` beside ``mlflow models serve`` and a minimal FastAPI app.

All three serve the same torch model the same way (uvicorn, one worker, one
torch thread, no access log, loopback) and run side by side; the client
(keep-alive ``http.client`` connections, one per thread) measures them in
alternating rounds so machine noise hits all alike, and reports the median
round (ratios: the median of the rounds' ratios, each of two servers measured
one right after the other). Single-row requests at concurrency 1 and 16, then
1,000-row requests at concurrency 1. ``mlflow models serve`` serves the model as kaslite-tracking logs
it (``/invocations``; it answers class indices only) and needs kaslite-tracking.
Besides requests/s, p50 and p99, each server's CPU time per request (all its
processes) and its memory (resident set of all its processes, at the end).

Targets: single-row requests/s ≥ 2.0× mlflow's at concurrency 1 and 16; p50 ≤
1 ms at concurrency 1; a 1,000-row request ≤ 10 ms (median) and faster than
both mlflow and the minimal app.

    python bench/serve.py [--json] [--seconds 2] [--rounds 3]
    python bench/serve.py --http-metrics   # kaslite-monitor's request metrics against a maintained library

``--http-metrics`` measures what the inference server's HTTP metrics cost:
``kaslite serve`` as shipped (kaslite-monitor's middleware), with
prometheus-fastapi-instrumentator recording the same series instead, and with
no HTTP metrics (the model metrics still on), single rows at concurrency 1 and 16.
"""

import argparse
import contextlib
import http.client
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from kaslite_serve.testing import free_port, wait_until_up

ROW = [[0.25, -0.5]]
BATCH = [[(i % 17) / 8 - 1.0, (i % 5) / 2 - 1.0] for i in range(1000)]
TICKS = os.sysconf("SC_CLK_TCK")


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


def instrumented_app(model_path: str):  # type: ignore[no-untyped-def]
    """``kaslite serve``'s app with prometheus-fastapi-instrumentator recording kaslite-monitor's HTTP series."""
    os.environ["KASLITE_DISABLE_PLUGINS"] = "monitor"  # its hook would add its own middleware
    from prometheus_fastapi_instrumentator import Instrumentator

    from kaslite_monitor.inference import InferenceMetrics
    from kaslite_serve import ServerSettings, create_app

    app = create_app(ServerSettings(model_uri=model_path))
    metrics = InferenceMetrics()
    app.state.events.subscribe(metrics)

    def http_series(info):  # type: ignore[no-untyped-def]
        metrics.requests.labels(info.modified_handler, info.method, info.modified_status).inc()
        metrics.request_duration.labels(info.modified_handler).observe(info.modified_duration)

    instrumentator = Instrumentator(
        should_group_status_codes=False, excluded_handlers=["/metrics"], registry=metrics.registry
    )
    instrumentator.add(http_series).instrument(app).expose(app)
    return app


def events_only_app(model_path: str):  # type: ignore[no-untyped-def]
    """``kaslite serve``'s app with kaslite-monitor's model metrics but no HTTP metrics."""
    os.environ["KASLITE_DISABLE_PLUGINS"] = "monitor"
    from kaslite_monitor.inference import InferenceMetrics
    from kaslite_serve import ServerSettings, create_app

    app = create_app(ServerSettings(model_uri=model_path))
    app.state.events.subscribe(InferenceMetrics())
    return app


APPS = {"baseline": baseline_app, "instrumented": instrumented_app, "events-only": events_only_app}


def run_app(kind: str, model_path: str, port: int) -> None:
    """Serve one of this file's apps exactly as ``kaslite serve`` serves its own."""
    import torch
    import uvicorn

    torch.set_num_threads(1)
    app = APPS[kind](model_path)
    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, log_level="warning", access_log=False)


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (``mlflow models serve`` runs uvicorn in a child)."""
    pids = [pid]
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        pids += process_tree(int(child))
    return pids


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its descendants."""
    total = 0
    for each in process_tree(pid):
        fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants, MiB."""
    total = 0
    for each in process_tree(pid):
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return round(total / 1024, 1)


@contextlib.contextmanager
def started(command: list[str], port: int, probe: str) -> Iterator[subprocess.Popen]:
    # mlflow runs `uvicorn` from PATH: make it this interpreter's.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)

    def output() -> str:  # stderr can be read whole only once the process has exited
        exited = process.poll() is not None and process.stderr is not None
        return process.stderr.read() if exited else f"{command[:3]} is still starting"  # type: ignore[union-attr]

    try:
        try:
            wait_until_up(process, f"http://127.0.0.1:{port}{probe}", lambda status, _: status == 200, 120, output)
        except AssertionError as exc:
            raise SystemExit(str(exc)) from None
        yield process
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
        "requests": len(every),
    }


def measured(process: subprocess.Popen, port: int, path: str, body: bytes, concurrency: int, seconds: float) -> dict:
    """``load`` plus the server's CPU time per request (µs), all its processes counted."""
    before = cpu_seconds(process.pid)
    figures = load(port, path, body, concurrency, seconds)
    figures["cpu_us"] = round((cpu_seconds(process.pid) - before) / figures.pop("requests") * 1e6, 1)
    return figures


def median_round(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(r[key] for r in rounds), 3) for key in rounds[0]}


def ratio(results: dict, name: str, other: str, level: str) -> float:
    """Median over rounds of ``name``'s requests/s ÷ ``other``'s, measured back to back in each round."""
    pairs = zip(results[name]["rounds"][level], results[other]["rounds"][level], strict=True)
    return round(statistics.median(mine / theirs for mine, theirs in pairs), 3)


def make_model(folder: Path) -> Path:
    import torch

    from kaslite.models import save_model
    from kaslite.nn import MorphogeneticNet

    torch.manual_seed(0)
    net = MorphogeneticNet(input_dim=2, hidden_dim=32, num_layers=2, seeds_per_layer=1, num_classes=2)
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
        input_example=example,
        pip_requirements=pip_requirements(),
    )
    return target


def kaslite_command(model: Path) -> list[str]:
    return [sys.executable, "-m", "kaslite", "serve", "--model", str(model), "--log-level", "warning", "--port"]


def measure(servers: dict, levels: list[tuple[str, str, int]], rounds: int, seconds: float) -> dict:
    """Each server at each level (name, body key, concurrency), alternating rounds; median round, then memory.

    ``results[name]["rounds"][level]`` keeps every round's requests/s, for ratios round by round.
    """
    results: dict[str, dict] = {name: {"rounds": {}} for name in servers}
    with contextlib.ExitStack() as stack:
        running = {}
        for name, server in servers.items():
            port = free_port()
            running[name] = (port, stack.enter_context(started([*server["command"], str(port)], port, server["probe"])))
        for level, body, concurrency in levels:
            rounds_of: dict[str, list[dict]] = {name: [] for name in servers}
            for name, server in servers.items():  # warm-up
                load(running[name][0], server["path"], server[body], concurrency, 0.3)
            for _ in range(rounds):
                for name, server in servers.items():
                    port, process = running[name]
                    rounds_of[name].append(measured(process, port, server["path"], server[body], concurrency, seconds))
            for name in servers:
                results[name][level] = median_round(rounds_of[name])
                results[name]["rounds"][level] = [figures["rps"] for figures in rounds_of[name]]
        for name in servers:
            results[name]["rss_mib"] = rss_mib(running[name][1].pid)
    return results


def http_metrics(model: Path, rounds: int, seconds: float) -> None:
    """kaslite-monitor's middleware against prometheus-fastapi-instrumentator, on single-row /predict."""
    if importlib.util.find_spec("prometheus_fastapi_instrumentator") is None:
        raise SystemExit("--http-metrics needs prometheus-fastapi-instrumentator: pip install it first")
    one_row = json.dumps({"data": ROW}).encode()
    app = [sys.executable, __file__, "--run-app"]
    common = {"path": "/predict", "probe": "/health/ready", "single": one_row}
    servers = {
        "kaslite-monitor middleware": {"command": kaslite_command(model), **common},
        "prometheus-fastapi-instrumentator": {"command": [*app, "instrumented", str(model)], **common},
        "no HTTP metrics": {"command": [*app, "events-only", str(model)], **common},
    }
    results = measure(servers, [("c1", "single", 1), ("c16", "single", 16)], rounds, seconds)
    base = results["no HTTP metrics"]
    print(f"HTTP metrics of the inference server, single-row /predict, {rounds} rounds × {seconds:g} s, median round:")
    for level in ("c1", "c16"):
        for name, figures in results.items():
            cost = 1 - ratio(results, name, "no HTTP metrics", level)
            cpu = figures[level]["cpu_us"] - base[level]["cpu_us"]
            print(
                f"  {level:<4} {name:<34} {figures[level]['rps']:>8.1f} req/s (costs {cost:5.1%})  "
                f"{figures[level]['cpu_us']:>6.1f} µs CPU/request ({cpu:+.1f}, {cpu / base[level]['cpu_us']:+.1%})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per measurement (median kept)")
    parser.add_argument("--http-metrics", action="store_true", help="compare the inference server's HTTP metrics")
    parser.add_argument("--run-app", nargs=3, metavar=("KIND", "MODEL", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_app:
        run_app(args.run_app[0], args.run_app[1], int(args.run_app[2]))
        return

    folder = Path(tempfile.mkdtemp(prefix="kaslite-bench-serve-"))
    model = make_model(folder)
    if args.http_metrics:
        http_metrics(model, args.rounds, args.seconds)
        return
    one_row = json.dumps({"data": ROW}).encode()
    thousand = json.dumps({"data": BATCH}).encode()
    if not (importlib.util.find_spec("kaslite_tracking") and importlib.util.find_spec("mlflow")):
        raise SystemExit("bench/serve.py compares with mlflow models serve: install kaslite-tracking")
    served = mlflow_model(model, folder)
    # In this order: each round measures kaslite and mlflow one right after the other.
    servers = {
        "kaslite": {"command": kaslite_command(model), "path": "/predict", "probe": "/health/ready",
                    "single": one_row, "batch": thousand},
        "mlflow": {"command": [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(served),
                               "--env-manager", "local", "--host", "127.0.0.1", "--workers", "1", "--port"],
                   "path": "/invocations", "probe": "/ping",
                   "single": json.dumps({"inputs": ROW}).encode(), "batch": json.dumps({"inputs": BATCH}).encode()},
        "minimal": {"command": [sys.executable, __file__, "--run-app", "baseline", str(model)], "path": "/predict",
                    "probe": "/docs", "single": one_row, "batch": thousand},
    }  # fmt: skip

    levels = [("c1", "single", 1), ("c16", "single", 16), ("rows1000_c1", "batch", 1)]
    results = measure(servers, levels, args.rounds, args.seconds)
    kaslite, mlflow = results["kaslite"], results["mlflow"]
    rows1000 = {name: figures["rows1000_c1"]["p50_ms"] for name, figures in results.items()}
    summary = {
        "ratio_vs_mlflow_c1": ratio(results, "kaslite", "mlflow", "c1"),
        "ratio_vs_mlflow_c16": ratio(results, "kaslite", "mlflow", "c16"),
        "ratio_vs_minimal_c1": ratio(results, "kaslite", "minimal", "c1"),
        "ratio_vs_minimal_c16": ratio(results, "kaslite", "minimal", "c16"),
        "cpu_ratio_vs_mlflow_c1": round(mlflow["c1"]["cpu_us"] / kaslite["c1"]["cpu_us"], 3),
        "cpu_ratio_vs_mlflow_c16": round(mlflow["c16"]["cpu_us"] / kaslite["c16"]["cpu_us"], 3),
        "p50_c1_ms": kaslite["c1"]["p50_ms"],
        "rows1000_ms": rows1000["kaslite"],
        "rows1000_ms_mlflow": rows1000["mlflow"],
        "rows1000_ms_minimal": rows1000["minimal"],
        "rss_mib": {name: figures["rss_mib"] for name, figures in results.items()},
        "results": results,
    }
    summary["targets"] = {
        "ratio_vs_mlflow_ge_2": summary["ratio_vs_mlflow_c1"] >= 2.0 and summary["ratio_vs_mlflow_c16"] >= 2.0,
        "p50_c1_le_1ms": kaslite["c1"]["p50_ms"] <= 1.0,
        "rows1000_le_10ms_and_fastest": rows1000["kaslite"] <= 10.0
        and rows1000["kaslite"] < min(rows1000["mlflow"], rows1000["minimal"]),
    }
    if args.json:
        print(json.dumps(summary))
        return
    print(f"single-row and 1,000-row requests, {args.rounds} rounds × {args.seconds:g} s, median round:")
    print(f"  {'server':<8} {'level':<12} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU µs/req':>11}")
    for name, figures in results.items():
        for level, _, _ in levels:
            row = figures[level]
            print(f"  {name:<8} {level:<12} {row['rps']:>9.1f} {row['p50_ms']:>8.3f} {row['p99_ms']:>8.3f} "
                  f"{row['cpu_us']:>11.1f}")  # fmt: skip
    print(f"  memory (RSS, all processes): {', '.join(f'{n} {m} MiB' for n, m in summary['rss_mib'].items())}")
    print(f"  kaslite ÷ mlflow req/s: c1 {summary['ratio_vs_mlflow_c1']}, c16 {summary['ratio_vs_mlflow_c16']} (≥ 2.0)")
    print(f"  mlflow ÷ kaslite CPU per request: c1 {summary['cpu_ratio_vs_mlflow_c1']}, "
          f"c16 {summary['cpu_ratio_vs_mlflow_c16']}")  # fmt: skip
    print(f"  kaslite p50 at concurrency 1: {kaslite['c1']['p50_ms']:.3f} ms (≤ 1 ms)")
    print(f"  1,000 rows, p50: kaslite {rows1000['kaslite']} ms, mlflow {rows1000['mlflow']} ms, "
          f"minimal {rows1000['minimal']} ms (≤ 10 ms and fastest)")  # fmt: skip
    print(f"  targets: {summary['targets']}")


if __name__ == "__main__":
    main()
