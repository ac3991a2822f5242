"""A plugin written against plugin API 1 (legacy_plugin/, frozen), installed beside today's kaslite and
every package, works as its author saw it work: each of its hooks, its ``digits`` beside kaslite-datasets'
own, its policy growing the deep seed it always grew.

In this process, the plugin loaded from an entry point like any installed distribution.
"""

import json
from pathlib import Path

import pytest

import kaslite
from kaslite.testing import fake_distribution, invoke

LEGACY = Path(__file__).with_name("legacy_plugin") / "legacy_plugin.py"
QUICK = [
    "--warm-up-epochs", "2", "--adaptation-epochs", "8", "--hidden-dim", "8", "--batch-size", "32",
    "--blend-steps", "2", "--progress-thresh", "0", "--dataset-param", "n_samples=240",
]  # fmt: skip


@pytest.fixture
def legacy(tmp_path, monkeypatch):
    site = fake_distribution(
        tmp_path / "site", name="legacy-plugin", entry_points={"legacy": "legacy_plugin"},
        modules={"legacy_plugin": LEGACY.read_text()},
    )  # fmt: skip
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("KASLITE_STRICT_PLUGINS", raising=False)
    kaslite.reset_plugin_manager()
    yield
    kaslite.reset_plugin_manager()


def test_it_loads_and_its_digits_stands_beside_kaslite_datasets(legacy):
    listing = invoke("plugins").stdout
    assert "legacy (legacy-plugin 1.0)\n" in listing and "error" not in listing
    assert (
        "conflict: dataset 'digits' is also registered by 'datasets' (kaslite-datasets "
    ) in listing and "choose with datasets:digits or legacy:digits" in listing
    clash = invoke("run", "--problem", "digits", *QUICK)
    assert clash.exit_code == 1 and "name one: datasets:digits, legacy:digits" in clash.stderr
    assert invoke("legacy-hello").stdout == "hello from the legacy plugin\n"


def test_its_policy_tracker_blueprint_and_data_run_as_before(legacy, tmp_path):
    args = ["--problem", "legacy:digits", "--controller", "deepest-dormant", "--blueprint", "legacy-tanh"]
    args += ["--tracker", "legacy-recorder", "--tracker", "json", "--output-dir", str(tmp_path), "--run-name", "old"]
    result = invoke("run", *args, *QUICK)
    assert result.exit_code == 0, result.stderr
    germinated = json.loads((tmp_path / "old" / "legacy.json").read_text())["germinated"]
    assert germinated[0] == "seed2_1"  # the deepest deep seed, as under plugin API 1 (not the wide branch)
    assert all(seed.startswith("seed") for seed in germinated)
    warnings = [json.loads(line) for line in (tmp_path / "old" / "events.jsonl").read_text().splitlines()]
    told = [event["message"] for event in warnings if event.get("kind") == "policy"]
    assert len(told) == 1 and "it never grows this network's wide, width seeds" in told[0]


def test_its_model_source_and_server_route_serve(legacy, tmp_path):
    from kaslite_serve import ServerSettings
    from kaslite_serve.testing import server_client

    model = kaslite.save_model(kaslite.nn.MorphogeneticNet(2, 8, 1, 1, 2), tmp_path / "m.pt")
    with server_client(ServerSettings(model_uri=f"legacy://{model}")) as client:
        assert client.get("/legacy").json() == {"legacy": True}
        assert client.get("/models").json()["current_version"] == "7"
        assert client.post("/predict", json={"data": [[0.5, -0.5]]}).status_code == 200


def test_it_hears_the_end_of_a_sweep(legacy, tmp_path):
    sweep = tmp_path / "grid.yaml"
    sweep.write_text("lr: [0.01, 0.02]\n")
    result = invoke("sweep", str(sweep), "--problem", "legacy:digits", *QUICK, "-q", "--output-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    (end,) = tmp_path.rglob("legacy-end.json")
    assert json.loads(end.read_text()) == {"status": "finished", "slots": {"completed": 2}}
