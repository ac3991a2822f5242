"""Training runs the tests share: a kasmina run scraped after every event, and run contexts."""

import time
from pathlib import Path

import kaslite
from kaslite.config import build_config
from kaslite.plugins import get_tracker
from kaslite.testing import tiny_datasets
from kaslite.train import RunContext, Tracker, Trainer
from kaslite_monitor.options import PrometheusOptions
from kaslite_monitor.training import PrometheusTracker

from .exposition import parse, scrape

# A kasmina run that goes through every seed state within 15 tiny epochs: loss
# never improves by delta=1, so the plateau counter climbs to patience=2.
KASMINA = {
    "data": {"problem": "xor", "params": {"n_samples": 200}},
    # The mlp blueprint shadow-trains for several epochs, and no wide or width seed: the scenario above.
    "model": {
        "hidden_dim": 8,
        "num_layers": 2,
        "seeds_per_layer": 1,
        "blueprint": "mlp",
        "wide_seeds": 0,
        "width_seeds": 0,
    },
    "seeds": {"blend_steps": 20, "progress_thresh": 0.3, "shadow_lr": 0.01, "buffer_size": 64},
    "controller": {"name": "kasmina", "patience": 2, "delta": 1.0, "acc_threshold": 1.0},
    "train": {"warm_up_epochs": 3, "adaptation_epochs": 12, "batch_size": 16, "seed": 0, "freeze_trunk": True},
}


def context(config, run_dir: Path, name: str = "run", port: int = 0, host: str = "127.0.0.1", **kw) -> RunContext:
    seed_ids = tuple(
        f"seed{layer}_{j}"
        for layer in range(1, config.model.num_layers + 1)
        for j in range(1, config.model.seeds_per_layer + 1)
    )
    total = config.train.warm_up_epochs + config.train.adaptation_epochs
    options = {"prometheus": PrometheusOptions(metrics_port=port, metrics_host=host)}
    return RunContext(
        config, run_dir, name, seed_ids, total, config.train.warm_up_epochs, tracker_options=options, **kw
    )


class Probe(Tracker):
    """Scrapes the prometheus tracker over HTTP right after it handled each event."""

    def __init__(self, tracker: PrometheusTracker) -> None:
        self.tracker = tracker
        self.seen: list[tuple[object, dict, float, float]] = []

    def _scrape(self, event: object) -> None:
        before = time.time()
        text = scrape(f"http://127.0.0.1:{self.tracker.port}/metrics")
        self.seen.append((event, parse(text), before, time.time()))
        self.last_text = text

    on_epoch_end = on_phase_change = on_seed_transition = on_run_end = _scrape


def kasmina_run(run_dir: Path) -> tuple[PrometheusTracker, Probe]:
    """Train ``KASMINA`` with the ``prometheus`` tracker (built by its registered factory) and a probe."""
    kaslite.reset_plugin_manager()
    kaslite.get_plugin_manager().register(tiny_datasets, name="tiny")
    config = build_config(KASMINA)
    tracker = get_tracker("prometheus").factory(context(config, run_dir, "kasmina-xor"))
    probe = Probe(tracker)
    Trainer(config, run_dir, {"prometheus": tracker, "probe": probe}, "kasmina-xor").run()
    kaslite.reset_plugin_manager()
    return tracker, probe
