"""Run an experiment end to end: validate, pick the run dir, build trackers, train, or resume."""

import contextlib
import re
import shutil
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from kaslite.config import ExperimentConfig, config_to_dict, deep_merge, flatten, load_yaml, save_yaml
from kaslite.config.resolve import resolve_params, tracker_names, tracker_options
from kaslite.config.structure import structure
from kaslite.errors import ConfigError, KasliteError, RunStopped
from kaslite.nn.network import seed_ids as network_seed_ids
from kaslite.plugins import TRACKER, get_plugin_manager
from kaslite.train import distributed
from kaslite.train.events import RunContext, RunSummary
from kaslite.train.tracker import Tracker
from kaslite.train.trainer import CHECKPOINT, Trainer, resolve_device

CONFIG_FILE = "config.yaml"
# What a resumed run may change: its length, its policy's settings but not the policy itself
# (trackers are chosen apart), and the torch threads it runs on.
RESUMABLE = ("train.adaptation_epochs", "train.threads", "controller.")


def default_run_name(config: ExperimentConfig) -> str:
    """A readable slug of the problem and the parameters that matter most."""
    m, c, t = config.model, config.controller, config.train
    wide = f"-w{m.wide_seeds}x{m.wide_units}" if m.wide_seeds else ""
    width = f"-u{m.width_seeds}x{m.width_units}" if m.width_seeds else ""
    trunk = f"h{m.hidden_dim}x{m.num_layers}-s{m.seeds_per_layer}{width}{wide}"
    name = f"{config.data.problem}-{c.name}-{m.blueprint}-{trunk}-seed{t.seed}"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name)


def fresh_run_dir(output_dir: Path, run_name: str) -> Path:
    """``output_dir/run_name``, or ``run_name-2``, ``-3``... so an earlier run is never overwritten.

    A directory holds an earlier run when it has a config.yaml; a pipeline that
    removed a run's outputs before running it again (``dvc repro``) reuses it.
    """
    candidate = output_dir / run_name
    suffix = 2
    while (candidate / CONFIG_FILE).exists():
        candidate = output_dir / f"{run_name}-{suffix}"
        suffix += 1
    return candidate


def prepare(config: ExperimentConfig, trackers: Iterable[str] = ()) -> tuple[ExperimentConfig, torch.device]:
    """Every name and value a run depends on, checked before any work starts, in one pass: the config
    with every plugin's parameters resolved (what config.yaml records), and the device it trains on."""
    resolved = resolve_params(config)
    for name in trackers:
        get_plugin_manager().lookup(TRACKER, name)
    return resolved, resolve_device(config.train.device)


def make_trackers(names: list[str], context: RunContext, host: bool = False) -> dict[str, Tracker]:
    """Instantiate trackers by name for a run; with ``host``, those that allow it in a helper process."""
    from kaslite.train import tracker_host

    manager = get_plugin_manager()
    return tracker_host.make_trackers({name: manager.lookup(TRACKER, name) for name in names}, context, host)


def _context(
    config: ExperimentConfig,
    run_dir: Path,
    run_name: str,
    quiet: bool,
    options: dict[str, Any],
    labels: dict[str, str] | None = None,
) -> RunContext:
    m = config.model
    seed_ids = tuple(network_seed_ids(m.num_layers, m.seeds_per_layer, m.width_seeds, m.wide_seeds))
    total = config.train.warm_up_epochs + config.train.adaptation_epochs
    return RunContext(
        config,
        run_dir,
        run_name,
        seed_ids,
        total,
        config.train.warm_up_epochs,
        quiet=quiet,
        tracker_options=options,
        labels=dict(labels or {}),
    )


def run_experiment(
    config: ExperimentConfig,
    output_dir: Path = Path("results"),
    run_name: str | None = None,
    trackers: Iterable[str] | None = None,
    without: Iterable[str] = (),
    quiet: bool = False,
    tracker_settings: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    host_trackers: bool = False,
) -> RunSummary:
    """Validate, create ``output_dir/run_name`` with its config.yaml, and train.

    ``tracker_settings`` holds tracker flags by field name (``{"tracking_uri": ...}``);
    ``labels`` reach trackers as ``run.labels`` (a sweep marks its trials with them).
    ``host_trackers``: run the trackers that allow it in a helper process (``kaslite run`` does:
    one run per process; a sweep's worker imports MLflow once for all its trials instead).
    """
    names = tracker_names(trackers, without)
    config, device = prepare(config, names)  # config.yaml records every parameter, defaults included
    options = tracker_options(names, tracker_settings)
    with distributed_run(device) as device:
        run_dir = None
        if distributed.is_writer():
            run_dir = fresh_run_dir(Path(output_dir), run_name or default_run_name(config))
            run_dir.mkdir(parents=True, exist_ok=True)
            # A reused folder (its outputs removed by a pipeline) must not offer the old run's checkpoint to --resume.
            for stale in (CHECKPOINT, CHECKPOINT + ".tmp"):
                (run_dir / stale).unlink(missing_ok=True)
            save_yaml(config, run_dir / CONFIG_FILE)
        run_dir = Path(distributed.from_rank_zero(str(run_dir)))  # the folder rank 0 chose
        context = _context(config, run_dir, run_dir.name, quiet, options, labels)
        try:
            trackers = _trackers(names, context, host_trackers)
            return _train(Trainer(config, run_dir, trackers, run_dir.name, context, device=device))
        except ConfigError:
            # Refused before the first epoch (say, data the network cannot take): leave no run behind.
            if distributed.is_writer() and [path.name for path in run_dir.iterdir()] == [CONFIG_FILE]:
                shutil.rmtree(run_dir)
            raise


@contextlib.contextmanager
def distributed_run(device: torch.device) -> Iterator[torch.device]:
    """Under torchrun, this rank's place in the process group for the run's length; else the device as is."""
    if not distributed.launched():
        yield device
        return
    try:
        yield distributed.start(device)
    finally:
        distributed.stop()


def _trackers(names: list[str], context: RunContext, host: bool) -> dict[str, Tracker]:
    """The run's trackers: rank 0's alone under torchrun (one MLflow run, one set of files)."""
    return make_trackers(names, context, host) if distributed.is_writer() else {}


def _train(trainer: Trainer, resume: bool = False) -> RunSummary:
    """Run ``trainer``; a failure mid-run becomes one line that says how to resume."""
    try:
        return trainer.run(resume=resume)
    except (KasliteError, KeyboardInterrupt) as exc:
        if trainer.run_dir is None or isinstance(exc, ConfigError):
            raise
        kept = f"epoch {trainer.saved_epoch}" if trainer.saved_epoch else "no epoch yet"
        where = f"the run is kept in {trainer.run_dir} (checkpoint: {kept})"
        command = f"kaslite run --resume {trainer.run_dir}"
        if isinstance(exc, KeyboardInterrupt):
            raise RunStopped(
                f"interrupted at epoch {trainer.epoch_under_way}; {where}; continue with {command}", 130
            ) from exc
        raise RunStopped(f"{exc}; {where}; once it is fixed, continue with {command}") from exc


def resume_overrides(saved: ExperimentConfig, layer: Mapping[str, Any]) -> ExperimentConfig:
    """``saved`` with ``layer`` laid over it, if ``layer`` only changes what a resume may change."""
    merged = structure(deep_merge(config_to_dict(saved), dict(layer)), ExperimentConfig)
    before, after = flatten(saved), flatten(merged)
    changed = sorted(key for key in after if after[key] != before.get(key))
    # The policy's settings may change, not the policy: its saved state is the old policy's.
    refused = [key for key in changed if not key.startswith(RESUMABLE) or key == "controller.name"]
    if refused:
        raise ConfigError(
            f"cannot change {', '.join(refused)} when resuming (the run was made with other values); "
            "a resume may change train.adaptation_epochs, train.threads, the controller's settings, "
            "the trackers and their options"
        )
    return merged


def epochs_done(run_dir: Path) -> int:
    """How many epochs the run's checkpoint holds (0 without one)."""
    import torch

    checkpoint = Path(run_dir) / CHECKPOINT
    if not checkpoint.is_file():
        return 0
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if "grower" not in state:
        raise ConfigError(f"cannot resume {str(run_dir)!r}: its checkpoint was written by an older kaslite")
    return int(state["grower"]["epoch"])


def resume_experiment(
    run_dir: Path,
    trackers: Iterable[str] | None = None,
    without: Iterable[str] = (),
    quiet: bool = False,
    tracker_settings: dict[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    host_trackers: bool = False,
) -> RunSummary | None:
    """Continue the run in ``run_dir`` from its last checkpoint (or from scratch if it has none).

    ``overrides`` (a nested config layer) may lengthen the run or change the policy's settings;
    anything else is refused. A run that already finished all its epochs is left alone: the
    return value is then None. ``host_trackers``: as for :func:`run_experiment`.
    """
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        raise ConfigError(f"cannot resume {str(run_dir)!r}: it has no {CONFIG_FILE} (is it a kaslite run dir?)")
    saved = structure(load_yaml(run_dir / CONFIG_FILE), ExperimentConfig)
    config = resume_overrides(saved, overrides or {}) if overrides else saved
    names = tracker_names(trackers, without)
    _, device = prepare(config, names)
    total = config.train.warm_up_epochs + config.train.adaptation_epochs
    if epochs_done(run_dir) >= total:
        return None
    with distributed_run(device) as device:
        if config != saved and distributed.is_writer():
            save_yaml(config, run_dir / CONFIG_FILE)
        context = _context(config, run_dir, run_dir.name, quiet, tracker_options(names, tracker_settings))
        trainer = Trainer(
            config, run_dir, _trackers(names, context, host_trackers), run_dir.name, context, device=device
        )
        return _train(trainer, resume=(run_dir / CHECKPOINT).exists())
