"""A third-party plugin written against kaslite's plugin API 1, outside kaslite, frozen as it was.

Do not update it to follow kaslite: it stands for the plugins users installed
before a change, and tests/e2e/test_legacy_plugin.py checks each change keeps
them working. It uses every hook, and its dataset is named ``digits``, a name
kaslite-datasets registered after it.
"""

import json
from pathlib import Path

import attrs

import kaslite
from kaslite.control import Controller, Germinate
from kaslite.hookspecs import BlueprintSpec, ControllerSpec, DataArrays, DatasetSpec, ModelSourceSpec, TrackerSpec
from kaslite.validation import integer_at_least

KASLITE_PLUGIN_API = ">=1"


@attrs.frozen
class DigitsParams:
    n_samples: int = attrs.field(default=240, validator=integer_at_least(8), metadata={"help": "points in the rings"})


def generate_digits(params, seed):
    """Two noisy concentric rings: class 0 inside, class 1 outside."""
    import numpy as np

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, params.n_samples)
    angle = rng.uniform(0, 2 * np.pi, params.n_samples)
    radius = 1.0 + y + rng.normal(0, 0.15, params.n_samples)
    X = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1).astype(np.float32)
    return DataArrays(X=X, y=y.astype(np.int64), num_classes=2)


def build_tanh(dim, hidden=16):
    from torch import nn

    return nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, dim))


class DeepestDormant(Controller):
    """Grow the deepest dormant seed as soon as nothing else is growing."""

    def decide(self, obs):
        dormant = obs.in_state("dormant")
        if obs.in_state("training", "blending") or not dormant:
            return []
        return [Germinate(max(dormant, key=lambda seed: seed.layer).seed_id)]


def recorder(run):
    from kaslite.train import Tracker

    class Recorder(Tracker):
        """Writes the seeds the run germinated, in order, to legacy.json in the run folder."""

        def __init__(self):
            self.germinated = []

        def on_seed_transition(self, event):
            if event.to_state == "training":
                self.germinated.append(event.seed_id)

        def on_run_end(self, summary):
            (Path(run.run_dir) / "legacy.json").write_text(json.dumps({"germinated": self.germinated}))

    return Recorder()


def load_legacy(uri):
    from kaslite.models import LoadedModel, load_model

    net = load_model(uri.split("://", 1)[1])
    return LoadedModel(net=net, metadata=dict(net.metadata), uri=uri, version="7")


@kaslite.hookimpl
def kaslite_datasets():
    return [DatasetSpec("digits", DigitsParams, generate_digits, "two rings (not images)")]


@kaslite.hookimpl
def kaslite_seed_blueprints():
    return [BlueprintSpec("legacy-tanh", build_tanh, "a tanh MLP", {"hidden": 16})]


@kaslite.hookimpl
def kaslite_controllers():
    return [ControllerSpec("deepest-dormant", lambda config: DeepestDormant(), "the deepest dormant seed, at once")]


@kaslite.hookimpl
def kaslite_trackers():
    return [TrackerSpec("legacy-recorder", recorder, "the seeds a run germinated")]


@kaslite.hookimpl
def kaslite_model_sources():
    return [ModelSourceSpec("legacy", load_legacy, lambda uri: [{"version": "7", "uri": uri}], "a path, as version 7")]


@kaslite.hookimpl
def kaslite_commands(cli):
    import click

    @cli.command("legacy-hello")
    def hello():
        """Say hello."""
        click.echo("hello from the legacy plugin")


@kaslite.hookimpl
def kaslite_server_app(app):
    @app.get("/legacy")
    def legacy():
        return {"legacy": True}


@kaslite.hookimpl
def kaslite_sweep_end(sweep):
    Path(sweep.sweep_dir, "legacy-end.json").write_text(json.dumps({"status": sweep.status, "slots": sweep.slots}))
