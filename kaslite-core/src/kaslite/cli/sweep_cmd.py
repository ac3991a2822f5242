"""``kaslite sweep CONFIG [CONFIG ...]``: grid or Bayesian search over ``kaslite run``'s parameters.

It takes every option ``kaslite run`` takes; they are defaults that each sweep
file overrides. Sweep files name parameters by their flag names without dashes
(``num_layers``, ``lr``, ``problem_type``, ``n_samples``), and a plugin's
parameters as ``dataset_param.NAME``, ``controller_param.NAME`` and
``blueprint_param.NAME``; see :mod:`kaslite.sweep.spec` for the format.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import click

from kaslite.cli.run_cmd import (
    PluginFlagsCommand,
    config_file_option,
    config_options,
    data_and_plugin_options,
    dest_path,
    experiment_layers,
    plugin_flag_options,
    tracker_choice_options,
    tracker_settings,
    with_flag,
)
from kaslite.errors import InvalidValue, KasliteError
from kaslite.plugins import BLUEPRINT, CONTROLLER, DATASET, PluginManager, get_plugin_manager

if TYPE_CHECKING:
    from kaslite.sweep.spec import Knob


def _type(option: click.Option) -> type:
    if option.is_flag:
        return bool
    return {click.INT: int, click.FLOAT: float}.get(option.type, str)


def sweep_knobs(options: list[click.Parameter]) -> dict[str, "Knob"]:
    """Flat parameter names a sweep file may use: each config option's flag spellings, without dashes."""
    from kaslite.sweep.spec import Knob

    knobs: dict[str, Knob] = {}
    for option in options:
        path = dest_path(option.name or "")
        if path is None or not isinstance(option, click.Option):
            continue
        for flag in option.opts:
            knobs.setdefault(flag.lstrip("-").replace("-", "_"), Knob(path, _type(option)))
    knobs["blueprint_hidden"] = Knob(("model", "blueprint_options", "hidden"), int)
    return knobs


# Sweep-file prefix -> where a plugin's parameters go in the config.
PLUGIN_PARAMETERS = {
    "dataset_param": (DATASET, ("data", "params")),
    "controller_param": (CONTROLLER, ("controller", "options")),
    "blueprint_param": (BLUEPRINT, ("model", "blueprint_options")),
}


def plugin_knobs(manager: PluginManager) -> dict[str, "Knob"]:
    """``controller_param.window`` and the like: every declared parameter of an installed plugin.

    A parameter two plugins declare with different types is read as text and
    checked, like every value, when its trial's config is built.
    """
    from kaslite.sweep.spec import Knob

    types: dict[str, set[type]] = {}
    paths: dict[str, tuple[str, ...]] = {}
    for prefix, (kind, path) in PLUGIN_PARAMETERS.items():
        for spec in manager.collected(kind).qualified.values():  # a name two plugins claim counts, qualified
            declared = {field.name: field.type for field in attrs.fields(spec.params_type)} if spec.params_type else {}
            for name, default in getattr(spec, "options", {}).items():  # a blueprint's options without a class
                declared.setdefault(name, type(default))
            for name, field_type in declared.items():
                key = f"{prefix}.{name}"
                types.setdefault(key, set()).add(field_type if field_type in (bool, int, float) else str)
                paths[key] = (*path, name)
    return {key: Knob(paths[key], next(iter(kinds)) if len(kinds) == 1 else str) for key, kinds in types.items()}


def all_knobs(manager: PluginManager) -> dict[str, "Knob"]:
    """Every parameter name a sweep file may use with the plugins of ``manager`` installed."""
    return {**sweep_knobs([*config_options()[0], *plugin_flag_options(manager)]), **plugin_knobs(manager)}


def _trial_trackers(tracker: tuple[str, ...], no_tracker: tuple[str, ...]) -> list[str]:
    from kaslite.config.resolve import tracker_names

    names = tracker_names(tracker or None, no_tracker)
    # The sweep's own progress display takes the console's place unless the console is asked for by name.
    return names if "console" in tracker else [name for name in names if name != "console"]


def make_sweep_command() -> click.Command:
    fields, flags = config_options()

    def callback(
        configs: tuple[Path, ...],
        method: str | None,
        trials: int | None,
        metric: str | None,
        direction: str | None,
        pruning: str | None,
        sampler_seed: int | None,
        jobs: int,
        storage: str | None,
        study: str | None,
        output_dir: Path | None,
        heartbeat: float,
        grace: float,
        quiet: bool,
        config_file: Path | None,
        tracker: tuple[str, ...],
        no_tracker: tuple[str, ...],
        **given: Any,
    ) -> None:
        from kaslite.config.resolve import tracker_options
        from kaslite.sweep.launch import SweepPlan, run_sweep
        from kaslite.sweep.spec import SweepDefaults, load_spec, sweep_files
        from kaslite.sweep.storage import check_workers, require_optuna

        try:
            # Everything a user can get wrong is checked here, before the first trial of the first sweep.
            defaults = SweepDefaults(method, trials, metric, direction, pruning, sampler_seed)
            knobs = all_knobs(get_plugin_manager())
            specs = [load_spec(path, knobs, defaults) for path in sweep_files(list(configs))]
            require_optuna()
            layers = experiment_layers(config_file, given)
            settings = tracker_settings(given)
            names = _trial_trackers(tracker, no_tracker)
            tracker_options(names, settings)
            if storage is not None:
                check_workers(storage, jobs)
        except InvalidValue as exc:
            raise with_flag(exc, flags) from None

        plan = SweepPlan(
            base_layers=tuple(layers),
            trackers=tuple(names),
            tracker_settings=settings,
            jobs=jobs,
            storage=storage,
            study=study,
            output_dir=output_dir,
            several=len(specs) > 1,
            heartbeat_s=heartbeat,
            grace_s=grace,
            quiet=quiet,
        )
        every_trial_failed = [spec.name for spec in specs if run_sweep(spec, plan).all_failed]
        if every_trial_failed:
            raise KasliteError(f"every trial failed in sweep {', '.join(every_trial_failed)}")

    return PluginFlagsCommand(
        "sweep",
        callback=callback,
        plugin_options=plugin_flag_options,
        help=(
            "Run a grid or Bayesian sweep from CONFIG files (or directories of .yaml files). "
            "Options are kaslite run's; each file overrides them. Results go to OUTPUT_DIR "
            "[default: results/sweeps/YYYYMMDD_HHMMSS/]."
        ),
        params=[
            click.Argument(["configs"], nargs=-1, required=True, type=click.Path(path_type=Path)),
            click.Option(["--method"], type=click.Choice(["grid", "bayesian"]), help="[default: grid]"),
            click.Option(["--trials"], type=click.IntRange(min=1), help="Bayesian trials [default: 20]."),
            click.Option(["--metric"], help="Final metric that ranks trials [default: val_acc]."),
            click.Option(["--direction"], type=click.Choice(["maximize", "minimize"]), help="[default: maximize]"),
            click.Option(
                ["--pruning"],
                type=click.Choice(["none", "median"]),
                help="Stop trials whose per-epoch metric falls below the median of earlier trials [default: none].",
            ),
            click.Option(["--sampler-seed", "--sampler_seed"], type=click.IntRange(min=0), help="Seed of TPE."),
            click.Option(
                ["--jobs", "-j"],
                type=click.IntRange(min=1),
                default=1,
                show_default=True,
                help="Trials run at once, each in its own process (torch threads = cores / jobs).",
            ),
            click.Option(
                ["--storage"],
                help="Optuna storage shared by workers: a database URL (postgresql://...) or a journal file path.",
            ),
            click.Option(["--study"], help="Study name in --storage [default: the sweep file's name]."),
            click.Option(
                ["--output-dir", "--output_dir"],
                type=click.Path(file_okay=False, path_type=Path),
                help="The sweep's directory (one subdirectory per file when several are given).",
            ),
            click.Option(
                ["--heartbeat"],
                type=click.FloatRange(min=0.01),
                default=10.0,
                show_default=True,
                help="Seconds between a running trial's heartbeats.",
            ),
            click.Option(
                ["--grace"],
                type=click.FloatRange(min=0.01),
                default=60.0,
                show_default=True,
                help="Seconds without a heartbeat before a trial's worker counts as dead and the trial is retried.",
            ),
            click.Option(["--quiet", "-q"], is_flag=True, help="Print only each sweep's closing line."),
            config_file_option("Base YAML config (sections data, model, ...); options and sweep files override it."),
            *tracker_choice_options(),
            *data_and_plugin_options(),
            *fields,
        ],
    )


sweep = make_sweep_command()
