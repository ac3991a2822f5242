"""The ``prometheus`` tracker: every epoch exposed exactly, live over HTTP, ports, resume, failures."""

import io
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from kaslite.config import build_config
from kaslite.plugins import get_tracker
from kaslite.train import EpochRecord, Tracker, Trainer
from kaslite.train.events import PhaseChange, SeedTransition, event_dict
from kaslite.train.runner import tracker_names
from kaslite_monitor.options import PrometheusOptions
from kaslite_monitor.training import NEXT_PORTS, SEED_STATE_VALUES, PrometheusTracker

from .exposition import parse, scrape, series, value
from .runs import KASMINA, context


def test_is_on_by_default_and_its_flags_are_run_flags(env):
    assert "prometheus" in tracker_names()
    help_text = subprocess.run(
        [sys.executable, "-m", "kaslite", "run", "--help"], capture_output=True, text=True, env=env, timeout=120
    ).stdout
    assert "--metrics-port" in help_text and "--metrics-host" in help_text


def test_every_epoch_is_exposed_exactly(kasmina_run):
    tracker, probe = kasmina_run
    epochs = {"1": 0, "2": 0}
    germinations = transitions = 0
    durations: list[float] = []
    states_seen = set()
    for event, samples, before, after in probe.seen:
        if isinstance(event, PhaseChange):
            transitions += 1
            assert value(samples, "kaslite_phase_transitions_total", from_phase="1", to_phase="2") == transitions
            assert value(samples, "kaslite_phase") == 2
        if isinstance(event, SeedTransition) and (event.from_state, event.to_state) == ("dormant", "training"):
            germinations += 1
        assert value(samples, "kaslite_germinations_total") == germinations
        if not isinstance(event, EpochRecord):
            continue
        record = event
        epochs[str(record.phase)] += 1
        for phase, count in epochs.items():
            assert value(samples, "kaslite_epochs_total", phase=phase) == count
            assert value(samples, "kaslite_epoch_duration_seconds_count", phase=phase) == count
        assert value(samples, "kaslite_phase") == record.phase
        assert value(samples, "kaslite_training_loss") == record.train_loss
        assert value(samples, "kaslite_validation_loss") == record.val_loss
        assert value(samples, "kaslite_validation_accuracy_ratio") == record.val_acc
        assert value(samples, "kaslite_best_accuracy_ratio") == record.best_acc
        assert value(samples, "kaslite_kasmina_plateau_epochs") == record.controller["wait"]
        assert value(samples, "kaslite_kasmina_patience_epochs") == 2
        for seed in record.seeds:
            assert value(samples, "kaslite_seed_state", seed_id=seed.seed_id) == SEED_STATE_VALUES[seed.state]
            assert value(samples, "kaslite_seed_alpha_ratio", seed_id=seed.seed_id) == seed.alpha
            assert value(samples, "kaslite_seed_drift_ratio", seed_id=seed.seed_id) == seed.drift
            assert value(samples, "kaslite_seed_health_signal", seed_id=seed.seed_id) == seed.health
            assert value(samples, "kaslite_seed_training_progress_ratio", seed_id=seed.seed_id) == seed.progress
            states_seen.add(seed.state)
        assert before - 1 <= value(samples, "kaslite_last_epoch_timestamp_seconds") <= after
        durations.append(value(samples, "kaslite_experiment_duration_seconds"))
        assert value(samples, "kaslite_run_info", run="kasmina-xor", problem="xor") == 1
    # The counter matched every germination as it happened (above); at least one seed grew.
    assert epochs == {"1": 3, "2": 12} and transitions == 1 and germinations >= 1
    assert states_seen == {"dormant", "training", "blending", "active"}
    assert durations == sorted(durations) and durations[0] > 0
    # After the run the endpoint is gone: the port is free for the next run.
    with pytest.raises(urllib.error.URLError):
        scrape(f"http://127.0.0.1:{tracker.port}/metrics", timeout=2)


def test_the_last_scrape_shows_the_end_of_the_run(kasmina_run):
    _, probe = kasmina_run
    samples = parse(probe.last_text)
    history = [r for r in (e for e, *_ in probe.seen) if isinstance(r, EpochRecord)]
    last = history[-1]
    assert value(samples, "kaslite_validation_accuracy_ratio") == last.val_acc
    assert value(samples, "kaslite_best_accuracy_ratio") == max(r.val_acc for r in history)
    # The seed that grew ramps alpha 0 -> 0.5 -> 1 (blend_steps = 2 epochs of 10 steps) and stays active.
    grown = next(e.seed_id for e, *_ in probe.seen if isinstance(e, SeedTransition))
    ramp = [
        value(s, "kaslite_seed_alpha_ratio", seed_id=grown) for e, s, *_ in probe.seen if isinstance(e, EpochRecord)
    ]
    assert ramp == sorted(ramp) and set(ramp) == {0.0, 0.5, 1.0}
    assert value(samples, "kaslite_seed_state", seed_id=grown) == SEED_STATE_VALUES["active"]


def test_a_taken_port_falls_back_to_the_next_free_one_and_says_so(tiny_data, tmp_path):
    config = build_config(KASMINA)
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    taken = holder.getsockname()[1]
    err = io.StringIO()
    first = PrometheusTracker(context(config, tmp_path, "first", port=taken), PrometheusOptions(taken), err=err)
    try:
        first.on_run_start(context(config, tmp_path, "first"))
        assert taken < first.port <= taken + NEXT_PORTS  # the next free one up
        url = f"http://127.0.0.1:{first.port}/metrics"
        assert err.getvalue() == f"kaslite: port {taken} is taken; Prometheus metrics of first on {url} instead\n"
        # A second run in the same process asking for the first one's port: a registry and a port of its own.
        second = PrometheusTracker(
            context(config, tmp_path, "second"), PrometheusOptions(first.port), err=(err2 := io.StringIO())
        )
        second.on_run_start(context(config, tmp_path, "second"))
        try:
            assert first.port < second.port <= first.port + NEXT_PORTS
            assert "port" in err2.getvalue() and "second" in err2.getvalue()
            mine = parse(scrape(f"http://127.0.0.1:{first.port}/metrics"))
            theirs = parse(scrape(f"http://127.0.0.1:{second.port}/metrics"))
            assert value(mine, "kaslite_run_info", run="first", problem="xor") == 1
            assert value(theirs, "kaslite_run_info", run="second", problem="xor") == 1
            assert len(series(mine, "kaslite_run_info")) == len(series(theirs, "kaslite_run_info")) == 1
        finally:
            second.close()
    finally:
        first.close()
        holder.close()


@pytest.mark.parametrize(
    ("port", "quiet", "said"),
    [(0, True, True), (0, False, True), ("free", True, False), ("free", False, True)],
)
def test_what_it_prints_on_start(tiny_data, tmp_path, port, quiet, said):
    config = build_config(KASMINA)
    if port == "free":
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    err = io.StringIO()
    tracker = PrometheusTracker(context(config, tmp_path, "r", quiet=quiet), PrometheusOptions(port), err=err)
    tracker.on_run_start(context(config, tmp_path, "r"))
    try:
        expected = f"kaslite: Prometheus metrics of r on http://127.0.0.1:{tracker.port}/metrics\n"
        assert err.getvalue() == (expected if said else "")
        if port:
            assert tracker.port == port
    finally:
        tracker.close()


def test_a_resumed_run_counts_from_where_it_stopped(kasmina_run, tmp_path):
    _, probe = kasmina_run
    records = [e for e, *_ in probe.seen if isinstance(e, EpochRecord)]
    done = records[:8]  # stopped after epoch 8: phase 2, one germination, the seed blending
    events = [event_dict(e) for e, *_ in probe.seen if isinstance(e, (PhaseChange, SeedTransition)) and e.epoch <= 8]
    config = build_config(KASMINA)
    tracker = PrometheusTracker(context(config, tmp_path, "resumed"), PrometheusOptions(0), err=io.StringIO())
    resumed = context(
        config, tmp_path, "resumed", start_epoch=8, history=tuple(r.row() for r in done), events=tuple(events)
    )
    tracker.on_run_start(resumed)
    try:
        samples = parse(scrape(f"http://127.0.0.1:{tracker.port}/metrics"))
    finally:
        tracker.close()
    assert value(samples, "kaslite_epochs_total", phase="1") == 3
    assert value(samples, "kaslite_epochs_total", phase="2") == 5
    assert value(samples, "kaslite_germinations_total") == 1
    assert value(samples, "kaslite_phase_transitions_total", from_phase="1", to_phase="2") == 1
    assert value(samples, "kaslite_phase") == 2
    assert value(samples, "kaslite_validation_accuracy_ratio") == done[-1].val_acc
    for seed in done[-1].seeds:
        assert value(samples, "kaslite_seed_state", seed_id=seed.seed_id) == SEED_STATE_VALUES[seed.state]
        assert value(samples, "kaslite_seed_alpha_ratio", seed_id=seed.seed_id) == seed.alpha


def test_a_tracker_that_cannot_serve_is_detached_and_the_run_goes_on(tiny_data, tmp_path):
    # 192.0.2.1 (TEST-NET-1) is no address of this machine: binding it fails at once.
    config = build_config(KASMINA, {"train": {"adaptation_epochs": 1}})
    tracker = get_tracker("prometheus").factory(context(config, tmp_path, host="192.0.2.1"))
    warnings: list[str] = []

    class Warnings(Tracker):
        def on_warning(self, event):
            warnings.append(event.message)

    summary = Trainer(config, tmp_path, {"prometheus": tracker, "warnings": Warnings()}, "r").run()
    assert summary.metrics["epochs"] == 4
    assert len(warnings) == 1
    detached = "tracker 'prometheus' (plugin kaslite-monitor) failed in on_run_start and was detached"
    assert warnings[0].startswith(f"{detached}; the run goes on (")


def test_a_live_run_moves_its_metrics(env, tmp_path):
    """``kaslite run`` in a subprocess, scraped over HTTP while it trains."""
    args = [
        "--problem", "xor", "--n-samples", "1200", "--hidden-dim", "8", "--blueprint-hidden", "8",
        "--warm-up-epochs", "2", "--adaptation-epochs", "8", "--controller", "periodic", "--period", "1",
        "--blend-steps", "150", "--progress-thresh", "0", "--batch-size", "16", "--buffer-size", "64",
        "--tracker", "console", "--tracker", "json", "--tracker", "prometheus", "--metrics-port", "0",
        "--output-dir", str(tmp_path), "--run-name", "live", "-q",
    ]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "kaslite", "run", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None and proc.stdout is not None
    said = "kaslite: Prometheus metrics of live on "
    lines = [proc.stderr.readline()]
    while lines[-1] and not lines[-1].startswith(said):
        lines.append(proc.stderr.readline())
    assert lines[-1].startswith(f"{said}http://127.0.0.1:"), "".join(lines) + proc.stderr.read()
    url = lines[-1].strip().removeprefix(said)
    assert url.endswith("/metrics")
    snapshots = []
    while proc.poll() is None:
        try:
            snapshots.append(parse(scrape(url, timeout=5)))
        except (urllib.error.URLError, ConnectionError):
            break  # the run ended between poll() and the scrape
        time.sleep(0.01)  # leave the CPU to the run
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    (summary,) = stdout.splitlines()
    assert summary.startswith("live: val_acc ")

    history = (tmp_path / "live" / "history.csv").read_text().splitlines()
    header = history[0].split(",")
    rows = [dict(zip(header, row.split(","), strict=True)) for row in history[1:]]
    assert len(rows) == 10
    seen_epochs = []
    for samples in snapshots:
        done = int(sum(series(samples, "kaslite_epochs_total").values()))
        if done == 0:
            continue
        seen_epochs.append(done)
        row = rows[done - 1]  # what the run wrote for the epoch the scrape saw
        assert value(samples, "kaslite_validation_accuracy_ratio") == float(row["val_acc"])
        for seed_id in ("seed1_1", "seed2_1"):
            assert value(samples, "kaslite_seed_alpha_ratio", seed_id=seed_id) == float(row[f"{seed_id}_alpha"])
            state = SEED_STATE_VALUES[row[f"{seed_id}_state"]]
            assert value(samples, "kaslite_seed_state", seed_id=seed_id) == state
    assert seen_epochs == sorted(seen_epochs), "epochs count up"
    assert len(set(seen_epochs)) >= 5, f"too few epochs seen: {sorted(set(seen_epochs))}"
    alphas = {value(s, "kaslite_seed_alpha_ratio", seed_id="seed1_1") for s in snapshots}
    states = {value(s, "kaslite_seed_state", seed_id="seed1_1") for s in snapshots}
    assert any(0 < a < 1 for a in alphas), f"alpha never seen ramping: {sorted(alphas)}"
    assert {0.0, 3.0} <= states and len(states) >= 3, f"states seen: {sorted(states)}"
    assert json.loads((tmp_path / "live" / "metrics.json").read_text())["epochs"] == 10


def test_bad_tracker_flags_fail_before_any_work(env, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "kaslite", "run", "--problem", "xor", "--metrics-port", "70000",
         "--output-dir", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "Error: invalid prometheus tracker.metrics_port = 70000: "
        "must be a port number in 0..65535 (0 picks a free port)"
    )
    assert not (tmp_path / "out").exists()
