"""``kaslite run``: train one experiment from flags and/or a YAML config.

Every config field is a flag, dashed (``--blend-steps``) with the original
underscore spelling as an alias (``--blend_steps``). A plugin's parameters
have namespaced flags that cannot collide: ``--dataset-param``,
``--controller-param`` and ``--blueprint-param KEY=VALUE``. The dataset's
parameters are also flags of their own (``--n-samples``), and a tracker's
options are flags (``--tracking-uri``); the plugin host refuses a plugin whose
flag is already held (see :mod:`kaslite.config.flagspace`).

Plugin flags are built when the command is used, from what the plugins
registered, never at import. Flags override ``--config FILE.yaml``, which
overrides the defaults. Every value is checked before torch is imported.
"""

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import click

from kaslite.config import SECTIONS, build_config, load_yaml
from kaslite.config.flagspace import MAPPING_FIELDS, config_field_flags, describe_fields, field_flags
from kaslite.config.schema import check_growable
from kaslite.errors import ConfigError, InvalidValue
from kaslite.plugins import DATASET, TRACKER, PluginManager, get_plugin_manager

_TYPES: dict[Any, Any] = {int: click.INT, float: click.FLOAT, str: click.STRING}


def config_options() -> tuple[list[click.Option], dict[str, str]]:
    """One option per config field (dest ``section__field``), and path -> flag for error messages."""
    options: list[click.Option] = []
    flags: dict[str, str] = {}
    for section, cls in SECTIONS.items():
        for field in attrs.fields(cls):
            if (section, field.name) in MAPPING_FIELDS:
                continue
            names = config_field_flags(section, field.name, field.type is bool)
            dest = f"{section}__{field.name}"
            about = field.metadata.get("help")
            # A default computed from other fields (a Factory) is described in the field's help.
            default = "" if isinstance(field.default, attrs.Factory) else f"; default: {field.default!r}"  # type: ignore[arg-type]
            help_text = f"{about + ' ' if about else ''}[{section}.{field.name}{default}]"
            if field.type is bool:
                option = click.Option(["/".join(names), dest], default=None, help=help_text)
            else:
                option = click.Option([*names, dest], type=_TYPES.get(field.type, click.STRING), help=help_text)
            options.append(option)
            flags[f"{section}.{field.name}"] = names[0]
    return options, flags


def _plugin_option(name: str, dest: str, kinds: set[Any], help_text: str) -> click.Option:
    """An option for a plugin field: typed when every declaration agrees on the type, text otherwise."""
    (kind,) = kinds if len(kinds) == 1 else (str,)
    if kind is bool:
        return click.Option(["/".join(field_flags(name, True)), dest], default=None, help=help_text)
    return click.Option([*field_flags(name), dest], type=_TYPES.get(kind, click.STRING), help=help_text)


def dataset_options(manager: PluginManager) -> list[click.Option]:
    """``--n-samples``, ``--noise``, ...: each parameter of an installed dataset, for the dataset ``--problem`` names.

    Datasets share a flag when they share a parameter name; its help lists each one's default.
    """
    defaults: dict[str, list[str]] = {}
    kinds: dict[str, set[Any]] = {}
    for dataset, spec in sorted(manager.registrations(DATASET).items()):
        for field, row in zip(attrs.fields(spec.params_type), describe_fields(spec.params_type), strict=True):
            kinds.setdefault(field.name, set()).add(field.type)
            default = "required" if row["required"] else repr(row["default"])
            defaults.setdefault(field.name, []).append(f"{dataset} {default}")
    return [
        _plugin_option(
            name,
            f"dataset__{name}",
            kinds[name],
            f"Dataset parameter {name} (same as --dataset-param {name}=VALUE); default: {', '.join(defaults[name])}.",
        )
        for name in sorted(defaults)
    ]


def tracker_flag_options(manager: PluginManager) -> list[click.Option]:
    """Each installed tracker's options (``--tracking-uri``, ``--metrics-port``, ...), with its help and default."""
    options = []
    for tracker, spec in manager.registrations(TRACKER).items():
        if spec.options_type is None:
            continue
        for field, row in zip(attrs.fields(spec.options_type), describe_fields(spec.options_type), strict=True):
            default = "required" if row["required"] else repr(row["default"])
            text = f"{row['help']} " if row["help"] else ""
            help_text = f"{text}[tracker {tracker}; default: {default}]"
            options.append(_plugin_option(field.name, f"tracker__{field.name}", {field.type}, help_text))
    return options


class PluginFlagsCommand(click.Command):
    """A command whose plugin flags are built on first use, once per plugin manager.

    The plugin host has already skipped any plugin that failed or whose flags
    collide, so one bad plugin cannot break the command or its ``--help``.
    """

    def __init__(self, *args: Any, plugin_options: Callable[[PluginManager], list[click.Option]], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.own_params = list(self.params)
        self.plugin_options = plugin_options
        self._built_for: PluginManager | None = None

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        manager = get_plugin_manager()
        if self._built_for is not manager:
            self.params = [*self.own_params, *self.plugin_options(manager)]
            self._built_for = manager
        return super().get_params(ctx)


def plugin_flag_options(manager: PluginManager) -> list[click.Option]:
    """The flags plugins add to ``run`` and ``sweep``: dataset parameters and tracker options."""
    return [*dataset_options(manager), *tracker_flag_options(manager)]


def parse_pairs(pairs: tuple[str, ...], flag: str) -> dict[str, Any]:
    """``("hidden=64", "act=relu")`` -> ``{"hidden": 64, "act": "relu"}`` (values read as YAML scalars)."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"invalid {flag} {pair!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return out


def dest_path(dest: str) -> tuple[str, ...] | None:
    """Where an option's value goes in the config (``train__lr`` -> ``("train", "lr")``); None if nowhere."""
    section, sep, name = dest.partition("__")
    if not sep or section == "tracker":  # tracker settings are not experiment config (see tracker_settings)
        return None
    if section == "dataset":
        return ("data", "params", name)
    return (section, name)


def flag_layer(given: dict[str, Any]) -> dict[str, Any]:
    """The config layer the flags describe: only what was actually given."""
    layer: dict[str, Any] = {}
    for dest, value in given.items():
        path = dest_path(dest)
        if value is None or path is None:
            continue
        *parents, leaf = path
        node = layer
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return layer


def tracker_settings(given: dict[str, Any]) -> dict[str, Any]:
    """The tracker flags that were given, by field name (``{"tracking_uri": ...}``)."""
    return {
        dest.removeprefix("tracker__"): value
        for dest, value in given.items()
        if dest.startswith("tracker__") and value is not None
    }


def experiment_layers(config_file: Path | None, given: dict[str, Any]) -> list[dict[str, Any]]:
    """The config layers of ``--config FILE`` and the flags, in the order they apply.

    Takes the options of :func:`data_and_plugin_options` out of ``given``.
    """
    layer = flag_layer(given)
    options = parse_pairs(given.pop("blueprint_param", ()), "--blueprint-param")
    blueprint_hidden = given.pop("blueprint_hidden", None)
    if blueprint_hidden is not None:
        options["hidden"] = blueprint_hidden
    if options:
        layer.setdefault("model", {})["blueprint_options"] = options
    controller_params = given.pop("controller_param", ())
    if controller_params:
        layer.setdefault("controller", {})["options"] = parse_pairs(controller_params, "--controller-param")
    dataset_params = given.pop("dataset_param", ())
    if dataset_params:
        layer.setdefault("data", {}).setdefault("params", {}).update(parse_pairs(dataset_params, "--dataset-param"))
    file_layer = load_yaml(config_file) if config_file else {}
    data_file = given.pop("data_file", None)
    if data_file is not None:  # replaces the config's dataset and its parameters
        file_layer.get("data", {}).pop("params", None)
        layer.setdefault("data", {}).update(problem="file", params={"path": data_file})
    return [file_layer, layer]


def with_flag(exc: InvalidValue, flags: dict[str, str]) -> ConfigError:
    """``exc`` naming the flag that sets the bad field, when there is one."""
    flag = flags.get(exc.field)
    return ConfigError(f"{exc} (flag {flag})" if flag else str(exc))


def config_file_option(help_text: str) -> click.Option:
    """``--config FILE.yaml``."""
    return click.Option(["--config", "config_file"], type=click.Path(dir_okay=False, path_type=Path), help=help_text)


def tracker_choice_options() -> list[click.Option]:
    """``--tracker`` and ``--no-tracker``."""
    return [
        click.Option(
            ["--tracker"],
            multiple=True,
            help=(
                "Tracker to use (repeatable) instead of the default set; the run's own files "
                "(the json tracker) stay unless --no-tracker json."
            ),
        ),
        click.Option(["--no-tracker"], multiple=True, help="Remove a tracker from the set (repeatable)."),
    ]


def data_and_plugin_options() -> list[click.Option]:
    """``--data FILE`` and the KEY=VALUE parameters of the dataset, blueprint and controller."""
    return [
        click.Option(
            ["--data", "data_file"],
            type=click.Path(dir_okay=False),
            help="Train on this .npz/.csv file (the `file` dataset), whatever data the config names.",
        ),
        click.Option(
            ["--dataset-param", "dataset_param"],
            multiple=True,
            metavar="KEY=VALUE",
            help="Parameter of the dataset --problem names (repeatable); `kaslite datasets` lists them.",
        ),
        click.Option(
            ["--blueprint-hidden", "--blueprint_hidden"],
            type=click.INT,
            help="Hidden width of the seed blueprint (same as --blueprint-param hidden=N).",
        ),
        click.Option(
            ["--blueprint-param", "blueprint_param"],
            multiple=True,
            metavar="KEY=VALUE",
            help="Parameter of the blueprint (repeatable); `kaslite plugins` lists them.",
        ),
        click.Option(
            ["--controller-param", "controller_param"],
            multiple=True,
            metavar="KEY=VALUE",
            help="Parameter of the controller (repeatable); `kaslite plugins` lists them.",
        ),
    ]


def build_layers_for_resume(config_file: Path | None, given: dict[str, Any]) -> dict[str, Any]:
    """The settings given beside ``--resume`` as one config layer (the runner refuses what may not change)."""
    from kaslite.config import deep_merge

    merged: dict[str, Any] = {}
    for layer in experiment_layers(config_file, given):
        merged = deep_merge(merged, layer)
    return merged


def validated_run(config_file: Path | None, given: dict[str, Any], flags: dict[str, str]) -> Any:
    """The run's config with every plugin parameter resolved, checked without importing torch."""
    from kaslite.config.resolve import resolve_params

    try:
        config = resolve_params(build_config(*experiment_layers(config_file, given)))
    except InvalidValue as exc:
        raise with_flag(exc, flags) from None
    check_growable(config.model)
    return config


def relaunch_with_torchrun(nproc: int) -> None:
    """``kaslite run ... --nproc N`` is ``torchrun --nproc-per-node N -m kaslite run ...``: PyTorch's own
    launcher starts the N processes, each of which joins the process group (kaslite.train.distributed)."""
    from torch.distributed.run import main as torchrun

    args = list(sys.argv[1:])
    at = next(i for i, arg in enumerate(args) if arg == "--nproc" or arg.startswith("--nproc="))
    del args[at : at + (1 if "=" in args[at] else 2)]
    try:
        torchrun(["--standalone", "--nproc-per-node", str(nproc), "-m", "kaslite", *args])  # a free local port
    except Exception as exc:  # torchrun's ChildFailedError: the ranks have printed their errors above
        raise click.ClickException(f"a process of the {nproc} failed: {type(exc).__name__}") from exc


def start_tracker_host(names: list[str]) -> None:
    """Start the helper process of the trackers that run in one (:mod:`kaslite.train.tracker_host`) now,
    before this process imports torch, so that both import at once."""
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 alone tracks the run
        return
    from kaslite.train import tracker_host

    manager = get_plugin_manager()
    tracker_host.start([manager.lookup(TRACKER, name) for name in names])


def make_run_command() -> click.Command:
    fields, flags = config_options()

    def callback(
        config_file: Path | None,
        resume: Path | None,
        tracker: tuple[str, ...],
        no_tracker: tuple[str, ...],
        output_dir: Path,
        run_name: str | None,
        quiet: bool,
        nproc: int,
        **given: Any,
    ) -> None:
        from kaslite.config.resolve import tracker_names, tracker_options

        settings = tracker_settings(given)
        if resume is not None and nproc > 1:
            relaunch_with_torchrun(nproc)
            return
        if resume is not None:
            from kaslite.train.runner import resume_experiment

            overrides = build_layers_for_resume(config_file, given)
            resumed = resume_experiment(
                resume, tracker or None, no_tracker, quiet, settings, overrides, host_trackers=True
            )
            if resumed is None:
                click.echo(
                    f"{resume} already finished all its epochs; nothing to do (ask for more with --adaptation-epochs N)"
                )
            return
        config = validated_run(config_file, given, flags)
        names = tracker_names(tracker or None, no_tracker)
        tracker_options(names, settings)
        if nproc > 1:  # every flag is known good: now the processes start
            relaunch_with_torchrun(nproc)
            return
        start_tracker_host(names)
        from kaslite.train.runner import run_experiment  # torch: only once the flags are known good

        try:
            run_experiment(
                config, output_dir, run_name, tracker or None, no_tracker, quiet, settings, host_trackers=True
            )
        except InvalidValue as exc:
            raise with_flag(exc, flags) from None

    return PluginFlagsCommand(
        "run",
        callback=callback,
        help="Train a morphogenetic network; results go to OUTPUT_DIR/RUN_NAME/.",
        plugin_options=plugin_flag_options,
        params=[
            config_file_option("YAML config (sections data, model, seeds, controller, train); flags override it."),
            click.Option(
                ["--resume"],
                type=click.Path(file_okay=False, path_type=Path),
                help="Continue the run in RUN_DIR from its last checkpoint.",
            ),
            *tracker_choice_options(),
            click.Option(
                ["--output-dir", "--output_dir"],
                type=click.Path(file_okay=False, path_type=Path),
                default=Path("results"),
                show_default=True,
                help="Where run directories go.",
            ),
            click.Option(["--run-name", "--run_name"], help="Run directory name [default: a slug of the config]."),
            click.Option(["--quiet", "-q"], is_flag=True, help="Print only the final summary line."),
            click.Option(
                ["--nproc"],
                type=click.IntRange(min=1),
                default=1,
                show_default=True,
                help="Train data-parallel on N processes of this machine (torchrun --nproc-per-node N).",
            ),
            *data_and_plugin_options(),
            *fields,
        ],
    )


run = make_run_command()
