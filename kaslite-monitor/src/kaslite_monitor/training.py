"""The ``prometheus`` tracker: a run's metrics on ``http://HOST:PORT/metrics`` while it trains.

Every metric lives in a registry of the tracker's own, so several runs in one
process (tests, sweeps) never collide in prometheus_client's global registry.
Gauges describe the network at the end of the last finished epoch (exactly the
row ``history.csv`` gets); counters count the run's events. Updates and scrapes
take one lock, so a scrape never sees half an epoch.
"""

import errno
import sys
import threading
import time
from typing import Any, TextIO

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server

from kaslite.train.events import EpochRecord, PhaseChange, RunContext, RunSummary, SeedTransition
from kaslite.train.tracker import Tracker
from kaslite_monitor.options import PrometheusOptions

NEXT_PORTS = 20  # ports tried above a taken one before any free port

# kaslite_seed_state values; the numbers are part of the rules and dashboards.
SEED_STATE_VALUES = {"dormant": 0, "training": 1, "blending": 2, "active": 3, "culled": -1}
EPOCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class _LockedRegistry(CollectorRegistry):
    """A registry whose scrapes wait for the tracker's updates to finish."""

    def __init__(self, lock: threading.Lock) -> None:
        super().__init__(auto_describe=True)
        self._update_lock = lock

    def collect(self) -> Any:
        with self._update_lock:
            metrics = list(super().collect())
        yield from metrics


class TrainingMetrics:
    """Every training metric of one run, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry, kasmina: bool) -> None:
        r = registry
        self.epochs = Counter(
            "kaslite_epochs", "Epochs finished, by phase (1 warm-up, 2 adaptation)", ["phase"], registry=r
        )
        self.germinations = Counter("kaslite_germinations", "Seeds germinated (dormant -> training)", registry=r)
        self.phase_transitions = Counter(
            "kaslite_phase_transitions", "Phase changes of the run", ["from_phase", "to_phase"], registry=r
        )
        self.phase = Gauge("kaslite_phase", "Current phase: 1 warm-up, 2 adaptation", registry=r)
        self.validation_loss = Gauge("kaslite_validation_loss", "Validation loss of the last epoch", registry=r)
        self.validation_accuracy = Gauge(
            "kaslite_validation_accuracy_ratio", "Validation accuracy of the last epoch (0-1)", registry=r
        )
        self.training_loss = Gauge("kaslite_training_loss", "Mean training loss of the last epoch", registry=r)
        self.best_accuracy = Gauge("kaslite_best_accuracy_ratio", "Best validation accuracy so far (0-1)", registry=r)
        self.seed_alpha = Gauge(
            "kaslite_seed_alpha_ratio", "Blend weight alpha of each seed (0-1)", ["seed_id"], registry=r
        )
        self.seed_drift = Gauge(
            "kaslite_seed_drift_ratio",
            "Each seed's share of the network's output on the probe batch, in [0, 1)",
            ["seed_id"],
            registry=r,
        )
        self.seed_health = Gauge(
            "kaslite_seed_health_signal",
            "How much the features at each seed's slot vary, var / (var + mean^2) in [0, 1] (low = bottleneck)",
            ["seed_id"],
            registry=r,
        )
        self.seed_progress = Gauge(
            "kaslite_seed_training_progress_ratio",
            "Shadow-training progress of each seed: explained variance, 0-1",
            ["seed_id"],
            registry=r,
        )
        self.seed_state = Gauge(
            "kaslite_seed_state",
            "State of each seed: 0 dormant, 1 training, 2 blending, 3 active, -1 culled",
            ["seed_id"],
            registry=r,
        )
        self.epoch_duration = Histogram(
            "kaslite_epoch_duration_seconds",
            "Wall time of each epoch, by phase",
            ["phase"],
            buckets=EPOCH_BUCKETS,
            registry=r,
        )
        self.experiment_duration = Gauge(
            "kaslite_experiment_duration_seconds", "Wall time since the run (or its resume) started", registry=r
        )
        self.last_epoch = Gauge(
            "kaslite_last_epoch_timestamp_seconds",
            "Unix time the last epoch finished (the run's start until the first one does)",
            registry=r,
        )
        self.run_info = Info("kaslite_run", "The run being trained", registry=r)
        self.plateau: Gauge | None = None
        self.patience: Gauge | None = None
        if kasmina:
            self.plateau = Gauge(
                "kaslite_kasmina_plateau_epochs",
                "Epochs the kasmina controller has seen without the validation loss improving",
                registry=r,
            )
            self.patience = Gauge(
                "kaslite_kasmina_patience_epochs", "Plateau epochs after which kasmina germinates a seed", registry=r
            )


class PrometheusTracker(Tracker):
    """Serves a run's metrics over HTTP and updates them from the trainer's events."""

    def __init__(self, run: RunContext, options: PrometheusOptions, err: TextIO | None = None) -> None:
        self.options = options
        self.run_name = run.run_name
        self.quiet = run.quiet
        self._err = err
        self._lock = threading.Lock()
        self.registry = _LockedRegistry(self._lock)
        config = run.config
        self.metrics = m = TrainingMetrics(self.registry, kasmina=config.controller.name == "kasmina")
        m.run_info.info({"run": run.run_name, "problem": config.data.problem})
        if m.patience is not None:
            m.patience.set(config.controller.patience)
        # Every series the run will have exists from the start, at zero.
        phases = [p for p, epochs in ((1, config.train.warm_up_epochs), (2, config.train.adaptation_epochs)) if epochs]
        for phase in phases:
            m.epochs.labels(str(phase))
            m.epoch_duration.labels(str(phase))
        if len(phases) == 2:
            m.phase_transitions.labels("1", "2")
        m.phase.set(phases[0])
        for seed_id in run.seed_ids:
            for gauge in (m.seed_state, m.seed_alpha, m.seed_drift, m.seed_health, m.seed_progress):
                gauge.labels(seed_id)
        self._started: float | None = None
        self._ended: float | None = None
        self._last_epoch_end = 0.0
        m.experiment_duration.set_function(self._experiment_seconds)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    # -- the HTTP endpoint -------------------------------------------------------

    def _serve(self) -> None:
        host, wanted = self.options.metrics_host, self.options.metrics_port
        # A taken port: the next ones up (what a scrape config listing 8000, 8001, ... expects from a
        # second run or parallel sweep trials), then any free one.
        candidates = [wanted] if wanted == 0 else [*range(wanted, min(wanted + NEXT_PORTS, 65535) + 1), 0]
        for port in candidates:
            try:
                self._server, self._thread = start_http_server(port, host, self.registry)
                break
            except OSError as exc:
                if port == 0 or exc.errno != errno.EADDRINUSE:
                    raise
        self.port = int(self._server.server_port)
        url = f"http://{f'[{host}]' if ':' in host else host}:{self.port}/metrics"
        if self.port != wanted and wanted != 0:
            self._say(f"kaslite: port {wanted} is taken; Prometheus metrics of {self.run_name} on {url} instead")
        elif wanted == 0 or not self.quiet:
            self._say(f"kaslite: Prometheus metrics of {self.run_name} on {url}")

    def _say(self, line: str) -> None:
        stream = self._err or sys.stderr
        print(line, file=stream, flush=True)

    def close(self) -> None:
        if self._server is not None:
            # prometheus_client's server notices the shutdown within its half-second poll.
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = self._thread = None

    # -- events ------------------------------------------------------------------

    def _experiment_seconds(self) -> float:
        if self._started is None:
            return 0.0
        return (self._ended if self._ended is not None else time.monotonic()) - self._started

    def on_run_start(self, run: RunContext) -> None:
        m = self.metrics
        with self._lock:
            self._started = time.monotonic()
            self._last_epoch_end = time.perf_counter()
            m.last_epoch.set(time.time())
            if run.history:  # a resumed run: count what happened before, show where it stopped
                self._replay(run)
        self._serve()

    def _replay(self, run: RunContext) -> None:
        m = self.metrics
        for row in run.history:
            m.epochs.labels(str(row["phase"])).inc()
        last = run.history[-1]
        m.phase.set(last["phase"])
        m.training_loss.set(last["train_loss"])
        m.validation_loss.set(last["val_loss"])
        m.validation_accuracy.set(last["val_acc"])
        m.best_accuracy.set(last["best_acc"])
        for seed_id in run.seed_ids:
            if f"{seed_id}_state" in last:
                m.seed_state.labels(seed_id).set(SEED_STATE_VALUES[last[f"{seed_id}_state"]])
                m.seed_alpha.labels(seed_id).set(last[f"{seed_id}_alpha"])
        for event in run.events:
            if event.get("event") == "phase_change":
                m.phase_transitions.labels(str(event["previous"]), str(event["phase"])).inc()
            elif event.get("event") == "seed_transition" and _is_germination(event["from_state"], event["to_state"]):
                m.germinations.inc()

    def on_epoch_end(self, record: EpochRecord) -> None:
        m = self.metrics
        phase = str(record.phase)
        with self._lock:
            now = time.perf_counter()
            m.epoch_duration.labels(phase).observe(now - self._last_epoch_end)
            self._last_epoch_end = now
            m.phase.set(record.phase)
            m.training_loss.set(record.train_loss)
            m.validation_loss.set(record.val_loss)
            m.validation_accuracy.set(record.val_acc)
            m.best_accuracy.set(record.best_acc)
            for seed in record.seeds:
                m.seed_state.labels(seed.seed_id).set(SEED_STATE_VALUES[seed.state])
                m.seed_alpha.labels(seed.seed_id).set(seed.alpha)
                m.seed_drift.labels(seed.seed_id).set(seed.drift)
                m.seed_health.labels(seed.seed_id).set(seed.health)
                m.seed_progress.labels(seed.seed_id).set(seed.progress)
            wait = record.controller.get("wait")
            if m.plateau is not None and isinstance(wait, (int, float)):
                m.plateau.set(wait)
            m.epochs.labels(phase).inc()
            m.last_epoch.set(time.time())

    def on_phase_change(self, event: PhaseChange) -> None:
        with self._lock:
            self.metrics.phase_transitions.labels(str(event.previous), str(event.phase)).inc()
            self.metrics.phase.set(event.phase)

    def on_seed_transition(self, event: SeedTransition) -> None:
        if _is_germination(event.from_state, event.to_state):
            with self._lock:
                self.metrics.germinations.inc()

    def on_run_end(self, summary: RunSummary) -> None:
        with self._lock:
            self._ended = time.monotonic()


def _is_germination(from_state: str, to_state: str) -> bool:
    return from_state == "dormant" and to_state == "training"
