"""The shipped rules, dashboards and configs: exported, checked by promtool and amtool, and the deploy files."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kaslite_monitor.export import asset_files

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMTOOL_TESTS = Path(__file__).with_name("promtool")
RULES = ("prometheus/rules/kaslite-training.yml", "prometheus/rules/kaslite-inference.yml")
DASHBOARDS = ("grafana/dashboards/kaslite-training.json", "grafana/dashboards/kaslite-inference.json")
DATASOURCE_UID = "kaslite-prometheus"
SEVERITIES = {
    "KasliteValidationAccuracyCritical": "critical",
    "KasliteValidationAccuracyLowInAdaptation": "warning",
    "KasliteTrainingLossExploding": "critical",
    "KasliteSeedDriftHigh": "warning",
    "KasliteSeedDriftCritical": "critical",
    "KasliteNoGerminationInAdaptation": "warning",
    "KasliteExperimentStalled": "critical",
    "KaslitePlateauNearPatience": "warning",
    "KasliteSeedHealthCollapsed": "warning",
    "KasliteInferenceServerDown": "critical",
    "KasliteInferenceErrorRateHigh": "critical",
    "KasliteNoModelLoaded": "critical",
    "KasliteInferenceLatencyHigh": "warning",
    "KasliteModelPredictionSlow": "warning",
}


def kaslite(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kaslite", *args], capture_output=True, text=True, env=env, timeout=120
    )


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(command), capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """What ``kaslite monitor export`` writes (in-process: the subprocess path is tested once below)."""
    from kaslite_monitor.export import export

    directory = tmp_path_factory.mktemp("exported")
    export(directory)
    return directory


def alerts(directory: Path) -> dict[str, dict]:
    out = {}
    for rel in RULES:
        for group in yaml.safe_load((directory / rel).read_text())["groups"]:
            for rule in group["rules"]:
                out[rule["alert"]] = rule
    return out


def dashboard_exprs(directory: Path) -> list[str]:
    exprs = []
    for rel in DASHBOARDS:
        board = json.loads((directory / rel).read_text())
        exprs += [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]
    return exprs


def test_export_writes_the_shipped_files_and_keeps_local_changes(env, tmp_path):
    out = tmp_path / "monitoring"
    proc = kaslite(env, "monitor", "export", str(out))
    assert proc.returncode == 0, proc.stderr
    shipped = asset_files()
    assert sorted(proc.stdout.splitlines()) == sorted(str(out / rel) for rel in shipped)
    assert {*RULES, *DASHBOARDS, "alertmanager/alertmanager.yml", "prometheus/prometheus.yml"} <= set(shipped)
    for rel, content in shipped.items():
        assert (out / rel).read_bytes() == content

    tuned = out / RULES[0]
    tuned.write_text(tuned.read_text().replace("< 0.70", "< 0.60"))
    again = kaslite(env, "monitor", "export", str(out))
    assert again.returncode == 1
    assert again.stderr.strip() == (
        f"Error: 1 file(s) in {str(out)!r} differ from kaslite-monitor's ({RULES[0]}); use --force to overwrite them"
    )
    assert "< 0.60" in tuned.read_text()  # nothing was written
    forced = kaslite(env, "monitor", "export", str(out), "--force")
    assert forced.returncode == 0, forced.stderr
    assert tuned.read_bytes() == shipped[RULES[0]]


def test_promtool_checks_the_rules_and_the_prometheus_configs(promtool, exported):
    rules = run(promtool, "check", "rules", *(str(exported / rel) for rel in RULES))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS: 9 rules found" in rules.stdout and "SUCCESS: 5 rules found" in rules.stdout
    configs = [exported / "prometheus/prometheus.yml", DEPLOY / "prometheus/prometheus.yml"]
    configs.append(DEPLOY / "prometheus/prometheus.deploy.yml")
    checked = run(promtool, "check", "config", *map(str, configs))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_promtool_unit_tests_fire_and_stay_silent(promtool, exported):
    tests = exported / "prometheus" / "tests"
    tests.mkdir()
    for source in sorted(PROMTOOL_TESTS.glob("*.test.yml")):
        shutil.copy(source, tests / source.name)
    proc = run(promtool, "test", "rules", *sorted(str(p) for p in tests.glob("*.test.yml")))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == 2


def test_every_alert_has_a_severity_a_summary_a_description_and_unit_tests(exported):
    rules = alerts(exported)
    assert {name: rule["labels"]["severity"] for name, rule in rules.items()} == SEVERITIES
    for name, rule in rules.items():
        assert rule["annotations"]["summary"].strip() and rule["annotations"]["description"].strip(), name
        assert rule["labels"]["component"] in ("training", "inference")
    fires, silent = set(), set()
    for path in PROMTOOL_TESTS.glob("*.test.yml"):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for check in test["alert_rule_test"]:
                (fires if check["exp_alerts"] else silent).add(check["alertname"])
    assert fires == silent == set(rules), "every alert is tested firing and silent"


def test_dashboard_queries_are_valid_promql(promtool, exported, tmp_path):
    # promtool parses PromQL in rules: check each panel query as a recording rule.
    substitutions = {"$__rate_interval": "1m", "$instance": ".*", "$job": ".*"}
    rules = []
    for index, expr in enumerate(dashboard_exprs(exported)):
        for variable, concrete in substitutions.items():
            expr = expr.replace(variable, concrete)
        assert "$" not in expr, expr
        rules.append({"record": f"dashboard:query_{index}", "expr": expr})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    proc = run(promtool, "check", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(rules)} rules found" in proc.stdout


def test_dashboards_show_what_the_issue_asks_for(exported):
    provisioned = yaml.safe_load((exported / "grafana/provisioning/datasources/kaslite.yml").read_text())
    (datasource,) = provisioned["datasources"]
    assert (datasource["uid"], datasource["type"]) == (DATASOURCE_UID, "prometheus")
    provider = yaml.safe_load((exported / "grafana/provisioning/dashboards/kaslite.yml").read_text())["providers"][0]
    assert provider["type"] == "file"
    boards = {rel: json.loads((exported / rel).read_text()) for rel in DASHBOARDS}
    for board in boards.values():
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == DATASOURCE_UID
            assert all(t["datasource"]["uid"] == DATASOURCE_UID for t in panel["targets"])
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids))
    training, inference = boards.values()
    assert (training["uid"], inference["uid"]) == ("kaslite-training", "kaslite-inference")
    titles = {panel["title"]: panel for panel in training["panels"]}
    assert {
        "Validation accuracy by phase", "Loss by phase", "Seeds", "Seed alpha over time", "Seed drift",
        "Germinations and plateau counter", "Best accuracy", "Duration", "Active seeds",
    } <= set(titles)  # fmt: skip
    columns = titles["Seeds"]["transformations"][1]["options"]["renameByName"].values()
    assert {"state", "alpha", "drift"} <= set(columns)
    drift = titles["Seed drift"]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [step["value"] for step in drift[1:]] == [0.5, 0.8]
    titles = {panel["title"] for panel in inference["panels"]}
    assert {
        "Requests / s", "Request rate by endpoint", "Error rate (API, 5xx)", "Request latency (API)",
        "Prediction time (model)", "Model version", "Model reloads and load time",
    } <= titles  # fmt: skip


def test_alertmanager_routes_by_severity_and_critical_inhibits_warning(amtool, exported):
    path = exported / "alertmanager/alertmanager.yml"
    checked = run(amtool, "check-config", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for severity in ("critical", "warning"):
        routed = run(amtool, "config", "routes", "test", f"--config.file={path}", f"severity={severity}")
        assert routed.stdout.strip() == f"slack-{severity}", routed.stdout + routed.stderr
    config = yaml.safe_load(path.read_text())
    (inhibit,) = config["inhibit_rules"]
    assert (inhibit["source_matchers"], inhibit["target_matchers"]) == (['severity="critical"'], ['severity="warning"'])
    for receiver in config["receivers"]:
        (slack,) = receiver["slack_configs"]
        assert "api_url" not in slack  # a secret: read from a file written from the environment
        assert slack["api_url_file"] == "/etc/alertmanager/secrets/slack-webhook-url"


# -- deploy/ --------------------------------------------------------------------------


def compose(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def host_port_pairs(service: dict) -> list[tuple[int, int]]:
    pairs = []
    for mapping in service.get("ports", []):
        host, container = str(mapping).split(":")[-2:]
        pairs.append((int(host), int(container)))
    return pairs


def listen_port(service: dict) -> int:
    """The port the service's process listens on, read from its command line."""
    command = service.get("command", "")
    text = command if isinstance(command, str) else " ".join(command)
    for pattern in (r"--metrics-port[ =](\d+)", r"--port[ =](\d+)", r"--web\.listen-address[ =]\S*:(\d+)"):
        if found := re.search(pattern, text):
            return int(found.group(1))
    entry = service.get("entrypoint", [])
    if found := re.search(r"--web\.listen-address[ =]\S*:(\d+)", " ".join(entry)):
        return int(found.group(1))
    image_defaults = {"grafana/grafana": 3000}
    return image_defaults[service["image"].split(":")[0]]


@pytest.mark.parametrize(
    ("name", "services", "scraped"),
    [
        ("docker-compose.yml", {"trainer", "prometheus", "grafana", "alertmanager"}, {"kaslite-training": "trainer"}),
        (
            "docker-compose.deploy.yml",
            {"mlflow", "inference", "prometheus", "grafana", "alertmanager"},
            {"kaslite-inference": "inference"},
        ),
    ],
)
def test_compose_files_name_real_files_services_and_ports(name, services, scraped):
    spec = compose(name)
    assert set(spec["services"]) == services
    published = {}
    for service_name, service in spec["services"].items():
        if "build" in service:
            context = (DEPLOY / service["build"]["context"]).resolve()
            dockerfile = context / service["build"]["dockerfile"]
            assert dockerfile.is_file(), dockerfile
            for line in dockerfile.read_text().splitlines():
                if line.startswith("COPY "):
                    source = line.split()[1]
                    assert (context / source).exists(), f"{dockerfile}: COPY {source} names nothing"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {service_name} mounts missing {source}"
            else:
                assert source in spec["volumes"], f"{name}: {service_name} uses undeclared volume {source}"
        for host, container in host_port_pairs(service):
            assert host == container == listen_port(service), f"{name}: {service_name} publishes {host}:{container}"
            published[service_name] = container

    expected_ports = {"prometheus": 9090, "grafana": 3000, "alertmanager": 9093}
    expected_ports |= {"trainer": 8000} if "trainer" in services else {"mlflow": 5000, "inference": 8080}
    assert published == expected_ports

    # Prometheus scrapes real services on the ports they listen on, and alerts a real Alertmanager.
    prometheus = spec["services"]["prometheus"]
    config_mount = next(v for v in prometheus["volumes"] if v.split(":")[1] == "/etc/prometheus/prometheus.yml")
    config = yaml.safe_load((DEPLOY / config_mount.split(":")[0]).read_text())
    jobs = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    assert set(jobs) == set(scraped)
    for job, service_name in scraped.items():
        assert jobs[job] == [f"{service_name}:{listen_port(spec['services'][service_name])}"]
    (alertmanager,) = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanager == f"alertmanager:{listen_port(spec['services']['alertmanager'])}"
    rules_mount = next(v for v in prometheus["volumes"] if v.split(":")[1] == "/etc/prometheus/rules")
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    assert sorted(p.name for p in (DEPLOY / rules_mount.split(":")[0]).glob("*.yml")) == sorted(
        Path(rel).name for rel in RULES
    )

    # Grafana: password from the environment (default kaslite), the datasource URL names Prometheus.
    grafana = spec["services"]["grafana"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "${GRAFANA_ADMIN_PASSWORD:-kaslite}"
    provisioning = next(v for v in grafana["volumes"] if v.split(":")[1] == "/etc/grafana/provisioning")
    datasources = DEPLOY / provisioning.split(":")[0] / "datasources" / "kaslite.yml"
    assert yaml.safe_load(datasources.read_text())["datasources"][0]["url"] == "http://prometheus:9090"
    dashboards = next(v for v in grafana["volumes"] if v.split(":")[0].endswith("grafana/dashboards"))
    provider = yaml.safe_load((DEPLOY / provisioning.split(":")[0] / "dashboards" / "kaslite.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == dashboards.split(":")[1]

    # Alertmanager: the webhook URL comes from the environment into the file its config reads.
    am = spec["services"]["alertmanager"]
    assert am["environment"]["SLACK_WEBHOOK_URL"] == "${SLACK_WEBHOOK_URL:-}"
    assert '"$$SLACK_WEBHOOK_URL" > /etc/alertmanager/secrets/slack-webhook-url' in am["entrypoint"][-1]
