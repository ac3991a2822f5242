"""The whole registry lifecycle as a user lives it: ``kaslite run`` and ``kaslite registry`` in subprocesses."""

import json
import re
import socket

from click.testing import CliRunner
from mlflow import MlflowClient

from kaslite.cli.main import cli

from .helpers import TINY, conv_net, copy_store, kaslite_cli

TRACKERS = ["--tracker", "json", "--tracker", "mlflow"]
DEFAULT_URI = "sqlite:///mlflow.db"


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_registry_lifecycle(env, tmp_path, store_template, monkeypatch):
    """Two runs, `registry list` and `registry production` in subprocesses, as a user runs them; the rest
    through the same CLI in-process (each subprocess pays ~2 s of CPU to import mlflow)."""
    copy_store(store_template, tmp_path)  # ./mlflow.db: the default store
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def run(name, seed, *flags):
        proc = kaslite_cli(
            env, "run", *TINY, *TRACKERS, "--seed", str(seed), "--run-name", name, "-q", *flags, cwd=tmp_path
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""
        return json.loads((tmp_path / "results" / name / "metrics.json").read_text())

    def registry(*args, code=0, subprocess=False):
        if subprocess:
            proc = kaslite_cli(env, "registry", *args, cwd=tmp_path)
            returncode, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
        else:
            result = CliRunner().invoke(cli, ["registry", *args])
            returncode, stdout, stderr = result.exit_code, result.stdout, result.stderr
        assert returncode == code, stderr
        if code:
            assert len(stderr.splitlines()) == 1, stderr  # one line, no traceback
            return stderr.strip()
        return stdout.splitlines()

    assert registry("production", code=2) == (
        f"Error: no registered model 'kaslite' in {DEFAULT_URI!r}; registered models: (none)"
    )

    a = run("a", 0, "--register-threshold", "0")  # version 1; staged only if val_acc >= 0.90
    b = run("b", 2, "--register-threshold", "0", "--staging-threshold", "0")  # version 2, staged
    acc = {"1": a["val_acc"], "2": b["val_acc"]}

    header, *rows = registry("list", subprocess=True)
    assert header.split() == ["version", "aliases", "val_acc", "created"]
    assert [row.split()[:3] for row in rows] == [["1", "-", f"{acc['1']:.4f}"], ["2", "staging", f"{acc['2']:.4f}"]]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", " ".join(row.split()[3:])) for row in rows)

    best = max(acc, key=lambda v: (acc[v], int(v)))
    best_aliases = " [staging]" if best == "2" else ""
    assert registry("best") == [f"version {best}{best_aliases}: val_acc {acc[best]:.4f} (models:/kaslite/{best})"]
    staged = {"1", "2"} if a["val_acc"] >= 0.90 else {"2"}
    best_staged = max(staged, key=lambda v: (acc[v], int(v)))
    assert registry("best", "--alias", "staging")[0].startswith(f"version {best_staged}")

    assert registry("production", code=2) == (
        "Error: no version of model 'kaslite' holds the alias 'production' yet; "
        "promote one with `kaslite registry promote production`"
    )
    assert registry("promote", "Production", "--version", "3", code=2) == (
        "Error: model 'kaslite' has no version 3; versions: 1, 2"
    )
    assert registry("promote", "Production", "--version", "1") == [
        f"production: version 1 of 'kaslite' (val_acc {acc['1']:.4f}); before: no version"
    ]
    assert registry("promote", "production", "--version", "2") == [
        f"production: version 2 of 'kaslite' (val_acc {acc['2']:.4f}); before: version 1"
    ]
    assert registry("promote", "production", "--version", "2") == [
        "production: version 2 of 'kaslite' holds it already"
    ]
    assert registry("rollback", "production") == ["production: version 1 of 'kaslite' (rolled back from version 2)"]
    assert registry("rollback", "PRODUCTION", code=2) == (
        "Error: version 1 is the first recorded holder of the alias 'production' of model 'kaslite'; "
        "there is nothing to roll back to"
    )

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("kaslite").experiment_id])
    run_a = next(r.info.run_id for r in runs if r.info.run_name == "a")
    assert registry("register", run_a, "--val-acc", "0.55") == [
        f"registered run {run_a} as version 3 of 'kaslite' (val_acc 0.5500)"
    ]
    assert registry("register", run_a) == [
        f"registered run {run_a} as version 4 of 'kaslite' (val_acc {a['val_acc']:.4f})"
    ]
    assert registry("register", "0" * 32, code=2) == f"Error: no MLflow run '{'0' * 32}' in {DEFAULT_URI!r}"
    version_3 = client.get_model_version("kaslite", "3")
    assert (version_3.tags["val_acc"], version_3.tags["run_id"], version_3.tags["problem"]) == ("0.55", run_a, "xor")

    # Without --version: the best version by val_acc (the newest on a tie).
    acc.update({"3": 0.55, "4": a["val_acc"]})
    best = max(acc, key=lambda v: (acc[v], int(v)))
    assert registry("promote", "staging")[0].startswith(f"staging: version {best} of 'kaslite'")

    version_2 = client.get_model_version("kaslite", "2")
    assert version_2.tags["kaslite.production.previous_version"] == "1"
    assert version_2.tags["kaslite.production.assigned_by"] == "promote"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", version_2.tags["kaslite.production.assigned_at"])
    history = client.get_registered_model("kaslite").tags
    production = [json.loads(history[k]) for k in sorted(history) if k.startswith("kaslite.production.history.")]
    assert [(e["action"], e["version"], e["previous"]) for e in production] == [
        ("promote", "1", None),
        ("promote", "2", "1"),
        ("rollback", "1", "2"),
    ]

    # MLFLOW_TRACKING_URI is honoured; an unreachable store is one line, exit 2.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env_uri = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    production_uri = kaslite_cli(env_uri, "registry", "production", cwd=elsewhere)
    assert (production_uri.returncode, production_uri.stdout, production_uri.stderr) == (
        0,
        "models:/kaslite@production\n",
        "",
    )
    dead = f"http://127.0.0.1:{closed_port()}"
    assert registry("list", "--tracking-uri", dead, code=2) == (
        f"Error: cannot reach the MLflow tracking store {dead!r}: [Errno 111] Connection refused"
    )
    assert registry("list", "--tracking-uri", "sqlite:///nowhere/mlflow.db", code=2) == (
        "Error: no MLflow store at 'sqlite:///nowhere/mlflow.db' ('nowhere/mlflow.db' does not exist); "
        "train with `kaslite run` first or pass --tracking-uri / set MLFLOW_TRACKING_URI"
    )


def test_registry_add_registers_a_users_module_from_its_file(tmp_path, monkeypatch):
    """``kaslite registry add`` creates the store, logs the file as a pyfunc model that predicts what the module
    does, and gives the alias; a file that does not say what its model takes registers nothing."""
    import mlflow.pyfunc
    import torch

    from kaslite.models import save_model

    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    net = conv_net()
    x = torch.randn(5, 2, 8)
    kwargs = {"factory": "torch.nn:Linear", "factory_kwargs": {"in_features": 2, "out_features": 2}}
    save_model(torch.nn.Linear(2, 2), tmp_path / "plain.pt", **kwargs)  # no example_input
    # An absolute store: MLflow caches stores by URI, and a relative one would be another test's folder.
    uri = f"sqlite:///{tmp_path / 'registry.db'}"
    store = ["--model-name", "mine", "--tracking-uri", uri]
    invoke = CliRunner().invoke
    refused = invoke(cli, ["registry", "add", "plain.pt", *store])
    assert refused.exit_code == 2 and refused.stderr == (
        "Error: plain.pt does not say what Linear takes: save it with kaslite.save_model(model, path, "
        "example_input=batch), a batch of real inputs\n"
    )
    assert not (tmp_path / "registry.db").exists()  # refused before the store was touched

    factory = "tracking.helpers:conv_net"
    path = save_model(net, tmp_path / "conv.pt", {"val_acc": 0.75}, factory=factory, example_input=x)
    added = invoke(cli, ["registry", "add", str(path), *store, "--alias", "production"])
    assert added.exit_code == 0, added.stderr
    assert added.stdout == f"registered {path} as version 1 of 'mine', alias production: models:/mine/1\n"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version_by_alias("mine", "production")
    assert (str(version.version), version.tags["val_acc"]) == ("1", "0.75")
    with torch.no_grad():
        expected = net(x).argmax(dim=-1).numpy()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert (mlflow.pyfunc.load_model("models:/mine@production").predict(x.numpy()) == expected).all()
