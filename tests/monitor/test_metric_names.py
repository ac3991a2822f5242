"""No rule or dashboard watches a metric (or a label) the exporters do not really emit.

The emitted side is scraped from a real training run and a real server over
HTTP; the watched side is every query in the shipped rules and dashboards.
"""

import json
import re
from pathlib import Path

import pytest
import yaml

from kaslite_monitor.export import asset_files
from kaslite_serve.testing import ServeProcess

from .conftest import subprocess_env
from .exposition import parse, scrape
from .servers import save_model_file
from .test_inference import ROW, post

README = Path(__file__).resolve().parents[2] / "kaslite-monitor" / "README.md"
NAME = re.compile(r"\b(kaslite_[a-z0-9_]+)\b")
SELECTOR = re.compile(r"\b(kaslite_[a-z0-9_]+|up)\s*\{([^}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
LEGEND = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")
LABEL_VALUES = re.compile(r"label_values\((kaslite_[a-z0-9_]+)(?:\{[^}]*\})?,\s*([a-zA-Z_]+)\)")
TARGET_LABELS = {"job", "instance"}  # added by Prometheus to every scraped series


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> str:
    """The exposition of the real server (``kaslite serve``, over HTTP) after some traffic."""
    folder = tmp_path_factory.mktemp("served")
    model = save_model_file(folder / "model.pt")
    server = ServeProcess(str(model), env=subprocess_env(), log=folder / "server.log")
    try:
        assert post(f"{server.url}/predict", ROW) == 200
        assert post(f"{server.url}/predict", {"data": []}) == 422
        scrape(f"{server.url}/models")
        assert post(f"{server.url}/reload-model") == 200
        model.write_bytes(b"not a model")
        assert post(f"{server.url}/reload-model") == 503
        return scrape(f"{server.url}/metrics")
    finally:
        server.stop()


@pytest.fixture(scope="module")
def emitted(kasmina_run, served) -> dict[str, set[str]]:
    """Sample name -> the label names it is emitted with."""
    _, probe = kasmina_run
    out: dict[str, set[str]] = {}
    for text in (probe.last_text, served):
        for name, series in parse(text).items():
            for labels in series:
                out.setdefault(name, set()).update(label for label, _ in labels)
    return out


def queries() -> list[tuple[str, str, str]]:
    """(where, expr, legend) for every rule and dashboard query, and every dashboard variable."""
    files = asset_files()
    out = []
    for rel, content in files.items():
        if rel.startswith("prometheus/rules/"):
            for group in yaml.safe_load(content)["groups"]:
                out += [(f"{rel}: {rule['alert']}", rule["expr"], "") for rule in group["rules"]]
        elif rel.startswith("grafana/dashboards/"):
            board = json.loads(content)
            for panel in board["panels"]:
                out += [(f"{rel}: {panel['title']}", t["expr"], t.get("legendFormat", "")) for t in panel["targets"]]
            out += [(f"{rel}: ${v['name']}", v["definition"], "") for v in board["templating"]["list"]]
    return out


def test_every_watched_metric_and_label_is_emitted(emitted):
    assert {"kaslite_run_info", "kaslite_inference_requests_total", "kaslite_model_info"} <= set(emitted)
    problems = []
    for where, expr, legend in queries():
        names = set(NAME.findall(expr))
        problems += [f"{where}: {name} is not emitted" for name in sorted(names - set(emitted))]
        known = set().union(TARGET_LABELS, *(emitted.get(name, set()) for name in names))
        for name, matchers in SELECTOR.findall(expr):
            allowed = TARGET_LABELS | emitted.get(name, set())
            problems += [
                f"{where}: {name} has no label {label}" for label in MATCHER.findall(matchers) if label not in allowed
            ]
        for group in GROUPING.findall(expr):
            labels = [label.strip() for label in group.split(",") if label.strip()]
            problems += [
                f"{where}: no metric here has label {label}" for label in labels if label not in known | {"le"}
            ]
        problems += [
            f"{where}: legend uses missing label {label}" for label in LEGEND.findall(legend) if label not in known
        ]
        for name, label in LABEL_VALUES.findall(expr):
            if label not in TARGET_LABELS | emitted.get(name, set()):
                problems.append(f"{where}: {name} has no label {label}")
    assert problems == []


def test_up_is_watched_only_for_jobs_prometheus_scrapes():
    jobs = set()
    for config in ("prometheus/prometheus.yml",):
        jobs |= {job["job_name"] for job in yaml.safe_load(asset_files()[config])["scrape_configs"]}
    watched = {job for _, expr, _ in queries() for job in re.findall(r'\bup\{job="([^"]+)"\}', expr)}
    assert watched == {"kaslite-inference"} and watched <= jobs


def test_every_emitted_metric_is_documented(emitted):
    samples = [name for name in emitted if name.startswith("kaslite_") and not name.endswith("_created")]
    families = {re.sub(r"_(bucket|count|sum)$", "", name) for name in samples}
    readme = README.read_text()
    assert sorted(name for name in families if f"`{name}`" not in readme) == []
