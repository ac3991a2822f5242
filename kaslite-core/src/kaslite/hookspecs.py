"""The hooks a kaslite plugin can implement, and the records they return.

A plugin is a module (or any object) with functions marked ``@kaslite.hookimpl``
and named after the specs below, registered under the ``kaslite`` entry-point
group of its distribution::

    [project.entry-points.kaslite]
    my-plugin = "my_package.plugin"

Hooks come in two families:

* **Registration hooks** (``kaslite_datasets``, ``kaslite_seed_blueprints``,
  ``kaslite_controllers``, ``kaslite_trackers``, ``kaslite_model_sources``)
  take no arguments and return an iterable of small frozen records. The host
  calls each once per process, keys the records by name (scheme for model
  sources) and keeps them. Each name is also reachable as ``plugin:name``
  (the plugin's entry-point name or its distribution's). A name two plugins
  both claim is listed as a conflict by ``kaslite plugins`` and, used
  unqualified, is an error listing the qualified names to choose from.
* **Extension hooks** (``kaslite_commands``, ``kaslite_server_app``) receive
  an object to extend in place and return nothing.
* **Event hooks** (``kaslite_sweep_end``) tell every plugin that something
  happened and return nothing.

Rules for implementations:

* Import heavy libraries (torch, mlflow, fastapi, prometheus_client, ...)
  inside the hook body or inside the factory it returns, never at the top of
  the plugin module: ``kaslite --help`` loads every plugin.
* Never give a hook argument a default value; pluggy would silently never
  pass it. Declare only the arguments you use.
* Give each field of a parameter class a help text,
  ``attrs.field(default=..., metadata={"help": "..."})``: ``kaslite datasets``,
  ``kaslite plugins`` and ``kaslite run --help`` show it with the default.

One isolation policy holds for every hook, and for the trackers plugins
provide: a plugin whose hook raises (or returns something other than its
records), or a tracker that raises, is reported once (plugin, distribution,
version, the error's first line; the traceback with ``kaslite --debug``) and
skipped: what its hook registers, the rest of its extension (a server route, a
sweep-end notice), or the tracker for the rest of the run. The command goes on:
a broken monitor never stops ``kaslite serve``. ``KASLITE_STRICT_PLUGINS=1``
makes any of these fatal instead (a run stopped that way keeps its checkpoint).
Every hook is called through pluggy, one plugin at a time, so hook wrappers
and pluggy's tracing see each call.

The hooks, their records and what policies and trackers receive form the
plugin API, versioned as ``kaslite.PLUGIN_API_VERSION`` (CHANGELOG.md says what
each version changed). A plugin declares the versions it supports beside its
hookimpls, ``KASLITE_PLUGIN_API = ">=1,<3"``; outside that range it is refused
in one line when it loads. One that declares nothing is loaded by every version.
"""

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

if TYPE_CHECKING:
    import click
    import numpy as np

    from kaslite.serving import ServerEvents

PROJECT = "kaslite"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

# The version of everything a plugin meets: these hooks, their records, and what policies and trackers
# receive. It goes up by one with every change to any of them; CHANGELOG.md says what each version changed.
# A plugin declares the versions it supports as ``KASLITE_PLUGIN_API = ">=1,<3"`` beside its hookimpls.
PLUGIN_API_VERSION = 2


# --------------------------------------------------------------------------
# Records returned by the registration hooks
# --------------------------------------------------------------------------


@attrs.frozen
class DataArrays:
    """A generated or loaded dataset: features, labels and the number of classes.

    ``X`` is float32 of shape ``(n_samples, input_dim)``; ``y`` is int64 of
    shape ``(n_samples,)`` with values in ``range(num_classes)``.
    """

    X: "np.ndarray"
    y: "np.ndarray"
    num_classes: int


@attrs.frozen
class DatasetSpec:
    """A dataset a run can train on.

    :param name: what users type after ``--problem``.
    :param params_type: a frozen attrs class of the dataset's parameters, with
        validated defaults; its fields become options of ``kaslite data
        generate NAME``, keys of ``data.params`` in a config file, and flags of
        ``kaslite run`` (``--dataset-param n_samples=500`` or ``--n-samples
        500``). A field whose flag is one of kaslite's own (``lr``, ``seed``)
        gets the dataset refused, with an error saying so.
    :param generate: ``generate(params, seed) -> DataArrays``; the result must
        depend only on ``(params, seed)``.
    :param description: one line shown by ``kaslite datasets``.
    """

    name: str
    params_type: type
    generate: Callable[[Any, int], DataArrays]
    description: str = ""


@attrs.frozen
class BlueprintSpec:
    """A network a seed can grow into.

    :param name: what users type after ``--blueprint``.
    :param build: ``build(dim, **options) -> torch.nn.Module`` mapping
        ``(batch, dim)`` to ``(batch, dim)``; imports torch inside.
    :param description: one line shown by ``kaslite plugins``.
    :param options: the option names ``build`` accepts, with their defaults.
    :param params_type: optional frozen attrs class that validates the options'
        values before any work starts (``--blueprint-param rank=8``); its
        fields and their help appear in ``kaslite plugins``.
    """

    name: str
    build: Callable[..., Any]
    description: str = ""
    options: dict[str, Any] = attrs.field(factory=dict)
    params_type: type | None = None


@attrs.frozen
class ControllerSpec:
    """A growth policy: decides which seed to germinate or cull, and when.

    :param name: what users type after ``--controller``.
    :param factory: ``factory(config) -> Controller`` where ``config`` is the
        run's :class:`kaslite.config.ControllerConfig`; a plugin policy's own
        parameters are in ``config.options``.
    :param description: one line shown by ``kaslite plugins``.
    :param params_type: optional frozen attrs class that validates
        ``config.options`` before any work starts (``--controller-param
        patience=3``); the factory can then build it with ``params_type(**config.options)``.
        ``config.yaml`` stores the options with every default filled in.
    """

    name: str
    factory: Callable[[Any], Any]
    description: str = ""
    params_type: type | None = None


@attrs.frozen
class TrackerSpec:
    """Somewhere a run's events go (a console, files, MLflow, Prometheus...).

    :param name: what users type after ``--tracker``.
    :param factory: ``factory(run) -> Tracker`` called once per run with the
        run's :class:`kaslite.train.RunContext` (config, run directory, run
        name); the tracker subclasses :class:`kaslite.train.Tracker`.
    :param description: one line shown by ``kaslite plugins``.
    :param default: whether the tracker is on when ``--tracker`` is not given.
    :param options_type: optional frozen attrs class of the tracker's settings
        (not experiment config: they do not change results). Each field becomes
        a ``kaslite run`` flag (``tracking_uri`` -> ``--tracking-uri``); the
        validated instance reaches the factory as ``run.tracker_options[name]``.
        A field whose flag kaslite, a dataset or another tracker already uses
        gets the tracker refused, naming the holder.
    :param own_process: whether ``kaslite run`` may host the tracker in a helper
        process (:mod:`kaslite.train.tracker_host`), so its imports and I/O cost
        the training loop nothing. Its factory must be importable by name and
        its state its own (events arrive pickled; ``where()`` answers back).
    :param warm_up: for a tracker with ``own_process``: a function, importable by
        name, that the helper calls as soon as it starts, while the run is set
        up (import what the tracker needs).
    """

    name: str
    factory: Callable[[Any], Any]
    description: str = ""
    default: bool = False
    options_type: type | None = None
    own_process: bool = False
    warm_up: Callable[[], None] | None = None


@attrs.frozen
class ModelSourceSpec:
    """A place trained models are loaded from, selected by URI scheme.

    :param scheme: the URI scheme it serves (``file``, ``models``); a bare
        path counts as ``file``.
    :param load: ``load(uri) -> LoadedModel``.
    :param list_versions: ``list_versions(uri) -> list[dict]`` describing the
        versions behind ``uri`` (a single entry for a plain file).
    :param description: one line shown by ``kaslite plugins``.
    """

    scheme: str
    load: Callable[[str], Any]
    list_versions: Callable[[str], list[dict[str, Any]]]
    description: str = ""


@attrs.frozen
class SweepEnd:
    """How a sweep ended, as ``kaslite_sweep_end`` receives it.

    :param sweep_id: the sweep's id; its trials carry it as ``run.labels["sweep_id"]``.
    :param study: the Optuna study's name.
    :param status: ``finished`` (every slot settled, at least one trial did
        not fail), ``failed`` (every slot settled and every trial failed) or
        ``interrupted`` (this process stopped before every slot was settled;
        running the same command again continues the sweep).
    :param slots: how many slots ended each way: ``completed``, ``pruned``,
        ``failed``, and ``running`` / ``pending`` when interrupted.
    :param trackers: the names of the trackers the trials ran with.
    :param tracker_options: the trials' validated tracker options by tracker
        name (what each trial's tracker saw as ``run.tracker_options``).
    :param sweep_dir: the folder holding the sweep's summary.
    :param metric: the final metric that ranks the trials (``val_acc`` by default).
    :param direction: ``maximize`` or ``minimize``: which end of ``metric`` is best.
    :param best_trial: the run name of the trial the sweep's summary ranks
        best (empty when no trial completed).
    """

    sweep_id: str
    study: str
    status: str
    slots: dict[str, int]
    trackers: tuple[str, ...]
    tracker_options: dict[str, Any]
    sweep_dir: str
    metric: str = "val_acc"
    direction: str = "maximize"
    best_trial: str = ""


# --------------------------------------------------------------------------
# Registration hooks
# --------------------------------------------------------------------------


@hookspec
def kaslite_datasets() -> Iterable[DatasetSpec]:  # type: ignore[empty-body]
    """Register datasets.

    Called once per process, the first time datasets are listed or looked up
    (``kaslite datasets``, ``kaslite data generate``, ``kaslite run``, and
    ``kaslite run --help`` for their flags), so it must be cheap and free of
    side effects: build records, import numpy only inside ``generate``.

    :return: the :class:`DatasetSpec` records this plugin provides.

    Example::

        @attrs.frozen
        class RingParams:
            n_samples: int = attrs.field(default=500, validator=positive)

        def generate_ring(params, seed):
            rng = np.random.default_rng(seed)
            angle = rng.uniform(0, 2 * np.pi, params.n_samples)
            X = np.stack([np.cos(angle), np.sin(angle)], axis=1).astype(np.float32)
            y = (angle > np.pi).astype(np.int64)
            return DataArrays(X=X, y=y, num_classes=2)

        @kaslite.hookimpl
        def kaslite_datasets():
            return [DatasetSpec("ring", RingParams, generate_ring, "points on a ring")]
    """


@hookspec
def kaslite_seed_blueprints() -> Iterable[BlueprintSpec]:  # type: ignore[empty-body]
    """Register seed blueprints: the child networks a seed grows.

    Called once per process, when a network is built or a run is validated;
    ``build`` is called once per seed when the network is constructed.

    :return: the :class:`BlueprintSpec` records this plugin provides.

    Example::

        def build_residual(dim, hidden=32):
            import torch.nn as nn
            return nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, dim))

        @kaslite.hookimpl
        def kaslite_seed_blueprints():
            return [BlueprintSpec("tanh", build_residual, "tanh MLP", {"hidden": 32})]
    """


@hookspec
def kaslite_controllers() -> Iterable[ControllerSpec]:  # type: ignore[empty-body]
    """Register controllers (growth policies).

    Called once per process, when a run is validated; the factory is called
    once per run, and the controller's ``decide`` after every epoch of phase 2
    (``docs/reference.md`` describes the observation it receives).

    :return: the :class:`ControllerSpec` records this plugin provides.

    Example::

        from kaslite.control import Controller, Germinate

        class GrowAtOnce(Controller):
            def decide(self, obs):
                dormant = obs.in_state("dormant")
                return [Germinate(dormant[0].seed_id)] if dormant else []

        @kaslite.hookimpl
        def kaslite_controllers():
            return [ControllerSpec("at-once", lambda config: GrowAtOnce(), "grow every seed in turn")]
    """


@hookspec
def kaslite_trackers() -> Iterable[TrackerSpec]:  # type: ignore[empty-body]
    """Register trackers: receivers of a run's events.

    Called once per process, to resolve ``--tracker`` names and the default
    set and to list tracker flags; each chosen factory is called once per run
    (``docs/reference.md`` lists every event a tracker receives).

    :return: the :class:`TrackerSpec` records this plugin provides.

    The entry-point module imports the tracker class inside the factory, as
    kaslite's own trackers do, so that loading the plugin (every ``kaslite``
    command does) stays cheap.

    Example::

        # my_tracker/plugin.py, the entry point
        def print_tracker(run):
            from my_tracker.printer import PrintTracker

            return PrintTracker()

        @kaslite.hookimpl
        def kaslite_trackers():
            return [TrackerSpec("print", print_tracker, "print val acc")]

    and ``my_tracker/printer.py``, where anything heavy the tracker needs
    (torch, a client library) is imported::

        from kaslite.train import Tracker

        class PrintTracker(Tracker):
            def on_epoch_end(self, record):
                print(record.epoch, record.val_acc)
    """


@hookspec
def kaslite_model_sources() -> Iterable[ModelSourceSpec]:  # type: ignore[empty-body]
    """Register model sources: URI schemes ``kaslite serve --model`` understands.

    Called once per process, when a model URI is first resolved (serving,
    reloading, listing versions).

    :return: the :class:`ModelSourceSpec` records this plugin provides.

    Example::

        def load_s3(uri):
            from kaslite.models import LoadedModel, load_model

            net = load_model(download(uri))  # download() is your code
            return LoadedModel(net=net, metadata=net.metadata, uri=uri)

        @kaslite.hookimpl
        def kaslite_model_sources():
            return [ModelSourceSpec("s3", load_s3, lambda uri: [{"uri": uri}], "S3 objects")]
    """


# --------------------------------------------------------------------------
# Extension hooks
# --------------------------------------------------------------------------


@hookspec
def kaslite_commands(cli: "click.Group") -> None:
    """Add commands to the ``kaslite`` command line.

    Called once per process, when the command line is first listed or
    dispatched. Every command added here appears in ``kaslite --help``. A
    command named like one of kaslite's own is reported and skipped, whatever
    command line is run; one another plugin also adds is listed as a conflict
    and is an error, naming both, when invoked.

    :param cli: the ``kaslite`` click group; call ``cli.add_command`` or use
        ``@cli.command()``.

    Example::

        @kaslite.hookimpl
        def kaslite_commands(cli):
            @cli.command()
            def hello():
                "Say hello."
                click.echo("hello")
    """


@hookspec
def kaslite_server_app(app: Any, settings: Any, events: "ServerEvents") -> None:
    """Extend the inference server's FastAPI app, and learn what its model does.

    Called once per app, while it is built and before its lifespan loads the
    model: add routes or middleware to ``app``, and subscribe to ``events``
    for the model's lifecycle (loaded, reloaded, failed, evicted: with
    version, ``input_dim``, classes and load time) and for every prediction
    request (rows, model version, outcome, compute time). An extension needs
    nothing else from the server; reading its HTTP answers is not part of the
    contract. ``kaslite_serve.testing.server_client`` runs an app with your
    plugin in-process, for your tests.

    :param app: the ``fastapi.FastAPI`` application.
    :param settings: the server's ``kaslite_serve.ServerSettings`` (model
        URI, host, port, limits, ...).
    :param events: the app's :class:`kaslite.serving.ServerEvents`; call
        ``events.subscribe(listener)`` with a
        :class:`kaslite.serving.ServerListener`.

    Example::

        from kaslite.serving import ServerListener

        class CountRows(ServerListener):
            rows = 0

            def on_prediction(self, event):
                self.rows += event.rows

        @kaslite.hookimpl
        def kaslite_server_app(app, settings, events):
            counter = CountRows()
            events.subscribe(counter)

            @app.get("/rows")
            def rows():
                return {"rows": counter.rows}
    """


# --------------------------------------------------------------------------
# Event hooks
# --------------------------------------------------------------------------


@hookspec
def kaslite_sweep_end(sweep: SweepEnd) -> None:
    """React to the end of a sweep (close what its trials opened, report it).

    Called by each ``kaslite sweep`` process when the sweep it works on ends,
    after the summary is written, and when that process is interrupted.
    Several processes working on one study each call it, so an
    implementation must be idempotent.

    :param sweep: how the sweep ended, and which trackers its trials used.

    Example::

        @kaslite.hookimpl
        def kaslite_sweep_end(sweep):
            if sweep.status == "failed":
                notify(f"every trial of sweep {sweep.sweep_id} failed")  # notify() is yours
    """
